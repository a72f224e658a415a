/* sim_net.c - the simulated backend's network: stream sockets in memory between the tasks of
 * one world (TCP over IPv4 and IPv6, and Unix stream sockets), so that a server and its
 * clients run in one process with no kernel socket.
 *
 * A connection is two sockets, each holding the bytes sent to it until they are read (at most
 * SOCKBUF: a send to a full socket waits, as TCP's window makes it). An operation is tried
 * after a seeded latency (sim.c); one that cannot go on yet (a receive with nothing to read,
 * an accept with nobody connecting) parks on its socket, and every change of that socket
 * sends its waiters back to be tried after another seeded latency. The seed also makes reads
 * and writes short, so every caller meets partial transfers, and the latencies reorder
 * operations across connections. What the kernel would answer is answered: ECONNREFUSED with
 * no listener, EOF after the peer's close or shutdown, ECONNRESET when the peer closed with
 * bytes unread or a listener closed with the connection still in its backlog, EPIPE after
 * our own shutdown or the peer's close, EADDRINUSE for a taken address. */
#define _GNU_SOURCE
#include "sim.h"

#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

enum {
    SOCKBUF = 64 * 1024,     /* bytes a socket holds unread before a send to it waits */
    EPHEMERAL_FIRST = 40000, /* ports given to port 0 and to a connecting socket */
    BACKLOG_MAX = 4096,      /* as net.core.somaxconn */
    MAX_IOV = 64,
};

/* Bytes sent to a socket and not read yet: data[off .. off + len). */
struct bytes {
    char *data;
    size_t off, len, cap;
};

struct crl__sim_sock {
    int fd; /* -1 while it waits in a listener's backlog */
    int family;
    bool bound, listening, connected, reuseport;
    bool shut_rd, shut_wr; /* our own shutdowns */
    bool eof;              /* the peer sends no more: its shutdown, close or reset */
    int error;             /* -ECONNRESET, reported once by the next operation */
    struct sockaddr_storage local, remote;
    socklen_t local_len, remote_len;
    struct bytes rx;
    struct crl__sim_sock *peer; /* the other end, NULL once it closed */
    /* A listener's backlog of connections not accepted yet, and an entry's link in it. */
    struct crl__sim_sock *backlog_head, *backlog_tail, *backlog_next;
    unsigned backlog_len, backlog_max;
    struct crl__op *waiters; /* ops parked until this socket changes, in arrival order */
};

struct crl__sim_net {
    struct crl__sim_sock **socks; /* by fd - CRL__SIM_FD_BASE */
    size_t cap, open;
    unsigned next_port;
};

struct crl__sim_net *crl__sim_net_new(void)
{
    struct crl__sim_net *n = calloc(1, sizeof *n);
    if (n)
        n->next_port = EPHEMERAL_FIRST;
    return n;
}

static void sock_free(struct crl__sim_sock *s)
{
    for (struct crl__sim_sock *e = s->backlog_head, *next; e; e = next) {
        next = e->backlog_next;
        sock_free(e);
    }
    free(s->rx.data);
    free(s);
}

void crl__sim_net_free(struct crl__sim_net *n)
{
    if (!n)
        return;
    for (size_t i = 0; i < n->cap; i++)
        if (n->socks[i])
            sock_free(n->socks[i]);
    free(n->socks);
    free(n);
}

static struct crl__sim_net *net_here(void)
{
    struct crl__sim_world *w = crl__sim_here();
    return w ? w->net : NULL;
}

size_t crl__sim_open_fds(void)
{
    struct crl__sim_net *n = net_here();
    return n ? n->open : 0;
}

static bool is_sim_fd(int fd) { return fd >= CRL__SIM_FD_BASE; }

static struct crl__sim_sock *sock_of(struct crl__sim_net *n, int fd)
{
    if (!n || !is_sim_fd(fd) || (size_t)(fd - CRL__SIM_FD_BASE) >= n->cap)
        return NULL;
    return n->socks[fd - CRL__SIM_FD_BASE];
}

