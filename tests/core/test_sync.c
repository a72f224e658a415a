/* Same-core synchronization: channel, mutex, semaphore, event. */
#include "../test.h"

#include <errno.h>

struct pc {
    struct crl_chan ch;
    int received[100];
    int n;
};

static int produce_100(void *arg)
{
    struct pc *p = arg;
    for (int i = 0; i < 100; i++)
        CHECK_EQ(crl_chan_send(&p->ch, &i), 0);
    crl_chan_close(&p->ch);
    return 0;
}

static int consume_all(void *arg)
{
    struct pc *p = arg;
    int v, rc;
    while ((rc = crl_chan_recv(&p->ch, &v)) == 0)
        p->received[p->n++] = v;
    CHECK_EQ(rc, -EPIPE);
    return 0;
}

static int producer_consumer(struct crl_scope *s, void *arg)
{
    CHECK_EQ(crl_spawn(s, consume_all, arg), 0);
    CHECK_EQ(crl_spawn(s, produce_100, arg), 0);
    return 0;
}

/* Elements arrive in order through a small channel, with both sides blocking in turn;
 * closing lets the receiver drain and then see -EPIPE. */
TEST(chan_delivers_in_order_and_close_drains)
{
    struct pc p = {.n = 0};
    CHECK_EQ(crl_chan_init(&p.ch, sizeof(int), 3), 0);
    CHECK_EQ(crl_scope_run(producer_consumer, &p), 0);
    CHECK_EQ(p.n, 100);
    for (int i = 0; i < 100; i++)
        CHECK_EQ(p.received[i], i);
    crl_chan_fini(&p.ch);
}

/* Non-blocking forms report -EAGAIN; bad parameters are refused. */
TEST(chan_try_forms_and_bad_init)
{
    struct crl_chan ch;
    int v = 5, out = 0;
    CHECK_EQ(crl_chan_init(&ch, 0, 1), -EINVAL);
    CHECK_EQ(crl_chan_init(&ch, 4, 0), -EINVAL);
    CHECK_EQ(crl_chan_init(&ch, sizeof v, 1), 0);
    CHECK_EQ(crl_chan_try_recv(&ch, &out), -EAGAIN);
    CHECK_EQ(crl_chan_try_send(&ch, &v), 0);
    CHECK_EQ(crl_chan_len(&ch), 1);
    CHECK_EQ(crl_chan_try_send(&ch, &v), -EAGAIN);
    CHECK_EQ(crl_chan_try_recv(&ch, &out), 0);
    CHECK_EQ(out, 5);
    crl_chan_close(&ch);
    CHECK_EQ(crl_chan_try_send(&ch, &v), -EPIPE);
    CHECK_EQ(crl_chan_try_recv(&ch, &out), -EPIPE);
    crl_chan_fini(&ch);
}

struct blocked {
    struct crl_chan ch;
    int rc;
};

static int send_to_full(void *arg)
{
    struct blocked *b = arg;
    int v = 2;
    b->rc = crl_chan_send(&b->ch, &v);
    return 0;
}

static int close_under_sender(struct crl_scope *s, void *arg)
{
    struct blocked *b = arg;
    int v = 1;
    CHECK_EQ(crl_chan_send(&b->ch, &v), 0);
    CHECK_EQ(crl_spawn(s, send_to_full, b), 0);
    CHECK_EQ(crl_yield(), 0);
    CHECK_EQ(b->rc, 1); /* still blocked */
    crl_chan_close(&b->ch);
    return 0;
}

/* A sender blocked on a full channel gets -EPIPE when it is closed. */
TEST(chan_close_fails_blocked_sender)
{
    struct blocked b = {.rc = 1};
    CHECK_EQ(crl_chan_init(&b.ch, sizeof(int), 1), 0);
    CHECK_EQ(crl_scope_run(close_under_sender, &b), 0);
    CHECK_EQ(b.rc, -EPIPE);
    crl_chan_fini(&b.ch);
}

static int recv_blocking(void *arg)
{
    struct blocked *b = arg;
    int v;
    b->rc = crl_chan_recv(&b->ch, &v);
    return 0;
}

static int cancel_receiver(struct crl_scope *s, void *arg)
{
    CHECK_EQ(crl_spawn(s, recv_blocking, arg), 0);
    CHECK_EQ(crl_yield(), 0);
    crl_scope_cancel(s);
    return 0;
}

/* A cancelled receiver leaves the channel's wait queue: the channel stays usable. */
TEST(chan_cancelled_receiver_leaves_queue)
{
    struct blocked b = {.rc = 1};
    int v = 9, out = 0;
    CHECK_EQ(crl_chan_init(&b.ch, sizeof(int), 1), 0);
    CHECK_EQ(crl_scope_run(cancel_receiver, &b), 0);
    CHECK_EQ(b.rc, -ECANCELED);
    CHECK_EQ(crl_chan_try_send(&b.ch, &v), 0);
    CHECK_EQ(crl_chan_try_recv(&b.ch, &out), 0);
    CHECK_EQ(out, 9);
    crl_chan_fini(&b.ch);
}

struct locking {
    struct crl_mutex m;
    int order[3], n, inside;
};

struct locker {
    struct locking *l;
    int id;
};

static int lock_and_hold(void *arg)
{
    struct locker *me = arg;
    struct locking *l = me->l;
    CHECK_EQ(crl_mutex_lock(&l->m), 0);
    CHECK_EQ(l->inside, 0);
    l->inside = 1;
    l->order[l->n++] = me->id;
    CHECK_EQ(crl_sleep_ns(CRL_MSEC_NS), 0);
    l->inside = 0;
    CHECK_EQ(crl_mutex_unlock(&l->m), 0);
    return 0;
}

