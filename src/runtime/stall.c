/* stall.c - the stall detector (see stall.h). */
#define _GNU_SOURCE
#include "stall.h"
#include "backtrace.h"
#include "runtime.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

enum { STALL_REPORTS_PER_MIN = 5 };
/* How long the watchdog waits for a stalled thread to take its sample: a thread that does
 * not answer (signals deferred, e.g. under valgrind) is reported without a backtrace. */
#define SAMPLE_WAIT_NS (50 * CRL_MSEC_NS)

/* The watchdog's view of one core. */
struct watch {
    uint64_t last;       /* switches + loop turns when last seen moving */
    int64_t since_ns;    /* when they were last seen moving, or the core asleep */
    int64_t next_ns;     /* how long stalled the next report is due at */
    unsigned reports;    /* reports of this stall so far */
    int64_t window_ns;   /* start of the current minute of reports */
    unsigned in_window;  /* reports made in it */
    unsigned suppressed; /* reports left out in it, told with the next one made */
    uint32_t task_id;    /* the stalled task's id in the trace, from the stall's first sample */
    _Atomic uint64_t stalls;
    struct crl__stall_report kept; /* the last report made, under the watchdog's last_lock */
};

/* A report waiting for the reporter thread: symbolizing takes milliseconds a frame (and
 * the first time, the modules' tables), which must not hold up the watchdog's looks. */
struct pending_report {
    struct pending_report *next;
    unsigned core;
    bool ended; /* "stall ended after" rather than a report */
    int64_t ms; /* how long the stall had lasted */
    unsigned suppressed;
    bool sampled;
    const char *task;
    int nframes;
    uintptr_t frames[CRL__STALL_FRAMES];
};

struct crl__watchdog {
    struct crl__runtime *rt;
    pthread_t reporter;
    struct pending_report *queue, **queue_tail; /* under lock; signalled on cond */
    int64_t threshold_ns, tick_ns;
    pthread_t thread;
    bool started;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool stop;  /* the watchdog is to stop */
    bool drain; /* the watchdog stopped: the reporter ends once the queue is empty */
    struct watch *cores;
    pthread_mutex_t last_lock; /* guards cores[].kept: the dump reads it from any thread */
};

static void on_sample(int sig, siginfo_t *si, void *uc)
{
    (void)sig, (void)si, (void)uc;
    int saved = errno;
    struct crl__core *c = crl__cur;
    if (c) {
        struct crl__stall_core *s = &crl__executor_of(c)->stall;
        uint32_t asked = atomic_load_explicit(&s->asked, memory_order_acquire);
        if (asked != atomic_load_explicit(&s->answered, memory_order_relaxed)) {
            s->task = c->cur ? c->cur->name : "?";
            s->task_id = c->cur && c->cur != &c->loop ? crl__task_trace_id(c->cur) : 0;
            s->nframes = crl__bt_capture(s->frames, CRL__STALL_FRAMES);
            atomic_store_explicit(&s->answered, asked, memory_order_release);
        }
    }
    errno = saved;
}

static pthread_once_t handler_once = PTHREAD_ONCE_INIT;
static int handler_error;

static void install_handler(void)
{
    crl__bt_warm(); /* the unwinder's first use allocates: not in a signal handler */
    struct sigaction sa = {0};
    sa.sa_sigaction = on_sample;
    sa.sa_flags = SA_SIGINFO | SA_RESTART | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    if (sigaction(CRL__STALL_SIGNAL, &sa, NULL) != 0)
        handler_error = -errno;
}

/* CORRAL_STALL_MS, or 25 ms; 0 (or a bad value, logged) turns the detector off. */
static int64_t threshold_from_env(const struct crl_config *cfg)
{
    const char *env = getenv("CORRAL_STALL_MS");
    if (!env || !*env)
        return 25 * CRL_MSEC_NS;
    char *end;
    long long ms = strtoll(env, &end, 10);
    if (*end || ms < 0 || ms > INT64_MAX / CRL_MSEC_NS) {
        crl__log_cfg(cfg, CRL_LOG_WARN,
                     "corral: CORRAL_STALL_MS=%s is not a count of ms; the "
                     "stall detector is off",
                     env);
        return -1;
    }
    return ms ? ms * CRL_MSEC_NS : -1;
}

