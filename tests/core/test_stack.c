/* Stacks: overflow is reported naming the task, guards add no mappings, reuse is LIFO. */
#define _GNU_SOURCE
#include "../test.h"
#include "big_frame.h"
#include "core.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

static int recurse(int depth)
{
    volatile char pad[256];
    pad[0] = (char)depth;
    if (depth == -1) /* never: only here so the compiler sees an exit */
        return 0;
    return recurse(depth + 1) + pad[0];
}

static int deep_recursion(void *arg)
{
    (void)arg;
    return recurse(0);
}

static int spawn_deep(struct crl_scope *s, void *arg)
{
    (void)arg;
    return crl_spawn(s, deep_recursion, NULL);
}

static int overflow_main(void *arg)
{
    (void)arg;
    return crl_scope_run(spawn_deep, NULL);
}

static void run_overflow(void *arg)
{
    (void)arg;
    crl_run(NULL, overflow_main, NULL);
}

static int big_frame_task(void *arg)
{
    (void)arg;
    return test_big_frame(7);
}

static int spawn_big_frame(struct crl_scope *s, void *arg)
{
    (void)arg;
    return crl_spawn(s, big_frame_task, NULL);
}

static int big_frame_main(void *arg)
{
    (void)arg;
    return crl_scope_run(spawn_big_frame, NULL);
}

static void run_big_frame(void *arg)
{
    (void)arg;
    crl_run(&(struct crl_config){.cores = 1, .stack_size = 64 * 1024}, big_frame_main, NULL);
}

/* A 224 KB frame on a 64 KiB stack, in code built without -fstack-clash-protection, jumps
 * over a one-page guard into the stack below; the guard is wide enough to catch it, so the
 * task is named instead of a neighbour being corrupted. */
TEST_PLAIN(frame_larger_than_the_stack_lands_in_the_guard)
{
    struct child_result r;
    test_in_child(run_big_frame, NULL, &r);
    if (!WIFSIGNALED(r.status) || WTERMSIG(r.status) != SIGABRT ||
        !strstr(r.err, "stack overflow in task 'big_frame_task'"))
        test_fail(__FILE__, __LINE__, "child status %#x, stderr:\n%s", r.status, r.err);
}

/* A stack overflow aborts with a message naming the task. */
TEST_PLAIN(stack_overflow_aborts_naming_task)
{
    struct child_result r;
    test_in_child(run_overflow, NULL, &r);
    if (!WIFSIGNALED(r.status) || WTERMSIG(r.status) != SIGABRT)
        fprintf(stderr, "child status %#x, stderr:\n%s\n", r.status, r.err);
    CHECK(WIFSIGNALED(r.status));
    CHECK_EQ(WTERMSIG(r.status), SIGABRT);
    CHECK(strstr(r.err, "stack overflow in task 'deep_recursion'") != NULL);
}

static int count_maps(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    int n = 0, c;
    if (!f)
        return -1;
    while ((c = fgetc(f)) != EOF)
        n += c == '\n';
    fclose(f);
    return n;
}

static int nap(void *arg)
{
    (void)arg;
    return crl_sleep_ns(5 * CRL_MSEC_NS);
}

static int spawn_2000_and_count(struct crl_scope *s, void *arg)
{
    for (int i = 0; i < 2000; i++)
        CHECK_EQ(crl_spawn(s, nap, NULL), 0);
    *(int *)arg = count_maps();
    return 0;
}

/* With MADV_GUARD_INSTALL, 2000 guarded stacks add (almost) no mappings. */
TEST(guarded_stacks_add_no_mappings)
{
#if defined(__SANITIZE_THREAD__)
    TEST_SKIP("TSan maps memory of its own for every fiber");
#endif
    if (!crl__stack_guard_adds_no_mapping()) /* the root task's stack settled the mode */
        TEST_SKIP("no MADV_GUARD_INSTALL (kernel < 6.13 or an emulator): guards use mprotect");
    int before = count_maps(), during = 0;
    CHECK_EQ(crl_scope_run(spawn_2000_and_count, &during), 0);
    CHECK_LT(during - before, 100);
}

static int note_frame(void *arg)
{
    volatile char here;
    *(uintptr_t *)arg = (uintptr_t)&here;
    return 0;
}

