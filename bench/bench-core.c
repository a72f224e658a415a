/* bench-core.c - micro-benchmarks of corral's core, printed as `name value unit` lines (the
 * format of ../shared/peers/micro), each the median of several repetitions in-process.
 * bench/core.sh runs this and the peers' programs in one invocation and prints ratios.
 *
 *   bench-core [--quick] [--no-million]
 */
#define _GNU_SOURCE
#include "corral.h"

#include "bench.h"

#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { REPS = 7 };

static bool quick;
static bool million = true;

/* Run one measurement REPS times; each returns ns per operation. */
static double measure(double (*once)(long n), long n)
{
    double v[REPS];
    once(n / 10); /* warm-up: stacks pooled, caches warm */
    for (int i = 0; i < REPS; i++)
        v[i] = once(n);
    return bench_median(v, REPS);
}

/* ---- yield ------------------------------------------------------------------------------ */

struct yielders {
    long n;
};

static int yield_n(void *arg)
{
    long n = ((struct yielders *)arg)->n;
    for (long i = 0; i < n; i++)
        crl_yield();
    return 0;
}

struct yield_run {
    struct yielders y;
    int tasks;
};

static int spawn_yielders(struct crl_scope *s, void *arg)
{
    struct yield_run *r = arg;
    for (int i = 0; i < r->tasks; i++)
        crl_spawn(s, yield_n, &r->y);
    return 0;
}

static int yield_tasks;

static double yield_once(long n)
{
    struct yield_run r = {{n / yield_tasks}, yield_tasks};
    int64_t t0 = crl_now_ns();
    crl_scope_run(spawn_yielders, &r);
    return (double)(crl_now_ns() - t0) / (double)(r.y.n * yield_tasks);
}

/* ---- spawn + join ----------------------------------------------------------------------- */

static int trivial(void *arg)
{
    (void)arg;
    return 0;
}

static int spawn_one(struct crl_scope *s, void *arg)
{
    (void)arg;
    return crl_spawn(s, trivial, NULL);
}

/* Like Tokio's spawn(trivial).await: spawn one child, wait for it, in one long-lived scope. */
static int spawn_join_loop(struct crl_scope *s, void *arg)
{
    long n = *(long *)arg;
    for (long i = 0; i < n; i++) {
        crl_spawn(s, trivial, NULL);
        crl_scope_join(s);
    }
    return 0;
}

static double spawn_join_once(long n)
{
    int64_t t0 = crl_now_ns();
    crl_scope_run(spawn_join_loop, &n);
    return (double)(crl_now_ns() - t0) / (double)n;
}

/* The same with a new scope (nursery) opened and closed around every child. */
static double scope_spawn_join_once(long n)
{
    int64_t t0 = crl_now_ns();
    for (long i = 0; i < n; i++)
        crl_scope_run(spawn_one, NULL);
    return (double)(crl_now_ns() - t0) / (double)n;
}

static int spawn_1000(struct crl_scope *s, void *arg)
{
    (void)arg;
    for (int i = 0; i < 1000; i++)
        crl_spawn(s, trivial, NULL);
    return 0;
}

static double spawn_batch_once(long n)
{
    long rounds = n / 1000 ? n / 1000 : 1;
    int64_t t0 = crl_now_ns();
    for (long i = 0; i < rounds; i++)
        crl_scope_run(spawn_1000, NULL);
    return (double)(crl_now_ns() - t0) / (double)(rounds * 1000);
}

/* ---- channel, producer task -> consumer task -------------------------------------------- */

struct chan_run {
    struct crl_chan ch;
    long n;
    long sum;
};

static int producer(void *arg)
{
    struct chan_run *r = arg;
    for (long i = 0; i < r->n; i++)
        crl_chan_send(&r->ch, &i);
    return 0;
}

static int consumer(void *arg)
{
    struct chan_run *r = arg;
    long v;
    for (long i = 0; i < r->n; i++) {
        crl_chan_recv(&r->ch, &v);
        r->sum += v;
    }
    return 0;
}

static int spawn_pair(struct crl_scope *s, void *arg)
{
    crl_spawn(s, producer, arg);
    crl_spawn(s, consumer, arg);
    return 0;
}

static double chan_once(long n)
{
    struct chan_run r = {.n = n};
    crl_chan_init(&r.ch, sizeof(long), 1024);
    int64_t t0 = crl_now_ns();
    crl_scope_run(spawn_pair, &r);
    double ns = (double)(crl_now_ns() - t0) / (double)n;
    crl_chan_fini(&r.ch);
    if (r.sum != n * (n - 1) / 2)
        fprintf(stderr, "channel lost messages\n");
    return ns;
}

/* ---- checkpoint: the cost of a cancellation point in a loop that computes ------------- */

static int checkpoints(void *arg)
{
    long n = *(long *)arg;
    for (long i = 0; i < n; i++)
        if (crl_checkpoint() != 0)
            return -1;
    return 0;
}

/* Without a timer on the core a checkpoint reads no clock; under a deadline it reads one. */
static double checkpoint_once(long n)
{
    int64_t t0 = crl_now_ns();
    checkpoints(&n);
    return (double)(crl_now_ns() - t0) / (double)n;
}

static double checkpoint_deadline_once(long n)
{
    int64_t t0 = crl_now_ns();
    crl_with_timeout(3600 * CRL_SEC_NS, checkpoints, &n);
    return (double)(crl_now_ns() - t0) / (double)n;
}

/* ---- idle tasks: RSS per task, and a million of them ------------------------------------ */

static long rss_bytes(void)
{
    long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f)
        return -1;
    if (fscanf(f, "%ld %ld", &pages, &resident) != 2)
        resident = -1;
    fclose(f);
    return resident * sysconf(_SC_PAGESIZE);
}