int crl__stall_init(struct crl__runtime *rt)
{
    if (rt->cfg.stall_ns == 0)
        rt->cfg.stall_ns = threshold_from_env(&rt->cfg);
#ifdef CRL_NO_DIAGNOSTICS
    rt->cfg.stall_ns = -1; /* no switch counts to watch */
#endif
    if (rt->cfg.stall_ns < 0)
        return 0;
    pthread_once(&handler_once, install_handler);
    if (handler_error)
        return handler_error;
    struct crl__watchdog *w = calloc(1, sizeof *w);
    if (w)
        w->cores = calloc(rt->ncores, sizeof *w->cores);
    if (!w || !w->cores) {
        free(w);
        return -ENOMEM;
    }
    w->rt = rt;
    pthread_mutex_init(&w->last_lock, NULL);
    w->threshold_ns = rt->cfg.stall_ns;
    w->tick_ns = w->threshold_ns / 4 > CRL_MSEC_NS ? w->threshold_ns / 4 : CRL_MSEC_NS;
    rt->watchdog = w;
    return 0;
}

void crl__stall_core_start(struct crl__executor *ex)
{
    ex->stall.tid = (pid_t)syscall(SYS_gettid);
    sigset_t one;
    sigemptyset(&one);
    sigaddset(&one, CRL__STALL_SIGNAL);
    pthread_sigmask(SIG_UNBLOCK, &one, NULL);
}

/* Ask core ex's thread for a sample and wait for it (false: it did not answer in time). */
static bool take_sample(struct crl__executor *ex)
{
    struct crl__stall_core *s = &ex->stall;
    uint32_t asked = atomic_load_explicit(&s->asked, memory_order_relaxed) + 1;
    atomic_store_explicit(&s->asked, asked, memory_order_release);
    if (syscall(SYS_tgkill, getpid(), s->tid, CRL__STALL_SIGNAL) != 0)
        return false;
    int64_t until = crl__clock_mono_ns() + SAMPLE_WAIT_NS;
    while (atomic_load_explicit(&s->answered, memory_order_acquire) != asked) {
        if (crl__clock_mono_ns() > until)
            return false;
        struct timespec nap = {0, 100 * 1000};
        nanosleep(&nap, NULL);
    }
    return true;
}

/* At most STALL_REPORTS_PER_MIN a minute: false if this one is to be left out. */
static bool within_rate(struct watch *wc, int64_t now)
{
    if (now - wc->window_ns >= 60 * CRL_SEC_NS) {
        wc->window_ns = now;
        wc->in_window = 0;
    }
    if (wc->in_window >= STALL_REPORTS_PER_MIN) {
        wc->suppressed++;
        return false;
    }
    wc->in_window++;
    return true;
}

static void queue_report(struct crl__watchdog *w, struct pending_report *r)
{
    pthread_mutex_lock(&w->lock);
    *w->queue_tail = r;
    w->queue_tail = &r->next;
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->lock);
}

/* Keep r as the core's last report, for the dump of a core that does not answer. */
static void keep_last(struct crl__watchdog *w, struct watch *wc, const struct pending_report *r)
{
    pthread_mutex_lock(&w->last_lock);
    wc->kept = (struct crl__stall_report){
        .made = true, .ongoing = true, .at_ns = crl__clock_mono_ns(), .ms = r->ms};
    if (r->sampled) {
        wc->kept.task = r->task;
        wc->kept.nframes = r->nframes;
        memcpy(wc->kept.frames, r->frames, sizeof r->frames);
    }
    pthread_mutex_unlock(&w->last_lock);
}

/* A stall's first report (or its first look, when that report is left out): the stall
 * begins in the trace, at the time the core was last seen moving. */
static void trace_stall_begin(struct crl__watchdog *w, unsigned id, struct watch *wc,
                              int64_t stalled)
{
    crl__tracing_stall(w->rt, id, CRL__TRACE_STALL_BEGIN, wc->since_ns, wc->task_id, stalled);
}

static void report(struct crl__watchdog *w, unsigned id, struct watch *wc, int64_t stalled,
                   bool first)
{
    struct pending_report *r = calloc(1, sizeof *r);
    if (!r) {
        if (first) { /* the stall's end will be traced: so is its begin */
            wc->task_id = 0;
            trace_stall_begin(w, id, wc, stalled);
        }
        return;
    }
    struct crl__executor *ex = crl__executor_of(w->rt->smp.cores[id]);
    r->core = id;
    r->ms = stalled / CRL_MSEC_NS;
    r->suppressed = wc->suppressed;
    wc->suppressed = 0;
    r->sampled = take_sample(ex);
    if (r->sampled) {
        r->task = ex->stall.task;
        r->nframes = ex->stall.nframes;
        memcpy(r->frames, ex->stall.frames, sizeof r->frames);
    }
    if (first) { /* before the report is queued: the reporter writes the trace after it */
        wc->task_id = r->sampled ? ex->stall.task_id : 0;
        trace_stall_begin(w, id, wc, stalled);
    }
    keep_last(w, wc, r);
    queue_report(w, r);
}

