#ifndef CRDTD_CJEMALLOC_SHIM_H
#define CRDTD_CJEMALLOC_SHIM_H
// jemalloc's control interface, the one function crdtd calls. Linking libjemalloc replaces malloc and free
// for the whole process; <jemalloc/jemalloc.h> is not included because it redeclares them.
#include <stddef.h>
int mallctl(const char *name, void *oldp, size_t *oldlenp, void *newp, size_t newlen);
#endif
