/* cancel.c - cancellation patterns. The essay's idea: cancellation belongs to the tree of
 * scopes, not to each future. Dropping a Rust future cancels it at whatever .await it sat
 * on, and nothing runs after; here a cancelled task gets -ECANCELED from its blocking call,
 * unwinds like after any error, and may still block in a shielded scope to clean up. Every
 * pattern below is a few lines over that one mechanism:
 *
 *   race          the first answer wins, the others are cancelled        crl_race
 *   timeout       a call bounded by a deadline                           crl_with_timeout
 *   shield        a cancelled worker still flushes its state             crl_scope_shield
 *   hedge         a second request after a delay; the first success wins crl_race_ok
 *   stop button   a sibling cancels a scope it holds no pointer to       crl_scope_token
 */
#include "corral.h"

#include <errno.h>
#include <stdio.h>

/* A server's stand-in: answers after its latency (a hedge first waits delay_ns). */
struct replica {
    const char *name;
    int64_t delay_ns, latency_ns;
    int answer; /* > 0 a response, < 0 an error */
};

static int ask(void *arg)
{
    const struct replica *r = arg;
    int rc = crl_sleep_ns(r->delay_ns + r->latency_ns);
    return rc ? rc : r->answer;
}

static int race(void)
{
    struct replica far = {"far", 0, 30 * CRL_MSEC_NS, 200}, near = {"near", 0, CRL_MSEC_NS, 200};
    struct crl_job jobs[] = {CRL_JOB(ask, &far), CRL_JOB(ask, &near)};
    int won = crl_race(jobs, 2);
    printf("race:    %s answered first; far ended with %d (cancelled)\n",
           won >= 0 ? ((struct replica *)jobs[won].arg)->name : "nobody", jobs[0].result);
    return won == 1 ? 0 : -EPROTO;
}

static int timeout(void)
{
    struct replica slow = {"slow", 0, 10 * CRL_SEC_NS, 200};
    int rc = crl_with_timeout(5 * CRL_MSEC_NS, ask, &slow);
    printf("timeout: asking slow for at most 5 ms gave %d (-ETIMEDOUT)\n", rc);
    return rc == -ETIMEDOUT ? 0 : -EPROTO;
}

/* Each worker gets its own copy of this (crl_spawn_copy): the loop reuses one variable. */
struct worker {
    int id;
    int *flushed; /* in shield()'s frame, which outlives the workers */
};

static int flush(struct crl_scope *s, void *arg)
{
    struct worker *w = arg;
    crl_scope_shield(s, true);              /* the cancellation outside does not reach in here */
    int rc = crl_sleep_ns(2 * CRL_MSEC_NS); /* e.g. writing a journal: it must finish */
    if (rc == 0)
        ++*w->flushed;
    return rc;
}

static int work_until_cancelled(void *arg)
{
    int rc = crl_sleep_ns(10 * CRL_SEC_NS); /* the work: -ECANCELED when cancelled */
    int flushed = crl_scope_run(flush, arg);
    return flushed ? flushed : rc;
}

static int start_workers(struct crl_scope *s, void *arg)
{
    for (int i = 0; i < 3; i++) {
        struct worker w = {i, arg};
        int rc = crl_spawn_copy(s, work_until_cancelled, &w, sizeof w);
        if (rc)
            return rc;
    }
    crl_sleep_ns(CRL_MSEC_NS);
    crl_scope_cancel(s); /* shutting down */
    return 0;
}

static int shield(void)
{
    int flushed = 0;
    int rc = crl_scope_run(start_workers, &flushed);
    printf("shield:  3 workers cancelled, %d flushed their state anyway\n", flushed);
    return rc == 0 && flushed == 3 ? 0 : -EPROTO;
}

static int hedge(void)
{
    struct replica a = {"a", 0, CRL_MSEC_NS, -ECONNREFUSED}, /* fails fast */
        b = {"b", 0, 50 * CRL_MSEC_NS, 200},                 /* slow today */
        b2 = {"b (hedged after 5 ms)", 5 * CRL_MSEC_NS, 5 * CRL_MSEC_NS, 200};
    struct crl_job jobs[] = {CRL_JOB(ask, &a), CRL_JOB(ask, &b), CRL_JOB(ask, &b2)};
    int won = crl_race_ok(jobs, 3); /* crl_race would return a's refusal */
    printf("hedge:   a refused (%d), %s won, b was cancelled (%d)\n", jobs[0].result,
           won >= 0 ? ((struct replica *)jobs[won].arg)->name : "nobody", jobs[1].result);
    return won == 2 ? 0 : -EPROTO;
}

struct download {
    struct crl_cancel_token token; /* a value: no pointer into the download's frame */
    int chunks;
};

static int download_body(struct crl_scope *s, void *arg)
{
    struct download *d = arg;
    int rc = crl_scope_token(s, &d->token);
    while (rc == 0 && (rc = crl_sleep_ns(CRL_MSEC_NS)) == 0)
        d->chunks++;
    return rc; /* -ECANCELED: the scope caught its own cancellation, so run returns 0 */
}

static int download(void *arg) { return crl_scope_run(download_body, arg); }

static int stop_button(void *arg)
{
    struct download *d = arg;
    int rc = crl_sleep_ns(5 * CRL_MSEC_NS); /* the user waits, then presses stop */
    return rc ? rc : crl_token_cancel(d->token);
}

static int download_and_button(struct crl_scope *s, void *arg)
{
    int rc = crl_spawn(s, download, arg);
    return rc ? rc : crl_spawn(s, stop_button, arg);
}

static int stop(void)
{
    struct download d = {{0}, 0};
    int rc = crl_scope_run(download_and_button, &d);
    int later = crl_token_cancel(d.token); /* the download has finished: nothing to cancel */
    printf("stop:    stopped after %d chunks; the token now says %d (-ESRCH)\n", d.chunks, later);
    return rc == 0 && later == -ESRCH ? 0 : -EPROTO;
}

static int run_all(void *arg)
{
    (void)arg;
    int (*const patterns[])(void) = {race, timeout, shield, hedge, stop};
    for (size_t i = 0; i < sizeof patterns / sizeof patterns[0]; i++) {
        int rc = patterns[i]();
        if (rc)
            return rc;
    }
    return 0;
}

int main(void)
{
    int rc = crl_run(NULL, run_all, NULL);
    printf("cancel: %s\n", rc == 0 ? "ok" : "FAILED");
    return rc == 0 ? 0 : 1;
}
