#ifndef CRDTD_CRING_H
#define CRDTD_CRING_H
// A minimal C11 single-producer/single-consumer ring: the hardware reference that RingBench puts next to
// the Swift rings. Same algorithm as Rings.SPSCRing (cached indices, head and tail 128 bytes apart,
// acquire/release), with nothing else around it.
#include <stdint.h>

typedef struct cring_result {
    /// Wall time from starting the producer thread to joining it, in nanoseconds (CLOCK_MONOTONIC).
    uint64_t nanoseconds;
    /// Sum of every item the consumer received, so the caller can check nothing was lost.
    uint64_t checksum;
} cring_result;

/// Passes the items 0..<items from a producer thread to the calling thread through a ring of `capacity`
/// 64-bit slots (rounded up to a power of two). Both sides busy-wait, yielding the core after 1024
/// failed checks. Returns the elapsed time, or zero
/// nanoseconds if the ring or the thread could not be created.
cring_result cring_spsc_run(uint64_t items, uint32_t capacity);

#endif
