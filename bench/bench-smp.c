/* bench-smp.c - cross-core call round trips, `name value unit` lines like the peers':
 *   awake:  calls back to back, so the target is still polling when the next one comes;
 *   asleep: a 200 us pause before each call (longer than the idle poll), so the target
 *           core has gone to sleep and must be woken; only the calls are timed.
 * Also the CPU both cores spend per asleep call, which includes their idle polling, and the
 * messages per second a cross-core channel (capacity 1024, 8-byte values) carries from a task
 * on core 0 to a task on core 1.
 *   bench-smp
 */
#define _GNU_SOURCE
#include "corral.h"

#include "bench.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>

enum { REPS = 5, AWAKE_CALLS = 20000, ASLEEP_CALLS = 500, CHAN_MSGS = 2000000 };

static int trivial(void *arg) { return arg ? 1 : 0; }

static double cpu_ns(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e9 +
           (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e3;
}

struct chan_run {
    struct crl_xchan *ch;
    long sum;
};

static int chan_send(void *arg)
{
    struct chan_run *r = arg;
    for (long i = 0; i < CHAN_MSGS; i++)
        crl_xchan_send(r->ch, &i);
    crl_xchan_close(r->ch);
    return 0;
}

static int chan_recv(void *arg)
{
    struct chan_run *r = arg;
    long v;
    while (crl_xchan_recv(r->ch, &v) == 0)
        r->sum += v;
    return 0;
}

static int chan_body(struct crl_scope *s, void *arg)
{
    crl_spawn_on(s, 1, chan_recv, arg);
    crl_spawn(s, chan_send, arg);
    return 0;
}

/* Messages per second through a cross-core channel, core 0 to core 1. */
static double chan_rate(void)
{
    struct chan_run r = {0};
    if (crl_xchan_create(&r.ch, sizeof(long), 1024, 0, 1) != 0)
        return -1;
    int64_t t0 = crl_now_ns();
    crl_scope_run(chan_body, &r);
    double secs = (double)(crl_now_ns() - t0) / 1e9;
    crl_xchan_destroy(r.ch);
    if (r.sum != (long)CHAN_MSGS * (CHAN_MSGS - 1) / 2)
        return -1; /* lost or repeated values: no figure */
    return CHAN_MSGS / secs;
}

static int bench_main(void *arg)
{
    (void)arg;
    double awake[REPS], asleep[REPS], cpu[REPS], chan[REPS];
    for (int i = 0; i < 200; i++)
        crl_call(1, trivial, NULL);
    for (int r = 0; r < REPS; r++) {
        int64_t t0 = crl_now_ns();
        for (int i = 0; i < AWAKE_CALLS; i++)
            crl_call(1, trivial, NULL);
        awake[r] = (double)(crl_now_ns() - t0) / AWAKE_CALLS;
        int64_t in_calls = 0;
        double c0 = cpu_ns();
        for (int i = 0; i < ASLEEP_CALLS; i++) {
            crl_sleep_ns(200 * CRL_USEC_NS);
            int64_t t = crl_now_ns();
            crl_call(1, trivial, NULL);
            in_calls += crl_now_ns() - t;
        }
        asleep[r] = (double)in_calls / ASLEEP_CALLS;
        cpu[r] = (cpu_ns() - c0) / ASLEEP_CALLS;
        chan[r] = chan_rate();
    }
    const char *b = crl_io_backend();
    printf("corral_%s_xcore_call_rtt_awake %.0f ns\n", b, bench_median(awake, REPS));
    printf("corral_%s_xcore_call_rtt_asleep %.0f ns\n", b, bench_median(asleep, REPS));
    printf("corral_%s_xcore_cpu_per_asleep_call %.0f ns\n", b, bench_median(cpu, REPS));
    printf("corral_%s_xchan_msgs_per_sec %.0f msg/s\n", b, bench_median(chan, REPS));
    return 0;
}

int main(void)
{
    struct crl_config cfg = {.cores = 2};
    return crl_run(&cfg, bench_main, NULL) < 0;
}