/* Give s the lowest free simulated fd (as the kernel gives the lowest free one). */
static int fd_alloc(struct crl__sim_net *n, struct crl__sim_sock *s)
{
    size_t i = 0;
    while (i < n->cap && n->socks[i])
        i++;
    if (i == n->cap) {
        size_t cap = n->cap ? n->cap * 2 : 64;
        struct crl__sim_sock **socks = realloc(n->socks, cap * sizeof *socks);
        if (!socks)
            return -ENOMEM;
        memset(socks + n->cap, 0, (cap - n->cap) * sizeof *socks);
        n->socks = socks;
        n->cap = cap;
    }
    n->socks[i] = s;
    n->open++;
    s->fd = CRL__SIM_FD_BASE + (int)i;
    return s->fd;
}

static struct crl__sim_sock *sock_new(int family)
{
    struct crl__sim_sock *s = calloc(1, sizeof *s);
    if (s) {
        s->fd = -1;
        s->family = family;
    }
    return s;
}

/* ---- Waiting ------------------------------------------------------------------------------ */

static void park(struct crl__sim_sock *s, struct crl__op *op)
{
    struct crl__op **link = &s->waiters;
    while (*link)
        link = &crl__sim_op(*link)->next;
    crl__sim_op(op)->next = NULL;
    crl__sim_op(op)->sock = s;
    crl__sim_op(op)->where = CRL__SIM_PARKED;
    *link = op;
}

void crl__sim_net_unpark(struct crl__op *op)
{
    struct crl__sim_sock *s = crl__sim_op(op)->sock;
    for (struct crl__op **link = &s->waiters; *link; link = &crl__sim_op(*link)->next)
        if (*link == op) {
            *link = crl__sim_op(op)->next;
            break;
        }
    crl__sim_op(op)->where = CRL__SIM_NOWHERE;
    crl__sim_op(op)->sock = NULL;
}

/* s changed: its waiters are tried again, each after its own latency. */
static void changed(struct crl__sim_world *w, struct crl__sim_sock *s)
{
    if (!s)
        return;
    struct crl__op *op = s->waiters;
    s->waiters = NULL;
    while (op) {
        struct crl__op *next = crl__sim_op(op)->next;
        crl__sim_op(op)->sock = NULL;
        crl__sim_requeue(w, op);
        op = next;
    }
}

/* End s's waiters that are operations on fd with -EBADF; the others (a connect waiting for
 * room in a listener's backlog) are tried again. */
static void end_waiters(struct crl__sim_world *w, struct crl__sim_sock *s, int fd)
{
    struct crl__op *op = s->waiters;
    s->waiters = NULL;
    while (op) {
        struct crl__op *next = crl__sim_op(op)->next;
        crl__sim_op(op)->sock = NULL;
        crl__sim_op(op)->where = CRL__SIM_NOWHERE;
        if (op->fd == fd)
            crl__sim_complete(w, op, -EBADF);
        else
            crl__sim_requeue(w, op);
        op = next;
    }
}

void crl__sim_net_forget(struct crl__sim_world *w, int fd)
{
    struct crl__sim_net *n = w->net;
    struct crl__op *ended = NULL, **tail = &ended; /* taken out first, as in sim.c */
    for (size_t i = 0; i < n->cap; i++) {
        struct crl__sim_sock *s = n->socks[i];
        for (struct crl__op **link = s ? &s->waiters : NULL; link && *link;) {
            struct crl__op *op = *link;
            if (op->fd != fd) {
                link = &crl__sim_op(op)->next;
                continue;
            }
            *link = crl__sim_op(op)->next;
            crl__sim_op(op)->next = NULL;
            crl__sim_op(op)->sock = NULL;
            *tail = op;
            tail = &crl__sim_op(op)->next;
        }
    }
    while (ended) {
        struct crl__op *op = ended;
        ended = crl__sim_op(op)->next;
        crl__sim_complete(w, op, -EBADF);
    }
}

/* ---- Addresses ---------------------------------------------------------------------------- */

static socklen_t family_len(int family)
{
    return family == AF_INET    ? sizeof(struct sockaddr_in)
           : family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                : sizeof(struct sockaddr_un);
}

