// The storage fault shim has no API of its own: it is loaded with LD_PRELOAD and replaces write(), pwrite(),
// writev(), fsync() and fdatasync() (see storage_faults.c). SwiftPM wants a public headers directory.
#pragma once