static int one_child(struct crl_scope *s, void *arg) { return crl_spawn(s, note_frame, arg); }

/* A released stack is the next one handed out (LIFO: it is still warm in cache). */
TEST(stacks_are_reused_lifo)
{
    uintptr_t a = 0, b = 0;
    CHECK_EQ(crl_scope_run(one_child, &a), 0);
    CHECK_EQ(crl_scope_run(one_child, &b), 0);
    CHECK(a != 0);
    CHECK_EQ(a, b);
}

struct trim {
    int64_t period_ns;
    bool no_timer; /* idle in a read that a thread ends, with no timer to wake the core */
    size_t after_burst, after_idle, after_second_burst;
};

static void *write_later(void *arg)
{
    usleep(300 * 1000);
    CHECK_EQ(write(*(int *)arg, "x", 1), 1);
    return NULL;
}

/* 300 ms of idle: timers wake the core every 10 ms, or nothing does (a read that a thread
 * ends). */
static void idle_300_ms(bool no_timer)
{
    if (!no_timer) {
        for (int i = 0; i < 30; i++)
            CHECK_EQ(crl_sleep_ns(10 * CRL_MSEC_NS), 0);
        return;
    }
    int fds[2];
    pthread_t thread;
    char byte;
    CHECK_EQ(pipe2(fds, O_CLOEXEC), 0);
    CHECK_EQ(pthread_create(&thread, NULL, write_later, &fds[1]), 0);
    CHECK_EQ(crl_read(fds[0], &byte, 1), 1);
    CHECK_EQ(pthread_join(thread, NULL), 0);
    CHECK_EQ(crl_close(fds[0]), 0);
    CHECK_EQ(close(fds[1]), 0);
}

static int sleep_a_moment(void *arg) { return crl_sleep_ns(CRL_MSEC_NS); }

static int burst_of_500(struct crl_scope *s, void *arg)
{
    for (int i = 0; i < 500; i++)
        CHECK_EQ(crl_spawn(s, sleep_a_moment, NULL), 0);
    return 0;
}

static int burst_idle_burst(void *arg)
{
    struct trim *t = arg;
    const struct crl__stack_class *cls = &crl__core()->stacks.cls[0];
    CHECK_EQ(crl_scope_run(burst_of_500, NULL), 0);
    t->after_burst = cls->nfree;
    idle_300_ms(t->no_timer);
    t->after_idle = cls->nfree;
    CHECK_EQ(crl_scope_run(burst_of_500, NULL), 0); /* stacks made anew where they went */
    t->after_second_burst = cls->nfree;
    return 0;
}

static void run_burst_idle_burst(struct trim *t)
{
    struct crl_config cfg = {.cores = 1, .stack_trim_ns = t->period_ns};
    CHECK_EQ(crl_run(&cfg, burst_idle_burst, t), 0);
    CHECK_GE(t->after_burst, 500);
    CHECK_GE(t->after_second_burst, 500);
}

/* An idle core halves, once a period, the stacks it kept cached and unused: 300 ms of idle
 * with a 20 ms period leaves few of a 500-task burst's stacks; a new burst still runs. */
TEST_PLAIN(idle_core_gives_back_unused_cached_stacks)
{
    struct trim t = {.period_ns = 20 * CRL_MSEC_NS};
    run_burst_idle_burst(&t);
    CHECK_LT(t.after_idle, t.after_burst / 8);
}

/* A core with nothing to wake it wakes for the trim while its cache can shrink. */
TEST_PLAIN(idle_core_without_timers_still_gives_back_stacks)
{
    if (test_under_valgrind()) /* it runs no other thread while the core waits in the kernel */
        TEST_SKIP("valgrind stalls the writing thread while the core waits for its read");
#if defined(__SANITIZE_THREAD__)
    TEST_SKIP("under TSan on a loaded runner the 20 ms trims come late: too few in 300 ms");
#endif
    struct trim t = {.period_ns = 20 * CRL_MSEC_NS, .no_timer = true};
    run_burst_idle_burst(&t);
    CHECK_LT(t.after_idle, t.after_burst / 8);
}