static unsigned port_of(const struct sockaddr_storage *a)
{
    if (a->ss_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)a)->sin_port);
    if (a->ss_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)a)->sin6_port);
    return 0;
}

static void set_port(struct sockaddr_storage *a, unsigned port)
{
    if (a->ss_family == AF_INET)
        ((struct sockaddr_in *)a)->sin_port = htons((uint16_t)port);
    else if (a->ss_family == AF_INET6)
        ((struct sockaddr_in6 *)a)->sin6_port = htons((uint16_t)port);
}

static bool is_wildcard(const struct sockaddr_storage *a)
{
    if (a->ss_family == AF_INET)
        return ((const struct sockaddr_in *)a)->sin_addr.s_addr == htonl(INADDR_ANY);
    if (a->ss_family == AF_INET6)
        return IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)a)->sin6_addr);
    return false;
}

static bool same_host(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    if (a->ss_family != b->ss_family)
        return false;
    if (a->ss_family == AF_INET)
        return ((const struct sockaddr_in *)a)->sin_addr.s_addr ==
               ((const struct sockaddr_in *)b)->sin_addr.s_addr;
    if (a->ss_family == AF_INET6)
        return IN6_ARE_ADDR_EQUAL(&((const struct sockaddr_in6 *)a)->sin6_addr,
                                  &((const struct sockaddr_in6 *)b)->sin6_addr);
    return strncmp(((const struct sockaddr_un *)a)->sun_path,
                   ((const struct sockaddr_un *)b)->sun_path,
                   sizeof((struct sockaddr_un *)0)->sun_path) == 0;
}

/* Whether a socket bound to a answers for b (a wildcard answers for every host). */
static bool answers_for(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    return a->ss_family == b->ss_family && port_of(a) == port_of(b) &&
           (is_wildcard(a) || is_wildcard(b) || same_host(a, b));
}

static int copy_in_addr(struct crl__sim_sock *s, const struct sockaddr *addr, socklen_t len,
                        struct sockaddr_storage *out)
{
    if (!addr || len < sizeof(sa_family_t) || addr->sa_family != s->family)
        return -EAFNOSUPPORT;
    if (len > sizeof *out || (s->family != AF_UNIX && len < family_len(s->family)))
        return -EINVAL;
    memset(out, 0, sizeof *out);
    memcpy(out, addr, len);
    return 0;
}

/* Copy a into (addr, *len) as getsockname(2) does: truncated to *len, the full length back. */
static void copy_out_addr(const struct sockaddr_storage *a, socklen_t a_len, struct sockaddr *addr,
                          socklen_t *len)
{
    if (!addr || !len)
        return;
    memcpy(addr, a, *len < a_len ? *len : a_len);
    *len = a_len;
}

static bool port_taken(struct crl__sim_net *n, const struct crl__sim_sock *s,
                       const struct sockaddr_storage *a)
{
    for (size_t i = 0; i < n->cap; i++) {
        const struct crl__sim_sock *o = n->socks[i];
        if (o && o != s && o->bound && answers_for(&o->local, a) && !(o->reuseport && s->reuseport))
            return true;
    }
    return false;
}

static unsigned free_port(struct crl__sim_net *n, const struct crl__sim_sock *s,
                          struct sockaddr_storage *a)
{
    for (unsigned tries = 0; tries < 65536 - EPHEMERAL_FIRST; tries++) {
        unsigned port = n->next_port++;
        if (n->next_port > 65535)
            n->next_port = EPHEMERAL_FIRST;
        set_port(a, port);
        if (!port_taken(n, s, a))
            return port;
    }
    return 0;
}

static int bind_to(struct crl__sim_net *n, struct crl__sim_sock *s, struct sockaddr_storage *a)
{
    if (s->bound)
        return -EINVAL;
    if (s->family != AF_UNIX && port_of(a) == 0 && !free_port(n, s, a))
        return -EADDRINUSE;
    if (port_taken(n, s, a))
        return -EADDRINUSE;
    s->local = *a;
    s->local_len = family_len(s->family);
    s->bound = true;
    return 0;
}

/* ---- Socket calls (crl__sys_ops) ------------------------------------------------------------ */

