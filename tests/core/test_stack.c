/* Stacks: overflow is reported naming the task, guards add no mappings, reuse is LIFO. */
#include "../test.h"
#include "core.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

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
