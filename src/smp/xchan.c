/* xchan.c - a bounded channel from the tasks of one core to the tasks of another, carrying
 * fixed-size values by copy.
 *
 * The values sit in a lock-free single-producer single-consumer ring (the sending core owns
 * tail, the receiving core head, each on its own cache line, each side caching the other's
 * index). Tasks of one side wait on an event of their own core. A side about to wait raises
 * its `sleeping` flag, fences and looks at the ring again; the other side, after changing the
 * ring, fences and looks at the flag: one of them sees the other (no lost wake-up), and a
 * side that is not waiting costs the other nothing but a load. The wake-up itself is a note
 * pushed onto the waiting core's lock-free note stack, taken in by that core's loop (and a
 * kick, should the core sleep). */
#define _GNU_SOURCE
#include "smp.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct xside {
    struct crl__xnote note; /* the wake-up sent to this side's core */
    struct crl_event ready; /* set when the other side changed the ring (or closed it) */
    _Atomic bool sleeping;  /* a task of this side waits or is about to */
    struct crl__core *core;
};

struct crl_xchan {
    _Alignas(64) _Atomic uint32_t tail; /* next slot the sender fills */
    uint32_t head_seen;                 /* the sender's last view of head */
    _Alignas(64) _Atomic uint32_t head; /* next slot the receiver empties */
    uint32_t tail_seen;                 /* the receiver's last view of tail */
    _Alignas(64) struct xside send, recv;
    _Atomic bool closed;
    uint32_t mask;
    size_t elem_size;
    unsigned char *slots;
};

int crl_xchan_create(struct crl_xchan **out, size_t elem_size, size_t capacity,
                     unsigned sender_core, unsigned receiver_core)
{
    struct crl__core *c = crl__core();
    if (!c || elem_size == 0 || capacity == 0 || capacity > ((size_t)1 << 30) ||
        sender_core >= c->smp->group->ncores || receiver_core >= c->smp->group->ncores)
        return -EINVAL;
    size_t cap = 1;
    while (cap < capacity)
        cap <<= 1;
    struct crl_xchan *ch = aligned_alloc(64, sizeof *ch);
    unsigned char *slots = calloc(cap, elem_size);
    if (!ch || !slots) {
        free(ch);
        free(slots);
        return -ENOMEM;
    }
    memset(ch, 0, sizeof *ch);
    ch->mask = (uint32_t)cap - 1;
    ch->elem_size = elem_size;
    ch->slots = slots;
    ch->send.core = c->smp->group->cores[sender_core];
    ch->recv.core = c->smp->group->cores[receiver_core];
    struct xside *sides[2] = {&ch->send, &ch->recv};
    for (int i = 0; i < 2; i++) {
        crl_event_init(&sides[i]->ready);
        sides[i]->ready.waiters_.core_ = sides[i]->core; /* each event is its side's */
        sides[i]->note.event = &sides[i]->ready;
        atomic_init(&sides[i]->note.queued, false);
        atomic_init(&sides[i]->sleeping, false);
    }
    *out = ch;
    return 0;
}

void crl_xchan_destroy(struct crl_xchan *ch)
{
    if (!ch)
        return;
    /* A wake-up still on its way must not reach freed memory: let the cores take it in (this
     * one too, which a cancelled task's crl_yield would not let run). */
    while (atomic_load_explicit(&ch->send.note.queued, memory_order_acquire) ||
           atomic_load_explicit(&ch->recv.note.queued, memory_order_acquire))
        crl__yield_held();
    free(ch->slots);
    free(ch);
}

/* ---- Waking the other side -------------------------------------------------------------- */

/* After changing the ring: wake the other side if a task there waits. */
static void wake(struct xside *other)
{
    crl__full_fence();
    if (!atomic_load_explicit(&other->sleeping, memory_order_relaxed) ||
        !atomic_exchange_explicit(&other->sleeping, false, memory_order_relaxed))
        return;
    /* Both sides on this core: wake the waiter now. A note posted to ourselves would only be
     * taken in after the loop found no task runnable, which it reports as a deadlock. */
    if (other->core == crl__core())
        crl_event_set(&other->ready);
    else
        crl__smp_post(other->core, &other->note);
}

/* Wait until the other side changed something; `check` is looked at again after `sleeping`
 * is raised, so a change made meanwhile is never missed. */