static int sim_socket(int family, int type)
{
    struct crl__sim_net *n = net_here();
    if (!n)
        return -EAFNOSUPPORT;
    if (family != AF_INET && family != AF_INET6 && family != AF_UNIX)
        return -EAFNOSUPPORT;
    if ((type & ~(SOCK_NONBLOCK | SOCK_CLOEXEC)) != SOCK_STREAM)
        return -EPROTONOSUPPORT; /* no simulated datagrams yet */
    struct crl__sim_sock *s = sock_new(family);
    if (!s)
        return -ENOMEM;
    int fd = fd_alloc(n, s);
    if (fd < 0)
        free(s);
    return fd;
}

static int sim_setsockopt(int fd, int level, int name, const void *val, socklen_t len)
{
    struct crl__sim_sock *s = sock_of(net_here(), fd);
    if (!s)
        return is_sim_fd(fd) ? -EBADF : -ENOTSOCK;
    if (!val || len < sizeof(int))
        return -EINVAL;
    if (level == SOL_SOCKET && name == SO_REUSEPORT)
        s->reuseport = *(const int *)val != 0;
    return 0; /* the others (TCP_NODELAY, SO_REUSEADDR, keep-alive) change nothing here */
}

static int sim_bind(int fd, const struct sockaddr *addr, socklen_t len)
{
    struct crl__sim_net *n = net_here();
    struct crl__sim_sock *s = sock_of(n, fd);
    if (!s)
        return is_sim_fd(fd) ? -EBADF : -ENOTSOCK;
    struct sockaddr_storage a;
    int rc = copy_in_addr(s, addr, len, &a);
    return rc ? rc : bind_to(n, s, &a);
}

static int sim_listen(int fd, int backlog)
{
    struct crl__sim_net *n = net_here();
    struct crl__sim_sock *s = sock_of(n, fd);
    if (!s)
        return is_sim_fd(fd) ? -EBADF : -ENOTSOCK;
    if (s->connected)
        return -EINVAL;
    if (!s->bound) { /* as Linux: a port of its own on the wildcard address */
        struct sockaddr_storage a = {.ss_family = (sa_family_t)s->family};
        int rc = s->family == AF_UNIX ? -EINVAL : bind_to(n, s, &a);
        if (rc)
            return rc;
    }
    s->backlog_max = backlog < 1 ? 1 : backlog > BACKLOG_MAX ? BACKLOG_MAX : (unsigned)backlog;
    s->listening = true;
    return 0;
}

static int sim_getsockname(int fd, struct sockaddr *addr, socklen_t *len)
{
    struct crl__sim_sock *s = sock_of(net_here(), fd);
    if (!s)
        return is_sim_fd(fd) ? -EBADF : -ENOTSOCK;
    struct sockaddr_storage none = {.ss_family = (sa_family_t)s->family};
    if (s->bound)
        copy_out_addr(&s->local, s->local_len, addr, len);
    else
        copy_out_addr(&none, family_len(s->family), addr, len);
    return 0;
}

static int sim_getpeername(int fd, struct sockaddr *addr, socklen_t *len)
{
    struct crl__sim_sock *s = sock_of(net_here(), fd);
    if (!s)
        return is_sim_fd(fd) ? -EBADF : -ENOTSOCK;
    if (!s->connected)
        return -ENOTCONN;
    copy_out_addr(&s->remote, s->remote_len, addr, len);
    return 0;
}

static int shutdown_sock(struct crl__sim_world *w, struct crl__sim_sock *s, int how)
{
    if (how != SHUT_RD && how != SHUT_WR && how != SHUT_RDWR)
        return -EINVAL;
    if (!s->connected)
        return -ENOTCONN;
    if (how != SHUT_WR)
        s->shut_rd = true;
    if (how != SHUT_RD && !s->shut_wr) {
        s->shut_wr = true;
        if (s->peer) {
            s->peer->eof = true;
            changed(w, s->peer);
        }
    }
    changed(w, s);
    return 0;
}

static int sim_shutdown(int fd, int how)
{
    struct crl__sim_world *w = crl__sim_here();
    struct crl__sim_sock *s = sock_of(w ? w->net : NULL, fd);
    if (!s)
        return is_sim_fd(fd) ? -EBADF : -ENOTSOCK;
    return shutdown_sock(w, s, how);
}

