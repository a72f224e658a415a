/* dump.h - crl_dump: every task of every core of every running runtime, from any thread.
 *
 * A process-wide registry lists the running runtimes. A requester posts a request to each
 * core (a sequence number in its executor, and a wake-up of its backend's wait); each core,
 * at its next loop turn, writes its part (the scope tree, each task's state, what it waits
 * for, its times and the raw addresses of its backtrace) into a memory buffer and publishes
 * it. The requester waits for the parts up to a bound, symbolizes the backtraces and writes
 * everything to the fd in core order: symbolizing (slow) never holds a core up. A core that
 * did not answer in time is shown as such, with the stall detector's last report of it; the
 * requester's own core (a task calling crl_dump) is written directly. */
#ifndef CRL_RUNTIME_DUMP_H
#define CRL_RUNTIME_DUMP_H

#include "../core/core.h"

#include <stdatomic.h>
#include <stdint.h>

enum crl__dump_loop_state { CRL__DUMP_NOT_LOOPING, CRL__DUMP_LOOPING, CRL__DUMP_LEFT_LOOP };

/* A core's end of the protocol, in its executor. */
struct crl__dump_core {
    _Atomic uint32_t asked;    /* bumped by a requester (under the registry's lock) */
    uint32_t seen;             /* the core's own: the last request it answered */
    _Atomic uint32_t answered; /* set to the request answered once part holds its answer */
    _Atomic(char *) part;      /* the answer (malloc'd text), taken by the requester */
    _Atomic int loop_state;    /* enum crl__dump_loop_state: a core past its loop never answers */
};

struct crl__executor;
struct crl__runtime;

/* The loop's look, once a turn: one relaxed load unless a dump was asked for. */
void crl__dump_answer(struct crl__executor *ex);
static inline void crl__dump_poll(struct crl__executor *ex, struct crl__dump_core *d)
{
    if (__builtin_expect(atomic_load_explicit(&d->asked, memory_order_relaxed) != d->seen, 0))
        crl__dump_answer(ex);
}

/* In crl_run: list rt once its cores run its loop, take it off before they stop. */
void crl__dump_register(struct crl__runtime *rt);
void crl__dump_unregister(struct crl__runtime *rt);
/* As a core stops: free an answer no requester took (it gave up waiting). */
void crl__dump_core_fini(struct crl__dump_core *d);

/* A describer of a layer above the runtime (net's name lookups), asked after core's, io's
 * and smp's; from a constructor. At most a few. */
void crl__dump_add_describer(crl__wait_describer *d);

#endif
