/* chat.c - a chat room on core 0 and four members dealt over the cores, talking through
 * channels. A member posts with crl_call (core 0 copies the message into the room's queue)
 * and hears the room through a cross-core channel of its own. Each member checks that it
 * heard every message once, in the one order the room gave them, its own in the order it
 * posted them.
 *
 * From "Async Rust is a bad language" ("Hoare was right"): tasks that share no memory and
 * talk through channels, the channels being the synchronization: a full one holds its sender
 * back. And from Schwartz's middle ground between share-nothing and work-stealing: the room
 * is the one thing the cores share, owned by core 0's tasks, so it needs no lock; the tasks
 * stay on their cores and borrow the room from app()'s frame all the same.
 */
#include <corral.h>

#include <errno.h>
#include <stdio.h>

enum { MEMBERS = 4, POSTS = 20 }; /* members, dealt over the cores; messages each one posts */

struct msg {
    int from; /* member index; -1: "I am done posting" */
    int n;    /* the sender's own count, 0 .. POSTS-1 */
    int seq;  /* the room's order, stamped on core 0 */
};

struct member {
    int id;
    unsigned core;
    struct room *room;
    struct crl_xchan *hears; /* room (core 0) -> this member's core */
    struct msg post;         /* what talk() is posting */
    int heard;               /* messages received */
    bool in_order;           /* each as expected so far */
};

struct room {
    struct crl_chan queue; /* posts waiting for the room task, on core 0 */
    struct member member[MEMBERS];
};

static int post_on_core0(void *arg) /* runs on core 0; arg is in the poster's frame */
{
    struct member *m = arg;
    return crl_chan_send(&m->room->queue, &m->post);
}

static int talk(void *arg) /* post POSTS messages, then one to say this member is done */
{
    struct member *m = arg;
    for (int n = 0; n <= POSTS; n++) {
        m->post = (struct msg){n < POSTS ? m->id : -1, n, 0};
        int rc = crl_call(0, post_on_core0, m); /* returns once the room has it */
        if (rc)
            return rc;
    }
    return 0;
}

/* Hear the room until it closes: every message once, numbered 0, 1, 2 ... by the room, and
 * each member's own messages in the order that member posted them. */
static int hear(void *arg)
{
    struct member *m = arg;
    int next_n[MEMBERS] = {0}, rc;
    struct msg msg;
    while ((rc = crl_xchan_recv(m->hears, &msg)) == 0)
        if (msg.seq != m->heard++ || msg.n != next_n[msg.from]++)
            m->in_order = false;
    if (rc != -EPIPE) /* cancelled */
        return rc;
    return m->in_order && m->heard == MEMBERS * POSTS ? 0 : -EPROTO;
}

static int member(void *arg) /* on its own core: talk and hear at once */
{
    struct crl_job jobs[] = {CRL_JOB(talk, arg), CRL_JOB(hear, arg)};
    return crl_try_join(jobs, 2);
}

static int broadcast(struct room *r, const struct msg *msg)
{
    for (int i = 0; i < MEMBERS; i++) {
        int rc = crl_xchan_send(r->member[i].hears, msg); /* waits while that member lags */
        if (rc)
            return rc;
    }
    return 0;
}

/* The room, on core 0: numbers each post and fans it out, until every member is done. */
static int room_task(void *arg)
{
    struct room *r = arg;
    int seq = 0, done = 0;
    while (done < MEMBERS) {
        struct msg msg;
        int rc = crl_chan_recv(&r->queue, &msg);
        if (rc)
            return rc; /* cancelled (and so are the members) */
        if (msg.from < 0) {
            done++;
            continue;
        }
        msg.seq = seq++;
        if ((rc = broadcast(r, &msg)) != 0)
            return rc;
    }
    for (int i = 0; i < MEMBERS; i++)
        crl_xchan_close(r->member[i].hears); /* each member drains it, then sees -EPIPE */
    return 0;
}

static int chat(struct crl_scope *s, void *arg)
{
    struct room *r = arg;
    int rc = crl_spawn(s, room_task, r);
    for (int i = 0; i < MEMBERS && rc == 0; i++)
        rc = crl_spawn_on(s, r->member[i].core, member, &r->member[i]);
    return rc;
}

static int app(void *arg)
{
    (void)arg;
    struct room r = {0};
    int rc = crl_chan_init(&r.queue, sizeof(struct msg), 8);
    for (int i = 0; i < MEMBERS && rc == 0; i++) {
        struct member *m = &r.member[i];
        *m = (struct member){.id = i, .core = i % crl_core_count(), .room = &r, .in_order = true};
        rc = crl_xchan_create(&m->hears, sizeof(struct msg), 8, 0, m->core);
    }
    if (rc == 0)
        rc = crl_scope_run(chat, &r); /* returns once every member and the room are done */
    for (int i = 0; i < MEMBERS; i++) {
        struct member *m = &r.member[i];
        printf("member %d on core %u heard %d messages, %s\n", i, m->core, m->heard,
               m->in_order ? "in order" : "NOT in order");
        crl_xchan_destroy(m->hears);
    }
    crl_chan_fini(&r.queue);
    return rc;
}

int main(void)
{
    int rc = crl_run(NULL, app, NULL); /* one core per CPU (or CORRAL_CORES) */
    if (rc < 0)
        fprintf(stderr, "chat: error %d\n", rc);
    return rc < 0;
}