/* The end of a connection s was: its peer reads EOF, or ECONNRESET if s had bytes unread (a
 * close with unread input sends a reset, RFC 9293 3.6). */
static void hang_up(struct crl__sim_world *w, struct crl__sim_sock *s)
{
    struct crl__sim_sock *p = s->peer;
    if (!p)
        return;
    if (s->rx.len)
        p->error = -ECONNRESET;
    p->eof = true;
    p->peer = NULL;
    s->peer = NULL;
    changed(w, p);
}

/* A listener closing resets the connections still in its backlog. */
static void drop_backlog(struct crl__sim_world *w, struct crl__sim_sock *l)
{
    while (l->backlog_head) {
        struct crl__sim_sock *e = l->backlog_head;
        l->backlog_head = e->backlog_next;
        if (e->peer) {
            e->peer->error = -ECONNRESET;
            e->peer->eof = true;
            e->peer->peer = NULL;
            changed(w, e->peer);
        }
        sock_free(e);
    }
    l->backlog_tail = NULL;
    l->backlog_len = 0;
}

static int sim_close(int fd)
{
    if (!is_sim_fd(fd))
        return crl__kernel_sys.close(fd); /* the process's own (a pipe a test made) */
    struct crl__sim_world *w = crl__sim_here();
    struct crl__sim_net *n = w ? w->net : NULL;
    struct crl__sim_sock *s = sock_of(n, fd);
    if (!s)
        return -EBADF;
    n->socks[fd - CRL__SIM_FD_BASE] = NULL;
    n->open--;
    crl__sim_due_forget(w, fd);
    end_waiters(w, s, fd);
    if (s->listening)
        drop_backlog(w, s);
    hang_up(w, s);
    sock_free(s);
    return 0;
}

/* ---- Transfers ---------------------------------------------------------------------------- */

/* An op's buffers as one list. */
struct span {
    struct iovec iov[MAX_IOV];
    int n;
    size_t total;
};

static int span_of(const struct crl__op *op, struct span *sp)
{
    const struct iovec *iov;
    int n;
    switch (op->kind) {
    case CRL__OP_READV:
    case CRL__OP_WRITEV: iov = op->a.v.iov, n = op->a.v.iovcnt; break;
    case CRL__OP_RECVMSG:
    case CRL__OP_SENDMSG: iov = op->a.msg->msg_iov, n = (int)op->a.msg->msg_iovlen; break;
    default:
        sp->iov[0] = (struct iovec){op->a.rw.buf, op->a.rw.len};
        sp->n = 1;
        sp->total = op->a.rw.len;
        return 0;
    }
    if (n < 0 || n > MAX_IOV)
        return -EINVAL;
    sp->n = n;
    sp->total = 0;
    for (int i = 0; i < n; i++) {
        sp->iov[i] = iov[i];
        sp->total += iov[i].iov_len;
    }
    return 0;
}

/* How much of n moves this time: all of it, or (one time in every `one_in`) a seeded part. */
static size_t maybe_short(struct crl__sim_world *w, size_t n, unsigned one_in)
{
    if (n <= 1)
        return n;
    uint64_t r = crl__sim_draw(w);
    return r % one_in == 0 ? 1 + (size_t)((r >> 8) % (n - 1)) : n;
}

static void gather(const struct span *sp, char *to, size_t len)
{
    for (int i = 0; i < sp->n && len; i++) {
        size_t k = sp->iov[i].iov_len < len ? sp->iov[i].iov_len : len;
        memcpy(to, sp->iov[i].iov_base, k);
        to += k;
        len -= k;
    }
}

static void scatter(const struct span *sp, const char *from, size_t len)
{
    for (int i = 0; i < sp->n && len; i++) {
        size_t k = sp->iov[i].iov_len < len ? sp->iov[i].iov_len : len;
        memcpy(sp->iov[i].iov_base, from, k);
        from += k;
        len -= k;
    }
}