static int wait_side(struct xside *me, bool (*check)(struct crl_xchan *), struct crl_xchan *ch)
{
    crl_event_clear(&me->ready);
    atomic_store_explicit(&me->sleeping, true, memory_order_relaxed);
    crl__full_fence();
    if (check(ch))
        return 0;
    return crl__event_wait_for(&me->ready, me == &ch->send ? "xchan send" : "xchan recv");
}

/* ---- Sending ---------------------------------------------------------------------------- */

static void check_side(struct crl_xchan *ch, const struct xside *side, const char *what)
{
#ifndef NDEBUG
    struct crl__core *c = crl__core();
    if (c != side->core)
        crl__panic("corral: %s of cross-core channel %p belongs to core %u but was used from "
                   "core %u",
                   what, (void *)ch, side->core->id, c ? c->id : 0);
#else
    (void)ch, (void)side, (void)what;
#endif
}

static bool has_room(struct crl_xchan *ch)
{
    uint32_t tail = atomic_load_explicit(&ch->tail, memory_order_relaxed);
    if (tail - ch->head_seen <= ch->mask)
        return true;
    ch->head_seen = atomic_load_explicit(&ch->head, memory_order_acquire);
    return tail - ch->head_seen <= ch->mask ||
           atomic_load_explicit(&ch->closed, memory_order_relaxed);
}

int crl_xchan_try_send(struct crl_xchan *ch, const void *elem)
{
    check_side(ch, &ch->send, "the sending side");
    if (atomic_load_explicit(&ch->closed, memory_order_relaxed))
        return -EPIPE;
    uint32_t tail = atomic_load_explicit(&ch->tail, memory_order_relaxed);
    if (tail - ch->head_seen > ch->mask) {
        ch->head_seen = atomic_load_explicit(&ch->head, memory_order_acquire);
        if (tail - ch->head_seen > ch->mask)
            return -EAGAIN;
    }
    memcpy(ch->slots + (size_t)(tail & ch->mask) * ch->elem_size, elem, ch->elem_size);
    atomic_store_explicit(&ch->tail, tail + 1, memory_order_release);
    CRL__COUNT(&ch->send.core->stats, chan_sent);
    wake(&ch->recv);
    return 0;
}

int crl_xchan_send(struct crl_xchan *ch, const void *elem)
{
    int rc;
    while ((rc = crl_xchan_try_send(ch, elem)) == -EAGAIN)
        if ((rc = wait_side(&ch->send, has_room, ch)) != 0)
            return rc;
    return rc;
}

/* ---- Receiving -------------------------------------------------------------------------- */

static bool has_value(struct crl_xchan *ch)
{
    uint32_t head = atomic_load_explicit(&ch->head, memory_order_relaxed);
    if (head != ch->tail_seen)
        return true;
    ch->tail_seen = atomic_load_explicit(&ch->tail, memory_order_acquire);
    return head != ch->tail_seen || atomic_load_explicit(&ch->closed, memory_order_relaxed);
}

int crl_xchan_try_recv(struct crl_xchan *ch, void *elem)
{
    check_side(ch, &ch->recv, "the receiving side");
    uint32_t head = atomic_load_explicit(&ch->head, memory_order_relaxed);
    if (head == ch->tail_seen) {
        ch->tail_seen = atomic_load_explicit(&ch->tail, memory_order_acquire);
        if (head == ch->tail_seen) /* empty; closed only once drained */
            return atomic_load_explicit(&ch->closed, memory_order_acquire) &&
                           head == atomic_load_explicit(&ch->tail, memory_order_acquire)
                       ? -EPIPE
                       : -EAGAIN;
    }
    memcpy(elem, ch->slots + (size_t)(head & ch->mask) * ch->elem_size, ch->elem_size);
    atomic_store_explicit(&ch->head, head + 1, memory_order_release);
    CRL__COUNT(&ch->recv.core->stats, chan_received);
    wake(&ch->send);
    return 0;
}

int crl_xchan_recv(struct crl_xchan *ch, void *elem)
{
    int rc;
    while ((rc = crl_xchan_try_recv(ch, elem)) == -EAGAIN)
        if ((rc = wait_side(&ch->recv, has_value, ch)) != 0)
            return rc;
    return rc;
}

void crl_xchan_close(struct crl_xchan *ch)
{
    struct crl__core *c = crl__core();
    if (c != ch->send.core && c != ch->recv.core)
        check_side(ch, &ch->send, "closing");
    atomic_store_explicit(&ch->closed, true, memory_order_release);
    wake(&ch->send);
    wake(&ch->recv);
}
