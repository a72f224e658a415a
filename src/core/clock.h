/* clock.h - the one place corral reads clocks. Every time the runtime acts on (deadlines,
 * timers, the cached loop clock, HTTP dates) comes from here, so that a simulated clock
 * can later take the place of the real ones. */
#ifndef CRL_CORE_CLOCK_H
#define CRL_CORE_CLOCK_H

#include "corral.h"

#include <stdint.h>
#include <time.h>

/* CLOCK_MONOTONIC: crl_now_ns(). */
static inline int64_t crl__clock_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * CRL_SEC_NS + ts.tv_nsec;
}

/* CLOCK_MONOTONIC as of the last scheduler tick (1-4 ms behind): a quarter of the cost of
 * crl_now_ns, for deadlines of timeouts counted in seconds. */
static inline int64_t crl__now_coarse_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (int64_t)ts.tv_sec * CRL_SEC_NS + ts.tv_nsec;
}

/* The wall clock as of the last tick, for HTTP dates. */
static inline struct timespec crl__clock_wall_coarse(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME_COARSE, &ts);
    return ts;
}

#endif
