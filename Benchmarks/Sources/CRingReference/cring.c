#include "cring.h"

#include <pthread.h>
#include <sched.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

typedef struct cring {
    alignas(128) _Atomic uint64_t tail;  // written by the producer
    uint64_t producers_head;
    alignas(128) _Atomic uint64_t head;  // written by the consumer
    uint64_t consumers_tail;
    alignas(128) uint64_t mask;
    uint64_t capacity;
    uint64_t *slots;
    uint64_t items;
} cring;

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

// Same policy as RingBench's Swift loops: spin, and give the core away after 1024 failed checks, so a
// run survives the other side being descheduled on a busy 2-core machine.
#define CRING_SPINS_BEFORE_YIELD 1024

static void *producer(void *argument) {
    cring *ring = argument;
    for (uint64_t item = 0; item < ring->items; item++) {
        uint64_t tail = atomic_load_explicit(&ring->tail, memory_order_relaxed);
        unsigned spins = 0;
        while (tail - ring->producers_head == ring->capacity) {
            ring->producers_head = atomic_load_explicit(&ring->head, memory_order_acquire);
            if (++spins == CRING_SPINS_BEFORE_YIELD) { sched_yield(); spins = 0; }
        }
        ring->slots[tail & ring->mask] = item;
        atomic_store_explicit(&ring->tail, tail + 1, memory_order_release);
    }
    return NULL;
}

cring_result cring_spsc_run(uint64_t items, uint32_t capacity) {
    cring_result result = {0, 0};
    uint64_t rounded = 1;
    while (rounded < capacity) rounded <<= 1;
    cring *ring = aligned_alloc(128, sizeof(cring));
    if (ring == NULL) return result;
    ring->slots = aligned_alloc(128, ((rounded * sizeof(uint64_t) + 127) / 128) * 128);
    if (ring->slots == NULL) { free(ring); return result; }
    atomic_init(&ring->tail, 0);
    atomic_init(&ring->head, 0);
    ring->producers_head = 0;
    ring->consumers_tail = 0;
    ring->mask = rounded - 1;
    ring->capacity = rounded;
    ring->items = items;

    uint64_t start = now_ns();
    pthread_t thread;
    if (pthread_create(&thread, NULL, producer, ring) != 0) {
        free(ring->slots);
        free(ring);
        return result;
    }
    uint64_t sum = 0;
    for (uint64_t received = 0; received < items; received++) {
        uint64_t head = atomic_load_explicit(&ring->head, memory_order_relaxed);
        unsigned spins = 0;
        while (head == ring->consumers_tail) {
            ring->consumers_tail = atomic_load_explicit(&ring->tail, memory_order_acquire);
            if (++spins == CRING_SPINS_BEFORE_YIELD) { sched_yield(); spins = 0; }
        }
        sum += ring->slots[head & ring->mask];
        atomic_store_explicit(&ring->head, head + 1, memory_order_release);
    }
    pthread_join(thread, NULL);
    result.nanoseconds = now_ns() - start;
    result.checksum = sum;
    free(ring->slots);
    free(ring);
    return result;
}
