/* pool.h - the blocking pool: threads that run calls which would block a core. A job is a
 * record in the waiting task's frame; the thread that finished it hands it back to its core
 * through the core's completion list and wake-up eventfd. */
#ifndef CRL_IO_POOL_H
#define CRL_IO_POOL_H

#include "../core/core.h"

enum crl__job_state {
    CRL__JOB_QUEUED,
    CRL__JOB_RUNNING,
    CRL__JOB_DONE,
    CRL__JOB_DROPPED,
    CRL__JOB_ABANDONED, /* running, but its core gave up on it: the thread releases it */
};

struct crl__job {
    int (*run)(struct crl__job *job); /* on a pool thread; its return value is result */
    void (*done)(struct crl__core *c, struct crl__job *job); /* back on the core */
    /* An abandoned job (crl__pool_abandon), on whatever thread lets go of it last: frees it.
     * NULL for jobs that are never abandoned. */
    void (*release)(struct crl__job *job);
    struct crl__core *core;
    struct crl__job *next;
    int result;
    int state; /* enum crl__job_state, changed under the pool's lock */
};

/* Queue job on the pool (started on first use). Never blocks. */
int crl__pool_submit(struct crl__core *c, struct crl__job *job);
/* Remove job if it has not started: true if removed (done will not be called). */
bool crl__pool_cancel(struct crl__job *job);
/* Give up on job, which lives on the heap, from its core: a job still queued is removed and
 * released now, one running is released by its thread when run returns; either way done
 * will not be called and true is returned (the caller's offload_pending count is its own
 * to drop). false when the job is done already: done is still to be called on the core. */
bool crl__pool_abandon(struct crl__job *job);
/* On the core, after its wake-up fd fired: call done for every finished job. */
void crl__pool_reap(struct crl__core *c);
/* Before core c closes its wake-up fd: wait until no pool thread is about to write it. */
void crl__pool_wait_wakers(struct crl__core *c);
/* Stop and join the pool's threads (when the runtime ends). */
void crl__pool_stop(void);

#endif
