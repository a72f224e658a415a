/* fetch.c - the README's example: four children fill a borrowed array, under a deadline. */
#include <corral.h>
#include <stdio.h>

struct fetch {
    int id;
    int result;
};

static int fetch_one(void *arg) /* a task: blocks like ordinary code */
{
    struct fetch *f = arg;
    int rc = crl_sleep_ns(5 * CRL_MSEC_NS); /* a cancellation point */
    if (rc)
        return rc; /* -ECANCELED or -ETIMEDOUT */
    f->result = f->id * 2;
    return 0;
}

static int fetch_all(struct crl_scope *s, void *arg)
{
    struct fetch *fs = arg; /* borrowed from the caller's frame */
    crl_scope_set_deadline(s, crl_now_ns() + CRL_SEC_NS);
    for (int i = 0; i < 4; i++) {
        int rc = crl_spawn(s, fetch_one, &fs[i]);
        if (rc)
            return rc;
    }
    return 0; /* crl_scope_run joins the children */
}

static int app(void *arg)
{
    (void)arg;
    struct fetch fs[4] = {{0, 0}, {1, 0}, {2, 0}, {3, 0}};
    int rc = crl_scope_run(fetch_all, fs); /* first error cancels the rest and is returned */
    for (int i = 0; i < 4 && rc == 0; i++)
        printf("fetch %d -> %d\n", fs[i].id, fs[i].result);
    return rc;
}

int main(void) { return crl_run(NULL, app, NULL) < 0; }
