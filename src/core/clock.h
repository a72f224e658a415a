/* clock.h - the one place corral reads clocks. Every time the runtime acts on (deadlines,
 * timers, the cached loop clock, HTTP dates) comes from here, so that a simulated clock
 * can later take the place of the real ones. */
#ifndef CRL_CORE_CLOCK_H
#define CRL_CORE_CLOCK_H

#include "corral.h"

#include <stdint.h>
#include <time.h>

/* The simulated backend's clock (io/sim.c) while a simulated runtime runs on this thread,
 * else NULL: every read below then takes it instead of the kernel's. One predictable branch
 * when not simulated. */
extern __thread const int64_t *crl__clock_virtual __attribute__((tls_model("initial-exec")));
/* The simulated wall clock is this (2026-01-01T00:00:00Z) plus the virtual monotonic time. */
#define CRL__CLOCK_VIRTUAL_EPOCH_S 1767225600

static inline struct timespec crl__clock_virtual_ts(int64_t ns)
{
    return (struct timespec){.tv_sec = ns / 1000000000, .tv_nsec = ns % 1000000000};
}

/* CLOCK_MONOTONIC: crl_now_ns(). */
static inline int64_t crl__clock_mono_ns(void)
{
    if (__builtin_expect(crl__clock_virtual != NULL, 0))
        return *crl__clock_virtual;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * CRL_SEC_NS + ts.tv_nsec;
}

/* CLOCK_MONOTONIC as of the last scheduler tick (1-4 ms behind): a quarter of the cost of
 * crl_now_ns, for deadlines of timeouts counted in seconds. */
static inline int64_t crl__now_coarse_ns(void)
{
    if (__builtin_expect(crl__clock_virtual != NULL, 0))
        return *crl__clock_virtual;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (int64_t)ts.tv_sec * CRL_SEC_NS + ts.tv_nsec;
}

/* The wall clock as of the last tick, for HTTP dates. */
static inline struct timespec crl__clock_wall_coarse(void)
{
    if (__builtin_expect(crl__clock_virtual != NULL, 0))
        return crl__clock_virtual_ts(CRL__CLOCK_VIRTUAL_EPOCH_S * 1000000000LL +
                                     *crl__clock_virtual);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME_COARSE, &ts);
    return ts;
}

#endif
