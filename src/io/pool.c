/* pool.c - the blocking pool behind crl_offload and, on epoll, file I/O. Threads take jobs
 * from one FIFO under a mutex (this is the cold path: a job costs microseconds of thread
 * wake-up anyway), run them with every signal blocked, and hand each back to the core that
 * queued it: onto the core's completion list, then a write to its wake-up eventfd. The core
 * drains the list in its loop and completes the jobs there. */
#define _GNU_SOURCE
#include "io.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

enum { DEFAULT_THREADS = 4, MAX_THREADS = 256 };

static struct {
    pthread_mutex_t lock;
    pthread_cond_t work;
    struct crl__job *head, *tail;
    pthread_t threads[MAX_THREADS];
    unsigned nthreads;
    bool stopping;
} pool = {.lock = PTHREAD_MUTEX_INITIALIZER, .work = PTHREAD_COND_INITIALIZER};

/* Put job on its core's list; called with pool.lock held. Returns the core to wake (with
 * wake_core, once every lock is let go), or NULL when an earlier job's wake-up is still to be
 * taken in: the core takes the whole list after it is woken. */
static struct crl__core *hand_back(struct crl__job *job)
{
    struct crl__core *c = job->core;
    pthread_mutex_lock(&c->io->done_lock);
    bool woken = c->io->done_jobs != NULL;
    job->next = c->io->done_jobs;
    c->io->done_jobs = job; /* from here on the job belongs to its core again */
    /* Counted before the core can see the job: it may take the job in (woken by an earlier
     * one) and stop, and its wake_fd must stay open until our write (crl__pool_wait_wakers). */
    if (!woken)
        atomic_fetch_add_explicit(&c->io->waking, 1, memory_order_relaxed);
    pthread_mutex_unlock(&c->io->done_lock);
    return woken ? NULL : c;
}

/* Outside the locks: the core, woken, runs at once on this CPU and may take them itself. */
static void wake_core(struct crl__core *c)
{
    uint64_t one = 1;
    ssize_t unused = write(c->io->wake_fd, &one, sizeof one);
    (void)unused;
    atomic_fetch_sub_explicit(&c->io->waking, 1, memory_order_release);
}

void crl__pool_wait_wakers(struct crl__core *c)
{
    while (atomic_load_explicit(&c->io->waking, memory_order_acquire))
        sched_yield();
}

static void *worker(void *unused)
{
    (void)unused;
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL); /* signals are for the executors' signalfds */
    pthread_mutex_lock(&pool.lock);
    for (;;) {
        while (!pool.head && !pool.stopping)
            pthread_cond_wait(&pool.work, &pool.lock);
        if (!pool.head)
            break;
        struct crl__job *job = pool.head;
        pool.head = job->next;
        if (!pool.head)
            pool.tail = NULL;
        job->state = CRL__JOB_RUNNING;
        pthread_mutex_unlock(&pool.lock);
        job->result = job->run(job);
        pthread_mutex_lock(&pool.lock);
        if (job->state == CRL__JOB_ABANDONED) { /* its core no longer expects it */
            pthread_mutex_unlock(&pool.lock);
            job->release(job);
            pthread_mutex_lock(&pool.lock);
            continue;
        }
        job->state = CRL__JOB_DONE;
        /* Under pool.lock, so that crl__pool_abandon sees the job either still running or
         * already on its core's list, never in between. */
        struct crl__core *wake = hand_back(job);
        if (wake) {
            pthread_mutex_unlock(&pool.lock);
            wake_core(wake);
            pthread_mutex_lock(&pool.lock);
        }
    }
    pthread_mutex_unlock(&pool.lock);
    return NULL;
}

/* Start the threads on first use; called with pool.lock held. */
static int start_threads(unsigned want)
{
    if (want == 0)
        want = DEFAULT_THREADS;
    if (want > MAX_THREADS)
        want = MAX_THREADS;
    while (pool.nthreads < want) {
        int rc = pthread_create(&pool.threads[pool.nthreads], NULL, worker, NULL);
        if (rc)
            return pool.nthreads ? 0 : -rc;
        pool.nthreads++;
    }
    return 0;
}

int crl__pool_submit(struct crl__core *c, struct crl__job *job)
{
    job->core = c;
    job->next = NULL;
    job->state = CRL__JOB_QUEUED;
    pthread_mutex_lock(&pool.lock);
    int rc = pool.nthreads ? 0 : start_threads(c->cfg->offload_threads);
    if (rc == 0) {
        if (pool.tail)
            pool.tail->next = job;
        else
            pool.head = job;
        pool.tail = job;
    }
    pthread_mutex_unlock(&pool.lock);
    if (rc == 0) { /* after the unlock: a thread woken on this CPU finds the lock free */
        pthread_cond_signal(&pool.work);
        CRL__COUNT(&c->stats, pool_queued);
    }
    return rc;
}

/* Take a queued job off the queue; called with pool.lock held. */
static bool unqueue(struct crl__job *job)
{
    if (job->state != CRL__JOB_QUEUED)
        return false;
    struct crl__job **pp = &pool.head, *prev = NULL;
    while (*pp && *pp != job) {
        prev = *pp;
        pp = &(*pp)->next;
    }
    if (!*pp)
        return false;
    *pp = job->next;
    if (pool.tail == job)
        pool.tail = prev;
    job->state = CRL__JOB_DROPPED;
    return true;
}

bool crl__pool_cancel(struct crl__job *job)
{
    pthread_mutex_lock(&pool.lock);
    bool removed = unqueue(job);
    pthread_mutex_unlock(&pool.lock);
    return removed;
}

bool crl__pool_abandon(struct crl__job *job)
{
    pthread_mutex_lock(&pool.lock);
    bool removed = unqueue(job);
    bool running = !removed && job->state == CRL__JOB_RUNNING;
    if (running)
        job->state = CRL__JOB_ABANDONED;
    pthread_mutex_unlock(&pool.lock);
    if (removed)
        job->release(job);
    return removed || running;
}

void crl__pool_reap(struct crl__core *c)
{
    pthread_mutex_lock(&c->io->done_lock);
    struct crl__job *job = c->io->done_jobs;
    c->io->done_jobs = NULL;
    pthread_mutex_unlock(&c->io->done_lock);
    while (job) {
        struct crl__job *next = job->next; /* done() may end the job's owner */
        c->io->offload_pending--;
        CRL__COUNT(&c->stats, pool_run);
        job->done(c, job);
        job = next;
    }
}

void crl__pool_stop(void)
{
    pthread_mutex_lock(&pool.lock);
    pool.stopping = true;
    pthread_cond_broadcast(&pool.work);
    unsigned n = pool.nthreads;
    pthread_mutex_unlock(&pool.lock);
    for (unsigned i = 0; i < n; i++)
        pthread_join(pool.threads[i], NULL);
    pthread_mutex_lock(&pool.lock);
    pool.nthreads = 0;
    pool.stopping = false;
    pthread_mutex_unlock(&pool.lock);
}
