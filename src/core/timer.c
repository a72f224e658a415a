/* timer.c - a per-core hierarchical timing wheel (O(1) arm and disarm, no locks) and sleep.
 *
 * Ticks are 2^10 ns (about 1 us). Level L holds timers due within 64^(L+1) ticks of the
 * current tick, in 64 slots of 64^L ticks each; seven levels reach ~52 days and later
 * deadlines are parked in the last level and re-filed as time passes. When the current tick
 * enters a slot above level 0, the slot's timers cascade to lower levels; a timer fires once
 * its tick is behind the wheel's, i.e. at most one tick late. Advancing jumps straight to the
 * next occupied slot with the occupancy bitmaps, so an idle wheel costs nothing per tick. */
#include "core.h"

#include <stdio.h>

enum {
    TICK_SHIFT = 10,
    LEVEL_BITS = 6,
    SLOT_MASK = CRL__WHEEL_SLOTS - 1,
    CRL__WHEEL_DUE = 0xffff,
    CRL__WHEEL_FAR = 0xfffe,
    WHEEL_BITS = LEVEL_BITS * CRL__WHEEL_LEVELS,
};

#define WHEEL_SPAN_MASK ((UINT64_C(1) << WHEEL_BITS) - 1)

static uint64_t tick_of(int64_t ns) { return ns < 0 ? 0 : (uint64_t)ns >> TICK_SHIFT; }

void crl__wheel_init(struct crl__wheel *w, int64_t now_ns)
{
    *w = (struct crl__wheel){.tick = tick_of(now_ns), .due_hint = INT64_MIN};
}

static void list_push(struct crl__timer **head, struct crl__timer *t)
{
    t->next = *head;
    if (t->next)
        t->next->pprev = &t->next;
    *head = t;
    t->pprev = head;
}

/* The level whose slots separate `tick` from the wheel's current tick: the highest group of
 * LEVEL_BITS in which they differ. */
static unsigned level_for(uint64_t now, uint64_t tick)
{
    uint64_t diff = (now ^ tick) | SLOT_MASK;
    unsigned significant = 63u - (unsigned)__builtin_clzll(diff);
    return significant / LEVEL_BITS;
}

static void file_timer(struct crl__wheel *w, struct crl__timer *t)
{
    uint64_t tick = tick_of(t->deadline_ns);
    if (tick < w->tick) {
        t->where = CRL__WHEEL_DUE;
        list_push(&w->due, t);
        return;
    }
    unsigned level = level_for(w->tick, tick);
    if (level >= CRL__WHEEL_LEVELS) {
        /* Beyond the wheel's window (~52 days): re-filed when the window turns over. */
        t->where = CRL__WHEEL_FAR;
        list_push(&w->far, t);
        return;
    }
    unsigned slot = (unsigned)(tick >> (level * LEVEL_BITS)) & SLOT_MASK;
    t->where = (uint16_t)(level * CRL__WHEEL_SLOTS + slot);
    list_push(&w->slot[level][slot], t);
    w->occupied[level] |= UINT64_C(1) << slot;
}

void crl__timer_arm(struct crl__wheel *w, struct crl__timer *t, int64_t deadline_ns)
{
    CRL__COUNT(w, armed);
    if (t->pprev)
        crl__timer_disarm(w, t);
    t->deadline_ns = deadline_ns;
    file_timer(w, t);
    w->count++;
    if (deadline_ns < w->due_hint)
        w->due_hint = deadline_ns;
}

static void unlink_timer(struct crl__wheel *w, struct crl__timer *t)
{
    *t->pprev = t->next;
    if (t->next)
        t->next->pprev = t->pprev;
    if (t->where < CRL__WHEEL_FAR) {
        unsigned level = t->where / CRL__WHEEL_SLOTS, slot = t->where % CRL__WHEEL_SLOTS;
        if (!w->slot[level][slot])
            w->occupied[level] &= ~(UINT64_C(1) << slot);
    }
    t->next = NULL;
    t->pprev = NULL;
}

void crl__timer_disarm(struct crl__wheel *w, struct crl__timer *t)
{
    if (!t->pprev)
        return;
    unlink_timer(w, t);
    w->count--;
}

/* The first tick >= w->tick at which some slot needs work (fire or cascade), or UINT64_MAX. */
static uint64_t next_event_tick(const struct crl__wheel *w)
{
    uint64_t best = w->far ? (w->tick | WHEEL_SPAN_MASK) + 1 : UINT64_MAX;
    for (unsigned level = 0; level < CRL__WHEEL_LEVELS; level++) {
        unsigned shift = level * LEVEL_BITS;
        unsigned cur = (unsigned)(w->tick >> shift) & SLOT_MASK;
        uint64_t pending = w->occupied[level] & (~UINT64_C(0) << cur);
        if (!pending)
            continue; /* stored timers never sit in a slot behind the current one */
        unsigned slot = (unsigned)__builtin_ctzll(pending);
        uint64_t span_mask = (UINT64_C(1) << (shift + LEVEL_BITS)) - 1;
        uint64_t start = (w->tick & ~span_mask) | ((uint64_t)slot << shift);
        if (start < w->tick)
            start = w->tick;
        if (start < best)
            best = start;
    }
    return best;
}

/* Fire a detached list of expired timers. A callback may disarm a timer still in the list
 * (cancelling a scope disarms its tasks' sleeps), so the list keeps valid back-links and its
 * head is re-read after every callback. */