static int bytes_reserve(struct bytes *b, size_t more)
{
    if (b->off && b->off + b->len + more > b->cap) { /* move what is unread to the front */
        memmove(b->data, b->data + b->off, b->len);
        b->off = 0;
    }
    if (b->len + more <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + more)
        cap *= 2;
    char *data = realloc(b->data, cap);
    if (!data)
        return -ENOMEM;
    b->data = data;
    b->cap = cap;
    return 0;
}

/* A receive into sp from s: bytes read, 0 at EOF, an error, or -EAGAIN (nothing yet). */
static ssize_t receive(struct crl__sim_world *w, struct crl__sim_sock *s, const struct span *sp,
                       int flags)
{
    if (!s->connected)
        return -ENOTCONN;
    if (s->rx.len == 0 || sp->total == 0) {
        if (s->error) {
            int err = s->error;
            s->error = 0;
            return err;
        }
        if (sp->total == 0 || s->eof || s->shut_rd)
            return 0;
        return -EAGAIN;
    }
    size_t n = s->rx.len < sp->total ? s->rx.len : sp->total;
    if ((flags & MSG_WAITALL) && n < sp->total && !s->eof && s->rx.len < SOCKBUF)
        return -EAGAIN; /* the whole of it, unless it ends first */
    if (!(flags & (MSG_WAITALL | MSG_PEEK)))
        n = maybe_short(w, n, 4);
    scatter(sp, s->rx.data + s->rx.off, n);
    if (!(flags & MSG_PEEK)) {
        s->rx.off += n;
        s->rx.len -= n;
        if (s->rx.len == 0)
            s->rx.off = 0;
        changed(w, s->peer); /* room for the peer's sends */
    }
    return (ssize_t)n;
}

/* A send of sp from s: bytes sent, an error, or -EAGAIN (no room yet). */
static ssize_t transmit(struct crl__sim_world *w, struct crl__sim_sock *s, const struct span *sp,
                        bool whole)
{
    if (s->error) {
        int err = s->error;
        s->error = 0;
        return err;
    }
    if (s->shut_wr)
        return -EPIPE;
    if (!s->connected)
        return -ENOTCONN;
    struct crl__sim_sock *p = s->peer;
    if (!p)
        return -EPIPE;
    if (sp->total == 0)
        return 0;
    size_t room = p->rx.len < SOCKBUF ? SOCKBUF - p->rx.len : 0;
    if (room == 0)
        return -EAGAIN;
    size_t n = sp->total < room ? sp->total : room;
    if (!whole)
        n = maybe_short(w, n, 8);
    if (bytes_reserve(&p->rx, n))
        return -ENOMEM;
    gather(sp, p->rx.data + p->rx.off + p->rx.len, n);
    p->rx.len += n;
    changed(w, p);
    return (ssize_t)n;
}

/* ---- Connections -------------------------------------------------------------------------- */

/* The listener that a connection to a reaches, NULL if none: among several (SO_REUSEPORT),
 * one drawn from the seed. */
static struct crl__sim_sock *listener_for(struct crl__sim_world *w,
                                          const struct sockaddr_storage *a)
{
    struct crl__sim_net *n = w->net;
    unsigned found = 0;
    for (size_t i = 0; i < n->cap; i++)
        if (n->socks[i] && n->socks[i]->listening && answers_for(&n->socks[i]->local, a))
            found++;
    if (found == 0)
        return NULL;
    unsigned pick = found == 1 ? 0 : (unsigned)(crl__sim_draw(w) % found);
    for (size_t i = 0; i < n->cap; i++)
        if (n->socks[i] && n->socks[i]->listening && answers_for(&n->socks[i]->local, a) &&
            pick-- == 0)
            return n->socks[i];
    return NULL;
}