static void write_report(struct crl__watchdog *w, const struct pending_report *r)
{
    if (r->ended) {
        crl__log_cfg(&w->rt->cfg, CRL_LOG_WARN, "corral: core %u: stall ended after %lld ms",
                     r->core, (long long)r->ms);
        return;
    }
    char msg[4000];
    size_t len = (size_t)snprintf(msg, sizeof msg,
                                  "corral: core %u: stall: task '%s' has run %lld ms without "
                                  "reaching a switch point",
                                  r->core, r->sampled ? r->task : "?", (long long)r->ms);
    if (r->suppressed && len < sizeof msg)
        len += (size_t)snprintf(msg + len, sizeof msg - len, " (%u reports suppressed)",
                                r->suppressed);
    if (!r->sampled && len < sizeof msg)
        len += (size_t)snprintf(msg + len, sizeof msg - len,
                                "\n    (no backtrace: the core's thread did not take its sample)");
    for (int i = 0; r->sampled && i < r->nframes && len + 2 < sizeof msg; i++) {
        char sym[512];
        crl__bt_symbolize(r->frames[i] - (i > 0), sym, sizeof sym);
        len += (size_t)snprintf(msg + len, sizeof msg - len, "\n    #%d %s", i, sym);
    }
    crl__log_cfg(&w->rt->cfg, CRL_LOG_WARN, "%s", msg);
}

/* The reporter thread: writes the queued reports in order, until the watchdog stops and the
 * queue is empty. */
