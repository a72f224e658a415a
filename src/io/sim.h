/* sim.h - what the simulated backend's files share: the world's queue of operations due at a
 * virtual time (sim.c) and its in-memory network (sim_net.c). Only those two include it. */
#ifndef CRL_IO_SIM_H
#define CRL_IO_SIM_H

#include "io.h"

/* Simulated fds are numbered from here, above any the kernel gives (its limit, nr_open, is
 * 2^20 by default): a real close(2) of one fails with EBADF and cannot hit a simulated
 * socket, and a real fd is never taken for one. */
#define CRL__SIM_FD_BASE (1 << 29)

struct crl__sim_sock;
struct crl__sim_net;

struct crl__sim_world {
    int64_t now_ns; /* the virtual monotonic clock */
    uint64_t seed;
    struct crl__sim_sched sched;
    struct crl__op *due;        /* ops to try, by due time, then submission */
    struct crl__sim_net *net;   /* the in-memory network (sim_net.c) */
    const int64_t *saved_clock; /* this thread's clock before the world began */
    struct crl__core **cores;   /* its cores, in the order they started (sim_init) */
    unsigned ncores, cores_cap;
};

/* Where an op is while it is the backend's. */
enum crl__sim_where { CRL__SIM_NOWHERE, CRL__SIM_DUE, CRL__SIM_PARKED };

/* The backend's state of an op, in its backend_ bytes. */
struct crl__sim_op {
    struct crl__op *next;       /* in the world's due queue, or in a socket's waiters */
    int64_t due_ns;             /* when it is next tried */
    struct crl__core *core;     /* the core it was submitted on, which completes it */
    struct crl__sim_sock *sock; /* the socket it waits on, when parked */
    enum crl__sim_where where;
};
_Static_assert(sizeof(struct crl__sim_op) <= CRL__OP_BACKEND_SIZE, "sim op must fit in an op");

static inline struct crl__sim_op *crl__sim_op(struct crl__op *op)
{
    return (struct crl__sim_op *)(void *)op->backend_;
}

/* ---- sim.c, for sim_net.c ---- */

/* The world of the calling core, NULL outside a simulated runtime. */
struct crl__sim_world *crl__sim_here(void);
/* The next draw of the world's seeded stream. */
uint64_t crl__sim_draw(struct crl__sim_world *w);
/* Try op again after a seeded latency (it is the backend's until it completes). */
void crl__sim_requeue(struct crl__sim_world *w, struct crl__op *op);
/* Complete op with res, on the core it was submitted on. */
void crl__sim_complete(struct crl__sim_world *w, struct crl__op *op, int res);
/* End every op of fd waiting in the due queue with -EBADF. */
void crl__sim_due_forget(struct crl__sim_world *w, int fd);

/* ---- sim_net.c, for sim.c ---- */

struct crl__sim_net *crl__sim_net_new(void);
/* Free it and every socket left in it (a runtime that ended with sockets open). */
void crl__sim_net_free(struct crl__sim_net *n);
/* Whether op is one the network runs (an operation on a simulated fd). */
bool crl__sim_net_takes(const struct crl__op *op);
/* Try op: it completes, is requeued, or parks on its socket until the socket changes. */
void crl__sim_net_attempt(struct crl__sim_world *w, struct crl__op *op);
/* Take a parked op off its socket (it is the caller's to complete). */
void crl__sim_net_unpark(struct crl__op *op);
/* End every op parked on fd with -EBADF. */
void crl__sim_net_forget(struct crl__sim_world *w, int fd);

extern const struct crl__sys_ops crl__sim_net_sys;

#endif