/* Connect s to a: 0, an error, or -EAGAIN with *wait set to the listener with a full backlog. */
static int connect_to(struct crl__sim_world *w, struct crl__sim_sock *s,
                      const struct sockaddr_storage *a, struct crl__sim_sock **wait)
{
    if (s->connected)
        return -EISCONN;
    if (s->listening)
        return -EINVAL;
    struct crl__sim_sock *l = listener_for(w, a);
    if (!l)
        return -ECONNREFUSED;
    if (l->backlog_len >= l->backlog_max) {
        *wait = l;
        return -EAGAIN;
    }
    struct crl__sim_sock *e = sock_new(s->family);
    if (!e)
        return -ENOMEM;
    if (!s->bound) { /* its own port, on the host it calls (every simulated host is one) */
        struct sockaddr_storage local = *a;
        set_port(&local, 0);
        int rc = s->family == AF_UNIX ? 0 : bind_to(w->net, s, &local);
        if (rc) {
            free(e);
            return rc;
        }
        if (s->family == AF_UNIX) {
            s->local = (struct sockaddr_storage){.ss_family = AF_UNIX};
            s->local_len = sizeof(sa_family_t);
        }
    }
    e->local = is_wildcard(&l->local) ? *a : l->local;
    e->local_len = family_len(s->family);
    e->bound = false; /* shares the listener's port: not a binding of its own */
    e->remote = s->local;
    e->remote_len = s->local_len;
    e->connected = s->connected = true;
    s->remote = *a;
    s->remote_len = family_len(s->family);
    e->peer = s;
    s->peer = e;
    if (l->backlog_tail)
        l->backlog_tail->backlog_next = e;
    else
        l->backlog_head = e;
    l->backlog_tail = e;
    l->backlog_len++;
    changed(w, l);
    return 0;
}

/* Take l's oldest connection: its fd, or -EAGAIN. */
static int accept_from(struct crl__sim_world *w, struct crl__sim_sock *l, struct crl__op *op)
{
    if (!l->listening)
        return -EINVAL;
    struct crl__sim_sock *e = l->backlog_head;
    if (!e)
        return -EAGAIN;
    int fd = fd_alloc(w->net, e);
    if (fd < 0)
        return fd;
    l->backlog_head = e->backlog_next;
    if (!l->backlog_head)
        l->backlog_tail = NULL;
    l->backlog_len--;
    e->backlog_next = NULL;
    copy_out_addr(&e->remote, e->remote_len, op->a.accept.addr, op->a.accept.addrlen);
    changed(w, l); /* room for a connect waiting on a full backlog */
    return fd;
}

static short readiness(const struct crl__sim_sock *s)
{
    if (s->listening)
        return s->backlog_head ? POLLIN : 0;
    if (!s->connected)
        return POLLOUT | POLLHUP;
    short r = 0;
    bool rd_done = s->eof || s->shut_rd;
    if (s->rx.len || rd_done || s->error)
        r |= POLLIN;
    if (rd_done)
        r |= POLLRDHUP;
    if (s->eof && s->shut_wr)
        r |= POLLHUP;
    if (s->error)
        r |= POLLERR;
    if (!s->shut_wr && (!s->peer || s->peer->rx.len < SOCKBUF))
        r |= POLLOUT;
    return r;
}

/* ---- Operations --------------------------------------------------------------------------- */

bool crl__sim_net_takes(const struct crl__op *op)
{
    switch (op->kind) {
    case CRL__OP_READ:
    case CRL__OP_WRITE:
    case CRL__OP_READV:
    case CRL__OP_WRITEV:
    case CRL__OP_RECV:
    case CRL__OP_SEND:
    case CRL__OP_RECVMSG:
    case CRL__OP_SENDMSG:
    case CRL__OP_ACCEPT:
    case CRL__OP_CONNECT:
    case CRL__OP_POLL:
    case CRL__OP_SHUTDOWN: return is_sim_fd(op->fd);
    default: return false;
    }
}

static bool is_send(uint8_t kind)
{
    return kind == CRL__OP_WRITE || kind == CRL__OP_WRITEV || kind == CRL__OP_SEND ||
           kind == CRL__OP_SENDMSG;
}

/* A try's outcome: the op completes with its result, or waits for a change of a socket, or
 * goes again after a latency (a send with all of it to send, part sent). */
enum outcome { DONE, PARK, AGAIN };

/* A transfer found nothing to move (-EAGAIN): it waits on s unless it may not wait. */
static enum outcome would_wait(int flags) { return flags & MSG_DONTWAIT ? DONE : PARK; }