static int contend(struct crl_scope *s, void *arg)
{
    struct locker *lockers = arg;
    for (int i = 0; i < 3; i++)
        CHECK_EQ(crl_spawn(s, lock_and_hold, &lockers[i]), 0);
    return 0;
}

/* The mutex excludes, and passes FIFO between waiters. */
TEST(mutex_excludes_and_hands_off_fifo)
{
    struct locking l = {.n = 0};
    struct locker lockers[3] = {{&l, 0}, {&l, 1}, {&l, 2}};
    crl_mutex_init(&l.m);
    CHECK_EQ(crl_scope_run(contend, lockers), 0);
    CHECK_EQ(l.n, 3);
    for (int i = 0; i < 3; i++)
        CHECK_EQ(l.order[i], i);
}

static int try_unlock_foreign(void *arg)
{
    struct crl_mutex *m = arg;
    CHECK_EQ(crl_mutex_unlock(m), -EPERM);
    CHECK_EQ(crl_mutex_trylock(m), -EBUSY);
    return 0;
}

static int misuse(struct crl_scope *s, void *arg)
{
    struct crl_mutex *m = arg;
    CHECK_EQ(crl_mutex_lock(m), 0);
    CHECK_EQ(crl_mutex_lock(m), -EDEADLK);
    return crl_spawn(s, try_unlock_foreign, m);
}

/* Relocking, unlocking someone else's mutex and trylock of a held one are refused. */
TEST(mutex_misuse_is_refused)
{
    struct crl_mutex m;
    crl_mutex_init(&m);
    CHECK_EQ(crl_scope_run(misuse, &m), 0);
    CHECK_EQ(crl_mutex_unlock(&m), 0);
    CHECK_EQ(crl_mutex_trylock(&m), 0);
    CHECK_EQ(crl_mutex_unlock(&m), 0);
}

static int lock_cancelled(void *arg)
{
    struct blocked *b = arg;
    b->rc = crl_mutex_lock((struct crl_mutex *)b->ch.buf_);
    return 0;
}

static int cancel_locker(struct crl_scope *s, void *arg)
{
    struct blocked *b = arg;
    struct crl_mutex *m = (struct crl_mutex *)b->ch.buf_;
    CHECK_EQ(crl_mutex_lock(m), 0);
    CHECK_EQ(crl_spawn(s, lock_cancelled, b), 0);
    CHECK_EQ(crl_yield(), 0);
    crl_scope_cancel(s);
    CHECK_EQ(crl_yield(), -ECANCELED);
    CHECK_EQ(crl_mutex_unlock(m), 0);
    CHECK_EQ(crl_mutex_trylock(m), 0); /* the cancelled waiter did not get it */
    return crl_mutex_unlock(m);
}

/* A task cancelled while waiting for a mutex does not hold it. */
TEST(mutex_wait_cancelled_does_not_acquire)
{
    struct crl_mutex m;
    struct blocked b = {.rc = 1};
    crl_mutex_init(&m);
    b.ch.buf_ = (unsigned char *)&m; /* reuse the struct as a carrier */
    CHECK_EQ(crl_scope_run(cancel_locker, &b), 0);
    CHECK_EQ(b.rc, -ECANCELED);
}

struct sem_test {
    struct crl_sem sem;
    int acquired;
};

static int take_unit(void *arg)
{
    struct sem_test *t = arg;
    CHECK_EQ(crl_sem_acquire(&t->sem), 0);
    t->acquired++;
    return 0;
}

static int sem_body(struct crl_scope *s, void *arg)
{
    struct sem_test *t = arg;
    for (int i = 0; i < 4; i++)
        CHECK_EQ(crl_spawn(s, take_unit, t), 0);
    CHECK_EQ(crl_yield(), 0);
    CHECK_EQ(t->acquired, 2); /* two units to start with */
    crl_sem_release(&t->sem);
    crl_sem_release(&t->sem);
    return 0;
}

/* The semaphore lets as many through as it has units, and release wakes waiters. */
TEST(semaphore_counts_units)
{
    struct sem_test t = {.acquired = 0};
    crl_sem_init(&t.sem, 2);
    CHECK_EQ(crl_scope_run(sem_body, &t), 0);
    CHECK_EQ(t.acquired, 4);
    CHECK_EQ(crl_sem_try_acquire(&t.sem), -EAGAIN);
    crl_sem_release(&t.sem);
    CHECK_EQ(crl_sem_try_acquire(&t.sem), 0);
}

struct ev_test {
    struct crl_event ev;
    int woke;
};

static int wait_event(void *arg)
{
    struct ev_test *t = arg;
    CHECK_EQ(crl_event_wait(&t->ev), 0);
    t->woke++;
    return 0;
}

static int ev_body(struct crl_scope *s, void *arg)
{
    struct ev_test *t = arg;
    for (int i = 0; i < 5; i++)
        CHECK_EQ(crl_spawn(s, wait_event, t), 0);
    CHECK_EQ(crl_yield(), 0);
    CHECK_EQ(t->woke, 0);
    crl_event_set(&t->ev);
    return 0;
}

/* Setting an event wakes every waiter; it stays set until cleared. */
TEST(event_wakes_all_and_stays_set)
{
    struct ev_test t = {.woke = 0};
    crl_event_init(&t.ev);
    CHECK_EQ(crl_scope_run(ev_body, &t), 0);
    CHECK_EQ(t.woke, 5);
    CHECK(crl_event_is_set(&t.ev));
    CHECK_EQ(crl_event_wait(&t.ev), 0);
    crl_event_clear(&t.ev);
    CHECK(!crl_event_is_set(&t.ev));
}