static void fire_list(struct crl__wheel *w, struct crl__timer *list)
{
    struct crl__timer *head = list;
    for (struct crl__timer **pp = &head; *pp; pp = &(*pp)->next) {
        (*pp)->pprev = pp;
        (*pp)->where = CRL__WHEEL_DUE;
    }
    while (head) {
        struct crl__timer *t = head;
        head = t->next;
        if (head)
            head->pprev = &head;
        t->next = NULL;
        t->pprev = NULL;
        w->count--;
        CRL__COUNT(w, fired);
        t->fire(t);
    }
}

/* Process the current tick: cascade the current slot of every level above 0 (timers land in
 * lower levels), then fire level 0's current slot. */
static void process_tick(struct crl__wheel *w)
{
    if ((w->tick & WHEEL_SPAN_MASK) == 0 && w->far) {
        struct crl__timer *t = w->far;
        w->far = NULL;
        while (t) {
            struct crl__timer *next = t->next;
            file_timer(w, t);
            t = next;
        }
    }
    for (unsigned level = CRL__WHEEL_LEVELS - 1; level > 0; level--) {
        unsigned slot = (unsigned)(w->tick >> (level * LEVEL_BITS)) & SLOT_MASK;
        if (!(w->occupied[level] & (UINT64_C(1) << slot)))
            continue;
        struct crl__timer *t = w->slot[level][slot];
        w->slot[level][slot] = NULL;
        w->occupied[level] &= ~(UINT64_C(1) << slot);
        while (t) {
            struct crl__timer *next = t->next;
            file_timer(w, t);
            t = next;
        }
    }
    unsigned slot = (unsigned)w->tick & SLOT_MASK;
    struct crl__timer *due = w->slot[0][slot];
    /* This tick is over before its timers fire: one that a callback arms for it goes on the
     * due list, not into the slot just emptied, which the wheel has passed. */
    w->tick++;
    if (!due)
        return;
    w->slot[0][slot] = NULL;
    w->occupied[0] &= ~(UINT64_C(1) << slot);
    struct crl__timer *fire = NULL;
    while (due) {
        struct crl__timer *next = due->next;
        due->next = fire;
        fire = due;
        due = next;
    }
    fire_list(w, fire);
}

void crl__wheel_advance(struct crl__wheel *w, int64_t now_ns)
{
    w->due_hint = INT64_MIN; /* what fires (and re-arms) now changes it */
    if (w->due) {
        struct crl__timer *due = w->due;
        w->due = NULL;
        fire_list(w, due);
    }
    uint64_t target = tick_of(now_ns);
    while (w->tick < target) {
        uint64_t next = next_event_tick(w);
        if (next >= target) {
            w->tick = target;
            break;
        }
        w->tick = next;
        process_tick(w); /* and moves past it */
    }
}

int64_t crl__wheel_next_ns(const struct crl__wheel *w)
{
    if (w->due)
        return 0;
    if (!w->count)
        return -1;
    uint64_t next = next_event_tick(w);
    if (next == UINT64_MAX)
        return -1;
    if (next >= (uint64_t)INT64_MAX >> TICK_SHIFT)
        return INT64_MAX; /* the end of the clock */
    /* A timer fires once the wheel has passed its tick. */
    return (int64_t)((next + 1) << TICK_SHIFT);
}

void crl__wheel_fire_due(struct crl__wheel *w, int64_t now_ns)
{
    if (w->due_hint == INT64_MIN) {
        int64_t next = crl__wheel_next_ns(w);
        w->due_hint = next < 0 ? INT64_MAX : next;
    }
    if (now_ns >= w->due_hint)
        crl__wheel_advance(w, now_ns);
}

/* ---- Sleeping --------------------------------------------------------------------------- */

struct sleeper {
    struct crl__timer timer;
    struct crl_task *task;
};

static void sleep_fire(struct crl__timer *tm)
{
    struct sleeper *s = crl__container_of(tm, struct sleeper, timer);
    crl__wake(s->task, 0);
}

static void sleep_unpark(struct crl_task *t)
{
    struct sleeper *s = t->park_obj;
    crl__timer_disarm(&t->core->wheel, &s->timer);
}

__attribute__((constructor)) static void name_parks(void)
{
    crl__trace_name_park(sleep_unpark, CRL__PARK_TIMER);
}

int crl_sleep_until(int64_t deadline_ns)
{
    struct crl_task *t = crl__self();
    struct sleeper s = {.timer = {.fire = sleep_fire}, .task = t};
    crl__timer_arm(&t->core->wheel, &s.timer, crl__deadline_or_never(deadline_ns));
    return crl__park(sleep_unpark, &s);
}

bool crl__timer_describe_wait(void (*unpark)(struct crl_task *t), const void *obj, int64_t now_ns,
                              char *out, size_t cap)
{
    if (unpark != sleep_unpark)
        return false;
    int64_t deadline = ((const struct sleeper *)obj)->timer.deadline_ns;
    if (deadline == INT64_MAX)
        snprintf(out, cap, "sleep forever");
    else
        snprintf(out, cap, "sleep until %+.1f ms", (double)(deadline - now_ns) / CRL_MSEC_NS);
    return true;
}

int crl_sleep_ns(int64_t ns) { return crl_sleep_until(crl__deadline_after(crl_now_ns(), ns)); }