static enum outcome transfer(struct crl__sim_world *w, struct crl__sim_sock *s, struct crl__op *op,
                             int *res)
{
    struct span sp;
    if ((*res = span_of(op, &sp)))
        return DONE;
    bool msg_flags = op->kind == CRL__OP_RECV || op->kind == CRL__OP_RECVMSG ||
                     op->kind == CRL__OP_SEND || op->kind == CRL__OP_SENDMSG;
    int flags = msg_flags ? op->flags : 0;
    if (!is_send(op->kind)) {
        *res = (int)receive(w, s, &sp, flags);
        if (*res >= 0 && op->kind == CRL__OP_RECVMSG) {
            op->a.msg->msg_namelen = 0; /* a stream's peer has no address to give */
            op->a.msg->msg_flags = 0;
        }
        return *res == -EAGAIN ? would_wait(flags) : DONE;
    }
    bool all = crl__is_send_all(op);
    *res = (int)transmit(w, s, &sp, all);
    if (*res == -EAGAIN)
        return would_wait(flags);
    if (*res > 0 && all && (*res = crl__send_all_step(op, *res)) == -EAGAIN)
        return AGAIN;
    return DONE;
}

/* Run op once on s: DONE with *res, or PARK on *wait. */
static enum outcome try_op(struct crl__sim_world *w, struct crl__sim_sock *s, struct crl__op *op,
                           int *res, struct crl__sim_sock **wait)
{
    *wait = s;
    switch (op->kind) {
    case CRL__OP_ACCEPT: *res = accept_from(w, s, op); break;
    case CRL__OP_CONNECT: {
        struct sockaddr_storage a;
        *res = copy_in_addr(s, op->a.connect.addr, op->a.connect.addrlen, &a);
        if (*res == 0)
            *res = connect_to(w, s, &a, wait);
        break;
    }
    case CRL__OP_POLL: {
        short r = readiness(s) & (short)(op->flags | POLLERR | POLLHUP);
        *res = r ? r : -EAGAIN;
        break;
    }
    case CRL__OP_SHUTDOWN: *res = shutdown_sock(w, s, op->flags); return DONE;
    default: return transfer(w, s, op, res);
    }
    return *res == -EAGAIN ? PARK : DONE;
}

void crl__sim_net_attempt(struct crl__sim_world *w, struct crl__op *op)
{
    struct crl__sim_sock *s = sock_of(w->net, op->fd), *wait;
    struct crl__core *c = crl__sim_op(op)->core;
    if (s && c->io->faults && crl__faults_kernel(c, op)) { /* EINTR, EAGAIN: as a kernel's */
        crl__sim_requeue(w, op);                           /* backend would, try again */
        return;
    }
    int res = -EBADF;
    switch (s ? try_op(w, s, op, &res, &wait) : DONE) {
    case DONE: crl__sim_complete(w, op, res); break;
    case PARK: park(wait, op); break;
    case AGAIN: crl__sim_requeue(w, op); break;
    }
}

/* The client's check of an idle connection (a peek that may not wait). */
static int sim_recv(int fd, void *buf, size_t len, int flags)
{
    struct crl__sim_world *w = crl__sim_here();
    struct crl__sim_sock *s = sock_of(w ? w->net : NULL, fd);
    if (!s)
        return is_sim_fd(fd) ? -EBADF : -ENOTSOCK;
    struct span sp = {.iov = {{buf, len}}, .n = 1, .total = len};
    return (int)receive(w, s, &sp, flags);
}

static int sim_sock_type(int fd)
{
    if (!is_sim_fd(fd))
        return crl__kernel_sys.sock_type(fd);
    return sock_of(net_here(), fd) ? SOCK_STREAM : -1;
}

const struct crl__sys_ops crl__sim_net_sys = {
    .socket = sim_socket,
    .setsockopt = sim_setsockopt,
    .bind = sim_bind,
    .listen = sim_listen,
    .getsockname = sim_getsockname,
    .getpeername = sim_getpeername,
    .shutdown = sim_shutdown,
    .recv = sim_recv,
    .sock_type = sim_sock_type,
    .close = sim_close,
};
