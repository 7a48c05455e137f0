#ifndef CRDTD_CRING_H
#define CRDTD_CRING_H
// Placeholder: the C11 SPSC reference ring is written with the ring benchmark.
#endif
