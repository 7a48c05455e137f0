#ifndef CRDTD_CMALLOC_SHIM_H
#define CRDTD_CMALLOC_SHIM_H
// glibc's malloc_trim: gives freed heap memory back to the system (after a large collection).
#include <malloc.h>
#endif
