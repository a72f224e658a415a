/* runtime.h - the runtime layer: the composition root above core, io and smp.
 *
 * It builds each core from its modules' parts (struct crl__executor), starts the executor
 * threads, and runs the loop whose steps call into every layer: run the tasks (core), submit
 * and reap I/O (io), take in what other cores sent (smp), and, with nothing to run, poll and
 * then sleep in the backend's wait. The lower layers never call each other sideways: what
 * one needs from another it gets through a hook this layer sets (smp's wake and poll_rest,
 * core's checkpoint_hook). */
#ifndef CRL_RUNTIME_RUNTIME_H
#define CRL_RUNTIME_RUNTIME_H

#include "../core/core.h"
#include "../http/http.h"
#include "../io/io.h"
#include "../smp/smp.h"
#include "dump.h"
#include "stall.h"

#include <pthread.h>
#include <stdatomic.h>

/* A start or stop line for executor threads: like a barrier, but the number of threads
 * expected can be cut while some wait (when a thread could not be created). */
struct crl__gate {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    unsigned arrived, expected;
};

/* One core: each module's part, linked to the others through core's pointers. */
struct crl__executor {
    struct crl__core core;
    struct crl__io_core io;
    struct crl__smp_core smp;
    struct crl__http_core http;
    struct crl__stall_core stall; /* the stall detector's sample of this core */
    int64_t busy_since_ns;        /* when the core last left an idle wait (loop.c) */
    int64_t worked_ns;            /* the clock of the loop turn that last ran a task */
    struct crl__dump_core dump;   /* crl_dump's requests to this core and its answers */
};

struct crl__runtime {
    struct crl_config cfg; /* with defaults filled in */
    unsigned ncores;
    struct crl__smp_group smp;      /* the cores by id, and the rings between them */
    _Atomic bool stopping;          /* core 0's root scope is done: the other cores wind down */
    struct crl__gate started;       /* passed once every executor thread has set up its core */
    struct crl__gate stopped;       /* passed once core 0 has woken every core to stop */
    struct crl__watchdog *watchdog; /* the stall detector, NULL when off (stall.c) */
    struct crl__trace_ring **trace_rings; /* by core while tracing is on (tracing.c) */
    struct crl__trace_ring **stall_rings; /* by core, the watchdog's stall events (the same) */
    struct crl__runtime *dump_next;       /* in dump.c's registry of running runtimes */
    struct crl__sim_world *sim;           /* the simulated world (io/sim.c), NULL if real */
};

/* tracing.c: the flight recorders, when cfg.trace_file (or CORRAL_TRACE) turns them on. */
int crl__tracing_init(struct crl__runtime *rt);
void crl__tracing_fini(struct crl__runtime *rt);
/* Write them to cfg.trace_file (a failure is logged). Any thread. */
void crl__tracing_to_file(struct crl__runtime *rt);
/* Record a stall's begin or end (CRL__TRACE_STALL_*) of core `core` at ts, its task's trace
 * id and its ns so far, if tracing is on. The watchdog thread only: it owns these rings, as
 * a core owns its own (a core that stalls cannot record it). */
void crl__tracing_stall(struct crl__runtime *rt, unsigned core, uint8_t kind, int64_t ts,
                        uint32_t task, int64_t ns);

static inline struct crl__executor *crl__executor_of(struct crl__core *c)
{
    return crl__container_of(c, struct crl__executor, core);
}

/* loop.c: run core c until its root scope has no live task (core 0), or until the runtime
 * stops (the others). */
void crl__loop(struct crl__executor *ex);
/* One turn of crl__loop: run what is runnable, poll or wait for I/O (an idle core waits in
 * the backend), take the other cores' messages, fire the timers due. false, doing nothing,
 * once the core is done. crl__loop calls it while it returns true; a driver of several
 * cores on one thread (a simulator) can call it for each core in turn, with crl__cur set to
 * that core. */
bool crl__loop_turn(struct crl__executor *ex);
/* loop.c: a simulated runtime's loops, every core's on the calling thread (rt->smp.cores,
 * each started): each turn goes to a core drawn from the seed among those with something to
 * do (a task to run, a message, a timer due), and the clock moves only when none has, in the
 * backend's wait. Returns once core 0's root scope is done and the other cores have wound
 * down, with crl__cur core 0. */
void crl__loop_sim(struct crl__runtime *rt);
/* Link ex's parts and set the hooks through which they reach each other. */
void crl__executor_wire(struct crl__executor *ex, struct crl__runtime *rt, unsigned id);

#endif
