/* sync.c - same-core synchronization: bounded channel, mutex, semaphore, event.
 *
 * No atomics: a core's tasks never run at the same time. A blocked task waits on a record in
 * its own frame, linked into the object's FIFO wait queue; whoever satisfies it does the
 * work on its behalf (copies the element, hands over the lock or the unit) before waking it,
 * so a woken waiter never has to retry. Cancellation unlinks the record instead. */
#include "core.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct waiter {
    struct waiter *next, *prev;
    struct crl_waitq *q;
    struct crl_task *task;
    void *buf;        /* the element to send or the place to receive into */
    const char *what; /* what it waits for, for the dump: "mutex", "channel recv"... */
};

/* ---- Wait queues ------------------------------------------------------------------------ */

static void waitq_init(struct crl_waitq *q)
{
    q->head_ = q->tail_ = NULL;
    q->core_ = crl__cur; /* NULL outside a runtime: the first core to use it owns it */
}

/* The stand-in for Rust's Send: an object belongs to the core that made (or first used) it.
 * Checked where assertions are on (the sanitizer builds); compiled out of release builds. */
#ifndef NDEBUG
static void check_owner(struct crl_waitq *q, const char *what, const void *obj)
{
    struct crl__core *c = crl__cur;
    if (!c)
        return;
    if (!q->core_)
        q->core_ = c;
    else if (q->core_ != c)
        crl__panic("corral: %s %p belongs to core %u but was used from core %u", what, obj,
                   ((struct crl__core *)q->core_)->id, c->id);
}
#else
#define check_owner(q, what, obj) ((void)0)
#endif

static void waitq_push(struct crl_waitq *q, struct waiter *w)
{
    struct waiter *tail = q->tail_;
    w->q = q;
    w->next = NULL;
    w->prev = tail;
    if (tail)
        tail->next = w;
    else
        q->head_ = w;
    q->tail_ = w;
}

static void waitq_remove(struct waiter *w)
{
    struct crl_waitq *q = w->q;
    if (w->prev)
        w->prev->next = w->next;
    else
        q->head_ = w->next;
    if (w->next)
        w->next->prev = w->prev;
    else
        q->tail_ = w->prev;
}

static struct waiter *waitq_pop(struct crl_waitq *q)
{
    struct waiter *w = q->head_;
    if (w)
        waitq_remove(w);
    return w;
}

static void waiter_unpark(struct crl_task *t) { waitq_remove(t->park_obj); }

/* A channel's waiter: the same, and the element it lent is no longer read or written. (A
 * function of its own, so that the trace can tell a channel's parks from the others'.) */
static void chan_waiter_unpark(struct crl_task *t)
{
    struct waiter *w = t->park_obj;
    waitq_remove(w);
    w->buf = NULL;
}

__attribute__((constructor)) static void name_parks(void)
{
    crl__trace_name_park(waiter_unpark, CRL__PARK_SYNC);
    crl__trace_name_park(chan_waiter_unpark, CRL__PARK_CHAN);
}

bool crl__sync_describe_wait(void (*unpark)(struct crl_task *t), const void *obj, int64_t now_ns,
                             char *out, size_t cap)
{
    (void)now_ns;
    if (unpark != waiter_unpark && unpark != chan_waiter_unpark)
        return false;
    const struct waiter *w = obj;
    snprintf(out, cap, "%s %p", w->what, (const void *)w->q);
    return true;
}

/* Block the calling task on q; returns what its waker passed, or the cancellation error. */
static int wait_through(struct crl_waitq *q, void *buf, const char *what,
                        void (*unpark)(struct crl_task *t))
{
    struct waiter w = {.task = crl__self(), .buf = buf, .what = what};
    waitq_push(q, &w);
    return crl__park(unpark, &w);
}

static int wait_on(struct crl_waitq *q, const char *what)
{
    return wait_through(q, NULL, what, waiter_unpark);
}

static void wake_all(struct crl_waitq *q, int result)
{
    struct waiter *w;
    while ((w = waitq_pop(q)))
        crl__wake(w->task, result);
}

/* ---- Channel ---------------------------------------------------------------------------- */

int crl_chan_init(struct crl_chan *ch, size_t elem_size, size_t capacity)
{
    memset(ch, 0, sizeof *ch);
    if (elem_size == 0 || capacity == 0 || capacity > SIZE_MAX / elem_size)
        return -EINVAL;
    ch->buf_ = malloc(elem_size * capacity);
    if (!ch->buf_)
        return -ENOMEM;
    ch->elem_size_ = elem_size;
    ch->cap_ = capacity;
    waitq_init(&ch->senders_);
    waitq_init(&ch->receivers_);
    return 0;
}

void crl_chan_fini(struct crl_chan *ch)
{
    if (ch->senders_.head_ || ch->receivers_.head_)
        crl__panic("corral: crl_chan_fini with tasks blocked on the channel");
    free(ch->buf_);
    ch->buf_ = NULL;
}

static void *slot(const struct crl_chan *ch, size_t i)
{
    size_t at = ch->head_ + i;
    if (at >= ch->cap_)
        at -= ch->cap_;
    return ch->buf_ + at * ch->elem_size_;
}

