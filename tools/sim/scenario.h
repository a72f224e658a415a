/* scenario.h - corral-sim's scenarios: programs written against corral.h that run in the
 * simulated backend and check their invariants as they go. */
#ifndef CORRAL_SIM_SCENARIO_H
#define CORRAL_SIM_SCENARIO_H

#include <corral.h>

#include "io/io.h" /* crl__sim_open_fds: the simulated sockets open, for leak checks */

#include <stdint.h>
#include <stdio.h>

/* A scenario's verdict so far: the first broken invariant, kept for the report. */
struct sim_verdict {
    char what[256];
    int failed; /* invariants broken */
};

struct sim_scenario {
    const char *name;
    const char *about;
    /* The root task: returns 0, or a negative value after sim_fail(). seed draws the
     * scenario's own choices (the simulator draws its scheduling from the same seed). */
    int (*run)(uint64_t seed, struct sim_verdict *v);
    /* Swarm: each seed also draws which faults are injected (CORRAL_FAULTS) and how often,
     * or none; sim_faults_on() tells the run which. */
    bool swarm;
    unsigned cores; /* simulated cores it runs on (0: one) */
};

/* Whether this seed's run injects faults (a connection may then end early). */
bool sim_faults_on(void);

/* Note a broken invariant (the first one is reported); returns -EPROTO for the caller. */
int sim_fail(struct sim_verdict *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* splitmix64, the scenarios' draws. */
static inline uint64_t sim_draw(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* A draw in 0 .. n-1. */
static inline unsigned sim_below(uint64_t *state, unsigned n)
{
    return (unsigned)(sim_draw(state) % n);
}

extern const struct sim_scenario sim_scenario_scopes;
extern const struct sim_scenario sim_scenario_http;
extern const struct sim_scenario sim_scenario_xcore4;
extern const struct sim_scenario sim_scenario_xcore8;

#endif
