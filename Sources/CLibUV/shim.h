#ifndef CRDTD_CLIBUV_SHIM_H
#define CRDTD_CLIBUV_SHIM_H
#include <uv.h>
#endif