int crl_chan_try_send(struct crl_chan *ch, const void *elem)
{
    check_owner(&ch->senders_, "channel", ch);
    if (ch->closed_)
        return -EPIPE;
    struct waiter *w = waitq_pop(&ch->receivers_);
    if (w) {
        memcpy(w->buf, elem, ch->elem_size_);
        crl__wake(w->task, 0);
        return 0;
    }
    if (ch->len_ == ch->cap_)
        return -EAGAIN;
    memcpy(slot(ch, ch->len_), elem, ch->elem_size_);
    ch->len_++;
    return 0;
}

int crl_chan_send(struct crl_chan *ch, const void *elem)
{
    int rc = crl_chan_try_send(ch, elem);
    if (rc != -EAGAIN)
        return rc;
    /* a receiver copies it out, then wakes us */
    return wait_through(&ch->senders_, (void *)elem, "channel send", chan_waiter_unpark);
}

int crl_chan_try_recv(struct crl_chan *ch, void *elem)
{
    check_owner(&ch->senders_, "channel", ch);
    if (ch->len_ == 0)
        return ch->closed_ ? -EPIPE : -EAGAIN;
    memcpy(elem, slot(ch, 0), ch->elem_size_);
    if (++ch->head_ == ch->cap_)
        ch->head_ = 0;
    ch->len_--;
    struct waiter *w = waitq_pop(&ch->senders_);
    if (w) {
        memcpy(slot(ch, ch->len_), w->buf, ch->elem_size_);
        ch->len_++;
        crl__wake(w->task, 0);
    }
    return 0;
}

int crl_chan_recv(struct crl_chan *ch, void *elem)
{
    int rc = crl_chan_try_recv(ch, elem);
    if (rc != -EAGAIN)
        return rc;
    /* a sender copies into elem, then wakes us */
    return wait_through(&ch->receivers_, elem, "channel recv", chan_waiter_unpark);
}

void crl_chan_close(struct crl_chan *ch)
{
    check_owner(&ch->senders_, "channel", ch);
    ch->closed_ = true;
    wake_all(&ch->senders_, -EPIPE);
    wake_all(&ch->receivers_, -EPIPE);
}

size_t crl_chan_len(const struct crl_chan *ch) { return ch->len_; }

/* ---- Mutex ------------------------------------------------------------------------------ */

void crl_mutex_init(struct crl_mutex *m)
{
    m->owner_ = NULL;
    waitq_init(&m->waiters_);
}

int crl_mutex_trylock(struct crl_mutex *m)
{
    check_owner(&m->waiters_, "mutex", m);
    if (m->owner_)
        return -EBUSY;
    m->owner_ = crl__self();
    return 0;
}

int crl_mutex_lock(struct crl_mutex *m)
{
    check_owner(&m->waiters_, "mutex", m);
    struct crl_task *t = crl__self();
    if (!m->owner_) {
        m->owner_ = t;
        return 0;
    }
    if (m->owner_ == t)
        return -EDEADLK;
    return wait_on(&m->waiters_, "mutex"); /* on 0, unlock made us the owner */
}

int crl_mutex_unlock(struct crl_mutex *m)
{
    check_owner(&m->waiters_, "mutex", m);
    if (m->owner_ != crl__self())
        return -EPERM;
    struct waiter *w = waitq_pop(&m->waiters_);
    m->owner_ = w ? w->task : NULL;
    if (w)
        crl__wake(w->task, 0);
    return 0;
}

/* ---- Semaphore -------------------------------------------------------------------------- */

void crl_sem_init(struct crl_sem *s, int64_t count)
{
    s->count_ = count;
    waitq_init(&s->waiters_);
}

int crl_sem_try_acquire(struct crl_sem *s)
{
    check_owner(&s->waiters_, "semaphore", s);
    if (s->count_ <= 0 || s->waiters_.head_)
        return -EAGAIN;
    s->count_--;
    return 0;
}

int crl_sem_acquire(struct crl_sem *s)
{
    if (crl_sem_try_acquire(s) == 0)
        return 0;
    return wait_on(&s->waiters_, "semaphore"); /* on 0, release handed us its unit */
}

void crl_sem_release(struct crl_sem *s)
{
    check_owner(&s->waiters_, "semaphore", s);
    struct waiter *w = waitq_pop(&s->waiters_);
    if (w)
        crl__wake(w->task, 0);
    else
        s->count_++;
}

/* ---- Event ------------------------------------------------------------------------------ */

void crl_event_init(struct crl_event *e)
{
    e->set_ = false;
    waitq_init(&e->waiters_);
}

int crl__event_wait_for(struct crl_event *e, const char *what)
{
    check_owner(&e->waiters_, "event", e);
    if (e->set_)
        return 0;
    return wait_on(&e->waiters_, what);
}

int crl_event_wait(struct crl_event *e) { return crl__event_wait_for(e, "event"); }

void crl_event_set(struct crl_event *e)
{
    check_owner(&e->waiters_, "event", e);
    e->set_ = true;
    wake_all(&e->waiters_, 0);
}

void crl_event_clear(struct crl_event *e)
{
    check_owner(&e->waiters_, "event", e);
    e->set_ = false;
}

bool crl_event_is_set(const struct crl_event *e) { return e->set_; }