static void *reporter_main(void *arg)
{
    struct crl__watchdog *w = arg;
    pthread_mutex_lock(&w->lock);
    for (;;) {
        struct pending_report *r = w->queue;
        if (!r) {
            if (w->drain)
                break;
            pthread_cond_wait(&w->cond, &w->lock);
            continue;
        }
        w->queue = r->next;
        if (!w->queue)
            w->queue_tail = &w->queue;
        pthread_mutex_unlock(&w->lock);
        write_report(w, r);
        if (!r->ended)
            crl__tracing_to_file(w->rt); /* what the cores did just before */
        free(r);
        pthread_mutex_lock(&w->lock);
    }
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

/* The one line that ends a stall that was reported. */
static void report_end(struct crl__watchdog *w, unsigned id, struct watch *wc, int64_t now)
{
    if (wc->reports) {
        crl__tracing_stall(w->rt, id, CRL__TRACE_STALL_END, now, wc->task_id, now - wc->since_ns);
        struct pending_report *r = calloc(1, sizeof *r);
        if (r) {
            *r = (struct pending_report){
                .core = id, .ended = true, .ms = (now - wc->since_ns) / CRL_MSEC_NS};
            queue_report(w, r);
        }
        pthread_mutex_lock(&w->last_lock);
        wc->kept.ongoing = false;
        pthread_mutex_unlock(&w->last_lock);
    }
    wc->reports = 0;
}

static void look_at(struct crl__watchdog *w, unsigned id, int64_t now)
{
    struct crl__executor *ex = crl__executor_of(w->rt->smp.cores[id]);
    struct watch *wc = &w->cores[id];
    uint64_t progress = __atomic_load_n(&ex->core.stats.switches, __ATOMIC_RELAXED) +
                        __atomic_load_n(&ex->core.stats.loop_turns, __ATOMIC_RELAXED);
    bool asleep = atomic_load_explicit(&ex->smp.sleeping, memory_order_relaxed);
    /* A core whose loop has not turned yet is still starting (crl_run), not stalled. */
    bool starting = __atomic_load_n(&ex->core.stats.loop_turns, __ATOMIC_RELAXED) == 0;
    if (asleep || starting || progress != wc->last) {
        report_end(w, id, wc, now);
        wc->last = progress;
        wc->since_ns = now;
        wc->next_ns = w->threshold_ns;
        return;
    }
    int64_t stalled = now - wc->since_ns;
    if (stalled < wc->next_ns)
        return;
    bool first = wc->reports++ == 0;
    if (first)
        atomic_store_explicit(&wc->stalls,
                              atomic_load_explicit(&wc->stalls, memory_order_relaxed) + 1,
                              memory_order_relaxed);
    wc->next_ns = wc->next_ns > INT64_MAX / 2 ? INT64_MAX : wc->next_ns * 2;
    if (within_rate(wc, now)) {
        report(w, id, wc, stalled, first);
    } else if (first) {
        wc->task_id = 0;
        trace_stall_begin(w, id, wc, stalled);
    }
}

static void *watchdog_main(void *arg)
{
    struct crl__watchdog *w = arg;
    int64_t now = crl__clock_mono_ns();
    for (unsigned i = 0; i < w->rt->ncores; i++) {
        w->cores[i].since_ns = now;
        w->cores[i].next_ns = w->threshold_ns;
        w->cores[i].window_ns = now;
    }
    pthread_mutex_lock(&w->lock);
    while (!w->stop) {
        int64_t t = crl__clock_mono_ns() + w->tick_ns;
        struct timespec at;
        at.tv_sec = t / CRL_SEC_NS;
        at.tv_nsec = t % CRL_SEC_NS;
        pthread_cond_timedwait(&w->cond, &w->lock, &at);
        if (w->stop)
            break;
        pthread_mutex_unlock(&w->lock);
        now = crl__clock_mono_ns();
        for (unsigned i = 0; i < w->rt->ncores; i++)
            look_at(w, i, now);
        pthread_mutex_lock(&w->lock);
    }
    pthread_mutex_unlock(&w->lock);
    /* The runtime is stopping: a stall still open ended when its core's last task did. */
    now = crl__clock_mono_ns();
    for (unsigned i = 0; i < w->rt->ncores; i++)
        report_end(w, i, &w->cores[i], now);
    return NULL;
}

int crl__stall_start(struct crl__runtime *rt)
{
    struct crl__watchdog *w = rt->watchdog;
    if (!w)
        return 0;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&w->cond, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&w->lock, NULL);
    /* The watchdog takes no process signal: they stay for the program's own threads. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    w->queue_tail = &w->queue;
    int rc = pthread_create(&w->thread, NULL, watchdog_main, w);
    if (!rc && (rc = pthread_create(&w->reporter, NULL, reporter_main, w))) {
        pthread_mutex_lock(&w->lock);
        w->stop = w->drain = true;
        pthread_cond_broadcast(&w->cond);
        pthread_mutex_unlock(&w->lock);
        pthread_join(w->thread, NULL);
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc) {
        pthread_cond_destroy(&w->cond);
        pthread_mutex_destroy(&w->lock);
        pthread_mutex_destroy(&w->last_lock);
        free(w->cores);
        free(w);
        rt->watchdog = NULL;
        return -rc;
    }
    w->started = true;
    return 0;
}

void crl__stall_stop(struct crl__runtime *rt)
{
    struct crl__watchdog *w = rt->watchdog;
    if (!w || !w->started)
        return;
    w->started = false;
    pthread_mutex_lock(&w->lock);
    w->stop = true;
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->lock);
    pthread_join(w->thread, NULL);
    pthread_mutex_lock(&w->lock);
    w->drain = true;
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->lock);
    pthread_join(w->reporter, NULL); /* after the queued reports are written */
    pthread_cond_destroy(&w->cond);
    pthread_mutex_destroy(&w->lock);
}

uint64_t crl__stall_count(const struct crl__runtime *rt, unsigned id)
{
    const struct crl__watchdog *w = rt->watchdog;
    return w && id < rt->ncores ? atomic_load_explicit(&w->cores[id].stalls, memory_order_relaxed)
                                : 0;
}

bool crl__stall_last(struct crl__runtime *rt, unsigned id, struct crl__stall_report *out)
{
    struct crl__watchdog *w = rt->watchdog;
    if (!w || id >= rt->ncores)
        return false;
    pthread_mutex_lock(&w->last_lock);
    *out = w->cores[id].kept;
    pthread_mutex_unlock(&w->last_lock);
    return out->made;
}

void crl__stall_fini(struct crl__runtime *rt)
{
    struct crl__watchdog *w = rt->watchdog;
    if (!w)
        return;
    pthread_mutex_destroy(&w->last_lock);
    free(w->cores);
    free(w);
    rt->watchdog = NULL;
}