static long count_lines(const char *path)
{
    FILE *f = fopen(path, "r");
    long n = 0;
    int c;
    if (!f)
        return -1;
    while ((c = fgetc(f)) != EOF)
        n += c == '\n';
    fclose(f);
    return n;
}

static long read_long(const char *path)
{
    long v = -1;
    FILE *f = fopen(path, "r");
    if (f) {
        if (fscanf(f, "%ld", &v) != 1)
            v = -1;
        fclose(f);
    }
    return v;
}

/* A field of /proc/self/status in kB (VmPTE: the page tables), or -1. */
static long status_kb(const char *field)
{
    char line[256];
    long v = -1;
    size_t n = strlen(field);
    FILE *f = fopen("/proc/self/status", "r");
    if (!f)
        return -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, field, n) == 0 && line[n] == ':')
            v = strtol(line + n + 1, NULL, 10);
    fclose(f);
    return v;
}

struct idle_run;

struct idle_half { /* the even or the odd tasks, in order of spawning */
    struct idle_run *run;
    struct crl_event release;
};

struct idle_run {
    struct idle_half half[2];
    long n, started, ended, spawn_errors;
    long rss_before, rss_idle, maps_idle, maps_half_ended, rss_ended;
    long pte_before_kb, pte_idle_kb; /* page tables: the stacks' guards have entries too */
    int64_t start_ns;
};

static int idle_task(void *arg)
{
    struct idle_half *h = arg;
    h->run->started++;
    int rc = crl_event_wait(&h->release);
    h->run->ended++;
    return rc;
}

static int spawn_idle(struct crl_scope *s, void *arg)
{
    struct idle_run *r = arg;
    int64_t t0 = crl_now_ns();
    for (long i = 0; i < r->n; i++)
        if (crl_spawn(s, idle_task, &r->half[i & 1]) != 0)
            r->spawn_errors++;
    while (r->started + r->spawn_errors < r->n)
        crl_yield();
    r->start_ns = crl_now_ns() - t0;
    r->rss_idle = rss_bytes();
    r->pte_idle_kb = status_kb("VmPTE");
    r->maps_idle = count_lines("/proc/self/maps");
    /* Every other task ends first: stacks go back out of the middle of their slabs. */
    crl_event_set(&r->half[0].release);
    while (r->ended < r->started / 2)
        crl_yield();
    r->maps_half_ended = count_lines("/proc/self/maps");
    crl_event_set(&r->half[1].release);
    return 0;
}

static void idle_tasks(long n, struct idle_run *r)
{
    memset(r, 0, sizeof *r);
    for (int i = 0; i < 2; i++) {
        r->half[i].run = r;
        crl_event_init(&r->half[i].release);
    }
    r->n = n;
    r->rss_before = rss_bytes();
    r->pte_before_kb = status_kb("VmPTE");
    crl_scope_run(spawn_idle, r);
    r->rss_ended = rss_bytes();
}

static int bench_main(void *arg)
{
    (void)arg;
    long scale = quick ? 10 : 1;
    yield_tasks = 2;
    printf("corral_yield_2tasks %.2f ns\n", measure(yield_once, 20000000 / scale));
    yield_tasks = 100;
    printf("corral_yield_100tasks %.2f ns\n", measure(yield_once, 20000000 / scale));
    printf("corral_spawn_join %.2f ns\n", measure(spawn_join_once, 5000000 / scale));
    printf("corral_scope_spawn_join %.2f ns\n", measure(scope_spawn_join_once, 5000000 / scale));
    printf("corral_spawn_batch1000 %.2f ns\n", measure(spawn_batch_once, 5000000 / scale));
    printf("corral_chan_2task %.2f ns\n", measure(chan_once, 20000000 / scale));
    printf("corral_checkpoint %.2f ns\n", measure(checkpoint_once, 20000000 / scale));
    printf("corral_checkpoint_deadline %.2f ns\n",
           measure(checkpoint_deadline_once, 20000000 / scale));
    fflush(stdout);

    struct idle_run r;
    idle_tasks(100000, &r);
    printf("corral_idle_task_rss %.0f bytes\n", (double)(r.rss_idle - r.rss_before) / (double)r.n);
    if (million) {
        idle_tasks(1000000, &r);
        printf("corral_million_idle_started %ld tasks\n", r.started);
        printf("corral_million_idle_spawn_errors %ld tasks\n", r.spawn_errors);
        printf("corral_million_idle_maps %ld lines\n", r.maps_idle);
        printf("corral_million_idle_start_time %.0f ms\n", (double)r.start_ns / 1e6);
        printf("corral_million_idle_rss_per_task %.0f bytes\n",
               (double)(r.rss_idle - r.rss_before) / (double)r.n);
        printf("corral_million_idle_page_tables_per_task %.0f bytes\n",
               (double)(r.pte_idle_kb - r.pte_before_kb) * 1024 / (double)r.n);
        printf("corral_million_half_ended_maps %ld lines\n", r.maps_half_ended);
        printf("corral_million_all_ended_rss %.1f MB\n", (double)r.rss_ended / 1e6);
        printf("vm_max_map_count %ld count\n", read_long("/proc/sys/vm/max_map_count"));
    }
    return 0;
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0)
            quick = true;
        else if (strcmp(argv[i], "--no-million") == 0)
            million = false;
    }
    cpu_set_t cpu0; /* like the peers' single-thread programs: pinned to CPU 0 */
    CPU_ZERO(&cpu0);
    CPU_SET(0, &cpu0);
    sched_setaffinity(0, sizeof cpu0, &cpu0);
    return crl_run(NULL, bench_main, NULL) < 0;
}
