/* forms.c - the static forms of structured concurrency built on scopes: join-all, try-join
 * (fail fast), race (first to end wins, the rest are cancelled), race-ok (first to succeed
 * wins) and with-deadline. */
#include "core.h"

#include <errno.h>
#include <stdlib.h>

struct jobs {
    struct crl_job *jobs;
    size_t n;
    crl_task_fn *wrapper;
};

/* join-all: a job's failure is recorded, never propagated to the scope. */
static int job_keep(void *p)
{
    struct crl_job *j = p;
    j->result = j->fn(j->arg);
    return 0;
}

/* try-join: a job's failure fails the scope, which cancels the other jobs. */
static int job_fail_fast(void *p)
{
    struct crl_job *j = p;
    j->result = j->fn(j->arg);
    return j->result < 0 ? j->result : 0;
}

static int spawn_jobs(struct crl_scope *s, void *p)
{
    struct jobs *js = p;
    for (size_t i = 0; i < js->n; i++) {
        struct crl_job *j = &js->jobs[i];
        j->result = -ECANCELED;
        int rc = crl_spawn_named(s, js->wrapper, j, j->name ? j->name : "job");
        if (rc)
            return rc;
    }
    return 0;
}

int crl_join_all(struct crl_job *jobs, size_t n)
{
    struct jobs js = {jobs, n, job_keep};
    int rc = crl_scope_run(spawn_jobs, &js);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < n; i++)
        if (jobs[i].result < 0)
            return jobs[i].result;
    return 0;
}

int crl_try_join(struct crl_job *jobs, size_t n)
{
    struct jobs js = {jobs, n, job_fail_fast};
    int rc = crl_scope_run(spawn_jobs, &js);
    return rc < 0 ? rc : 0;
}

/* ---- race ------------------------------------------------------------------------------- */

struct race {
    struct crl_job *jobs;
    size_t n;
    struct crl_scope *scope;
    long winner;
    bool need_success; /* crl_race_ok: a job that failed does not win */
};

struct race_entry {
    struct race *race;
    size_t index;
};

static int race_job(void *p)
{
    struct race_entry *e = p;
    struct race *r = e->race;
    struct crl_job *j = &r->jobs[e->index];
    j->result = j->fn(j->arg);
    if (r->winner < 0 && (!r->need_success || j->result >= 0)) {
        r->winner = (long)e->index;
        crl_scope_cancel(r->scope);
    }
    return 0;
}

static int race_body(struct crl_scope *s, void *p)
{
    struct race_entry *entries = p;
    struct race *r = entries[0].race;
    r->scope = s;
    for (size_t i = 0; i < r->n; i++) {
        struct crl_job *j = &r->jobs[i];
        j->result = -ECANCELED;
        int rc = crl_spawn_named(s, race_job, &entries[i], j->name ? j->name : "job");
        if (rc)
            return rc;
    }
    return 0;
}

/* Run the race r over its jobs: 0 once every job has ended (r->winner set or not), or the
 * race's scope's error. */
static int race_run(struct race *r)
{
    struct race_entry *entries = malloc(r->n * sizeof *entries);
    if (!entries)
        return -ENOMEM;
    for (size_t i = 0; i < r->n; i++)
        entries[i] = (struct race_entry){r, i};
    int rc = crl_scope_run(race_body, entries);
    free(entries);
    return rc < 0 ? rc : 0;
}

int crl_race(struct crl_job *jobs, size_t n)
{
    if (n == 0)
        return -EINVAL;
    struct race r = {jobs, n, NULL, -1, false};
    int rc = race_run(&r);
    if (rc < 0)
        return rc;
    if (r.winner < 0)
        return -ECANCELED;
    /* A "winner" that only ended because the race was cancelled from outside wins nothing. */
    int res = jobs[r.winner].result;
    int outer = crl_checkpoint();
    if ((res == -ECANCELED || res == -ETIMEDOUT) && outer)
        return outer;
    return (int)r.winner;
}

int crl_race_ok(struct crl_job *jobs, size_t n)
{
    if (n == 0)
        return -EINVAL;
    struct race r = {jobs, n, NULL, -1, true};
    int rc = race_run(&r);
    if (rc < 0)
        return rc;
    if (r.winner >= 0)
        return (int)r.winner; /* a success is one even if the race was cancelled meanwhile */
    int outer = crl_checkpoint();
    if (outer)
        return outer; /* the jobs failed because the race was cancelled from outside */
    for (size_t i = 0; i < n; i++)
        if (jobs[i].result < 0)
            return jobs[i].result;
    return -ECANCELED; /* not reached: with no winner every job failed */
}

/* ---- with-deadline ---------------------------------------------------------------------- */

struct deadline_call {
    int64_t deadline_ns;
    crl_task_fn *fn;
    void *arg;
};

static int deadline_body(struct crl_scope *s, void *p)
{
    struct deadline_call *d = p;
    crl_scope_set_deadline(s, d->deadline_ns);
    return d->fn(d->arg);
}

int crl_with_deadline(int64_t deadline_ns, crl_task_fn *fn, void *arg)
{
    struct deadline_call d = {deadline_ns, fn, arg};
    return crl_scope_run(deadline_body, &d);
}

int crl_with_timeout(int64_t timeout_ns, crl_task_fn *fn, void *arg)
{
    return crl_with_deadline(crl__deadline_after(crl_now_ns(), timeout_ns), fn, arg);
}