/* With trimming off (stack_trim_ns < 0), the burst's stacks stay cached. */
TEST_PLAIN(stack_trim_off_keeps_cached_stacks)
{
    struct trim t = {.period_ns = -1};
    run_burst_idle_burst(&t);
    CHECK_EQ(t.after_idle, t.after_burst);
}

/* Whether a mapping of this process covers addr (from /proc: a probing syscall on an
 * unmapped address is an error to valgrind). */
static bool is_mapped(const void *addr)
{
    FILE *f = fopen("/proc/self/maps", "r");
    unsigned long lo, hi, at = (unsigned long)(uintptr_t)addr;
    bool found = false;
    char line[512];
    CHECK(f != NULL);
    while (!found && fgets(line, sizeof line, f))
        found = sscanf(line, "%lx-%lx", &lo, &hi) == 2 && lo <= at && at < hi;
    fclose(f);
    return found;
}

enum { RELEASED_EACH_WAY = 256, ALTERNATING = 2 * (CRL__MAX_CACHED_STACKS + RELEASED_EACH_WAY) };

/* Tasks that end in any order give their stacks back without splitting mappings: a stack
 * released out of the middle of its slab used to be unmapped alone, one more VMA per hole,
 * and past vm.max_map_count the unmap failed and the stack leaked. Stacks are freed here in
 * alternating order, past the cache's cap; a slab goes back whole once all of it is free. */
TEST(stacks_released_in_any_order_split_no_mapping)
{
#if defined(__SANITIZE_THREAD__)
    TEST_SKIP("TSan maps memory of its own for every fiber");
#endif
    if (!crl__stack_guard_adds_no_mapping())
        TEST_SKIP("no MADV_GUARD_INSTALL (kernel < 6.13 or an emulator): guards use mprotect");
    struct crl__core *c = crl__core();
    size_t size = c->cfg->stack_size;
    struct crl_task **tasks = calloc(ALTERNATING, sizeof *tasks);
    CHECK(tasks != NULL);
    int err = 0;
    for (int i = 0; i < ALTERNATING; i++) {
        tasks[i] = crl__task_alloc(c, size, &err);
        CHECK(tasks[i] != NULL);
    }
    /* An even stack well inside those made last: the cache is full before it is freed, and
     * its slab is carved whole. */
    const char *late = tasks[ALTERNATING - 3 * 64]->stack.base + CRL__STACK_GUARD;
    int before = count_maps();
    for (int i = 0; i < ALTERNATING; i += 2) /* the cache takes the first, the rest go */
        crl__task_free(c, tasks[i]);
    crl__stack_reap(c);
    int after_evens = count_maps();
    CHECK(is_mapped(late)); /* freed, but the odd stacks of its slab still live */
    for (int i = 1; i < ALTERNATING; i += 2)
        crl__task_free(c, tasks[i]);
    crl__stack_reap(c);
    int after_all = count_maps();
    free(tasks);
    CHECK_LT(after_evens - before, 16);
    CHECK_LT(after_all - before, 16);
    CHECK(!is_mapped(late)); /* its slab went back whole */
}

static int touch_and_wait(void *arg)
{
    volatile char frame[6000]; /* two pages of the stack, as a request's handler touches */
    frame[0] = frame[sizeof frame - 1] = 1;
    (void)frame[0];
    return crl_event_wait(arg);
}

static int burst_body(struct crl_scope *s, void *arg)
{
    struct crl_event *go = arg;
    for (int i = 0; i < 3 * CRL__MAX_CACHED_STACKS; i++)
        CHECK_EQ(crl_spawn(s, touch_and_wait, go), 0);
    CHECK_EQ(crl_yield(), 0); /* each runs to its wait: 3x the cache's bound live at once */
    crl_event_set(go);
    return 0;
}

/* A burst of tasks three times the cache's bound leaves no more than the bound cached (and
 * resident): the rest of their stacks go back to the kernel when they end. */
TEST(a_burst_leaves_at_most_the_bound_cached)
{
    struct crl__core *c = crl__core();
    struct crl_event go;
    crl_event_init(&go);
    CHECK_EQ(crl_scope_run(burst_body, &go), 0);
    CHECK_LT(c->stacks.cls[0].nfree, (size_t)CRL__MAX_CACHED_STACKS + 1);
    CHECK_GE(c->stacks.cls[0].nfree, (size_t)CRL__MAX_CACHED_STACKS / 2);
}

