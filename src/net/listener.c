/* listener.c - a standing accept. On io_uring one multishot accept SQE delivers every
 * connection as a CQE; they queue here until a task takes them, so a burst of connections
 * costs one SQE, not one per accept. The multishot op belongs to the listener and lives as
 * long as it: closing the listener cancels it and waits for its last CQE, and connections
 * still queued are closed, never leaked. Backends without multishot accept (epoll) fall
 * back to crl_accept per call. */
#define _GNU_SOURCE
#include "net.h"
#include "../core/count.h"

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

struct crl_listener {
    struct crl__op op; /* the standing accept (io_uring) */
    struct crl__core *core;
    int lfd;
    bool armed; /* the multishot op is in the kernel */
    bool closing;
    bool lfd_closed; /* crl_close(lfd) ended the standing accept (-EBADF): for good */
    int error;       /* why the multishot op ended, to report once */
    int *fds;        /* accepted, not yet taken: a ring */
    size_t head, len, cap;
    struct crl_event ready; /* set while fds are queued, an error waits, or it closes */
};

static void on_accept(struct crl__core *c, struct crl__op *op, int res, bool more);

static void arm(struct crl_listener *l)
{
    struct crl__core *c = l->core;
    l->op.kind = CRL__OP_ACCEPT; /* what it does; the backend knows it as a standing one */
    l->op.fd = l->lfd;
    l->op.flags = SOCK_NONBLOCK | SOCK_CLOEXEC;
    l->op.done = false;
    l->armed = true;
    CRL__COUNT(&c->stats, accept_calls);
    c->io->pending++; /* a standing op: the core is not idle while it may deliver */
    c->io->ops->accept_multi(c, &l->op, on_accept);
}

int crl_listener_open(struct crl_listener **out, int lfd)
{
    struct crl__core *c = crl__self()->core;
    struct crl_listener *l = calloc(1, sizeof *l);
    if (!l)
        return -ENOMEM;
    l->core = c;
    l->lfd = lfd;
    crl_event_init(&l->ready);
    if (c->io->ops->accept_multi)
        arm(l);
    *out = l;
    return 0;
}

static bool push_fd(struct crl_listener *l, int fd)
{
    if (l->len == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        int *fds = malloc(cap * sizeof *fds);
        if (!fds)
            return false;
        for (size_t i = 0; i < l->len; i++)
            fds[i] = l->fds[(l->head + i) % l->cap];
        free(l->fds);
        l->fds = fds;
        l->head = 0;
        l->cap = cap;
    }
    l->fds[(l->head + l->len) % l->cap] = fd;
    l->len++;
    return true;
}

/* One report of the standing accept (more: more will follow). */
static void on_accept(struct crl__core *c, struct crl__op *op, int res, bool more)
{
    struct crl_listener *l = crl__container_of(op, struct crl_listener, op);
    if (res >= 0 && (l->closing || !push_fd(l, res)))
        c->io->ops->sys->close(res); /* nobody will take it */
    if (!more) { /* the multishot accept ended: cancelled, or an error such as EMFILE */
        l->armed = false;
        c->io->pending--;
        if (res == -EBADF)
            l->lfd_closed = true;
        else if (res < 0 && res != -ECANCELED)
            l->error = res;
    }
    if (l->len || !l->armed)
        crl_event_set(&l->ready);
}

static int take_fd(struct crl_listener *l)
{
    int fd = l->fds[l->head];
    l->head = (l->head + 1) % l->cap;
    if (--l->len == 0 && l->armed)
        crl_event_clear(&l->ready);
    return fd;
}

/* A listener belongs to its core (checked where assertions are on). */
static void check_core(const struct crl_listener *l)
{
#ifndef NDEBUG
    struct crl__core *c = crl__core();
    if (c && c != l->core)
        crl__panic("corral: listener %p belongs to core %u but was used from core %u",
                   (const void *)l, l->core->id, c->id);
#else
    (void)l;
#endif
}

int crl_listener_accept(struct crl_listener *l)
{
    check_core(l);
    struct crl__core *c = l->core;
    if (!c->io->ops->accept_multi)
        return crl_accept(l->lfd, NULL, NULL);
    int64_t backoff_ns = CRL__ACCEPT_BACKOFF_START_NS;
    for (;;) {
        if (l->len)
            return take_fd(l);
        if (!l->armed) {
            if (l->lfd_closed)
                return -EBADF;
            int err = l->error;
            l->error = 0;
            if (err == -EMFILE || err == -ENFILE) {
                int rc = crl__accept_backoff(c, &backoff_ns);
                if (rc)
                    return rc;
            } else if (err) {
                return err;
            }
            crl_event_clear(&l->ready);
            arm(l);
        }
        int rc = crl_event_wait(&l->ready);
        if (rc)
            return rc;
    }
}

static int wait_disarmed(struct crl_scope *s, void *arg)
{
    struct crl_listener *l = arg;
    crl_scope_shield(s, true); /* closing must finish even in a cancelled task */
    while (l->armed)
        crl_event_wait(&l->ready);
    return 0;
}

void crl_listener_close(struct crl_listener *l)
{
    check_core(l);
    struct crl__core *c = l->core;
    l->closing = true; /* from here on, connections still arriving are closed at once */
    while (l->len)
        c->io->ops->sys->close(
            take_fd(l)); /* also clears ready, which stays clear until the op ends */
    if (l->armed) {
        c->io->ops->cancel(c, &l->op);
        crl_scope_run(wait_disarmed, l);
    }
    free(l->fds);
    free(l);
}
