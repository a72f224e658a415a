/* bench-smp.c - cross-core call round trips, `name value unit` lines like the peers'. With
 * one caller making calls one after another, the target core goes back to sleep between
 * them: this is the round trip to a sleeping core (a wake-up each time).
 *   bench-smp
 */
#define _GNU_SOURCE
#include "corral.h"

#include <stdio.h>
#include <stdlib.h>

enum { REPS = 5, CALLS = 5000 };

static int trivial(void *arg) { return arg ? 1 : 0; }

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int bench_main(void *arg)
{
    (void)arg;
    double ns[REPS];
    for (int i = 0; i < 200; i++)
        crl_call(1, trivial, NULL);
    for (int r = 0; r < REPS; r++) {
        int64_t t0 = crl_now_ns();
        for (int i = 0; i < CALLS; i++)
            crl_call(1, trivial, NULL);
        ns[r] = (double)(crl_now_ns() - t0) / CALLS;
    }
    qsort(ns, REPS, sizeof ns[0], cmp);
    printf("corral_%s_xcore_call_rtt_asleep %.0f ns\n", crl_io_backend(), ns[REPS / 2]);
    return 0;
}

int main(void)
{
    struct crl_config cfg = {.cores = 2};
    return crl_run(&cfg, bench_main, NULL) < 0;
}