/* ---- Settling the cache: stacks below the hot ones give their pages back ----------------- */

enum { SETTLE_TASKS = 300, SETTLE_TOUCH = 3 * 4096 };

struct settle {
    struct crl_event go;
    char *deep[SETTLE_TASKS]; /* a page of each task's stack that it touched, deep down */
    int started;
};

static int touch_deep_and_wait(void *arg)
{
    struct settle *st = arg;
    /* alloca, not an array: ASan's use-after-return check moves fixed arrays off the stack */
    volatile char *buf = __builtin_alloca(SETTLE_TOUCH);
    for (size_t i = 0; i < SETTLE_TOUCH; i += 512)
        buf[i] = (char)i;
    st->deep[st->started++] = (char *)((uintptr_t)&buf[0] & ~(uintptr_t)4095);
    CHECK_EQ(crl_event_wait(&st->go), 0);
    return buf[512] == (char)512 ? 0 : -EIO; /* its page is its own while it runs */
}

static int settle_burst(struct crl_scope *s, void *arg)
{
    struct settle *st = arg;
    for (int i = 0; i < SETTLE_TASKS; i++)
        CHECK_EQ(crl_spawn(s, touch_deep_and_wait, st), 0);
    CHECK_EQ(crl_sleep_ns(CRL_MSEC_NS), 0); /* every one has started */
    crl_event_set(&st->go);
    return 0;
}

static int resident_pages(struct settle *st)
{
    int n = 0;
    for (int i = 0; i < SETTLE_TASKS; i++) {
        unsigned char v = 0;
        CHECK_EQ(mincore(st->deep[i], 4096, &v), 0);
        n += v & 1;
    }
    return n;
}

static int settle_main(void *arg)
{
    struct settle *st = arg;
    for (int round = 0; round < 2; round++) { /* the second reuses settled stacks */
        st->started = 0;
        crl_event_clear(&st->go);
        CHECK_EQ(crl_scope_run(settle_burst, st), 0);
        CHECK_EQ(st->started, SETTLE_TASKS);
        CHECK_GE(resident_pages(st), SETTLE_TASKS - 5); /* cached, pages and all, at first */
        CHECK_EQ(crl_sleep_ns(CRL__SETTLE_NS + 20 * CRL_MSEC_NS), 0); /* idle: it settles */
        CHECK_LT(resident_pages(st), CRL__HOT_STACKS + 5);
    }
    return 0;
}

/* A burst's stacks stay cached (so the next burst needs no mmap), but once the core is idle
 * all but the most recently used CRL__HOT_STACKS give back the pages their tasks touched. */
TEST_PLAIN(idle_core_settles_cached_stacks_below_the_hot_ones)
{
    static struct settle st;
    struct crl_config cfg = {.cores = 1, .stack_trim_ns = -1}; /* no trim: the cache stays */
    CHECK_EQ(crl_run(&cfg, settle_main, &st), 0);
}

static int busy_main(void *arg)
{
    struct settle *st = arg;
    CHECK_EQ(crl_scope_run(settle_burst, st), 0);
    CHECK_GE(resident_pages(st), SETTLE_TASKS - 5);
    /* A task runs every millisecond for 2.5 settle periods: the core waits between, but is
     * not quiet, so the cache keeps its pages (they would fault back in at the next burst). */
    for (int i = 0; i < 250; i++)
        CHECK_EQ(crl_sleep_ns(CRL_MSEC_NS), 0);
    CHECK_GE(resident_pages(st), SETTLE_TASKS - 5);
    CHECK_EQ(crl_sleep_ns(CRL__SETTLE_NS + 20 * CRL_MSEC_NS), 0); /* quiet: it settles */
    CHECK_LT(resident_pages(st), CRL__HOT_STACKS + 5);
    return 0;
}

/* Only a core that ran no task for CRL__SETTLE_NS settles its cache, not one that merely
 * waits between tasks. */
TEST_PLAIN(a_busy_core_does_not_settle_its_stacks)
{
    static struct settle st;
    crl_event_init(&st.go);
    struct crl_config cfg = {.cores = 1, .stack_trim_ns = -1};
    CHECK_EQ(crl_run(&cfg, busy_main, &st), 0);
}
