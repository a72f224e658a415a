/* test.h - a tiny test harness: TEST() cases run each inside a fresh crl_run() (the body runs
 * as the root task), TEST_PLAIN() cases run on the bare thread. Each case runs in a forked
 * process of its own, killed (with what it forked) after its timeout: TEST_DEFAULT_TIMEOUT_S,
 * or CORRAL_TEST_TIMEOUT seconds from the environment, or the case's own (TEST_TIMEOUT). A
 * failing CHECK prints both values and ends the case with status 1; the other cases still
 * run, and the file exits 1 if any case failed, timed out or died of a signal. TEST_SKIP
 * marks a case skipped (exit 77 when every case of the file skipped). Run one case by
 * passing its name; CORRAL_TEST_NOFORK=1 runs the cases in the test's own process (for gdb;
 * the first failure then ends the file, and no timeout applies). */
#ifndef CRL_TEST_H
#define CRL_TEST_H

#include "corral.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#define TEST_DEFAULT_TIMEOUT_S 120.0

void test_register(const char *name, void (*fn)(void), bool in_runtime, double timeout_s);
_Noreturn void test_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void test_mark_skipped(const char *why);

#define TEST_CASE_(name, in_runtime, timeout_s)                                                    \
    static void name(void);                                                                        \
    __attribute__((constructor)) static void register_##name(void)                                 \
    {                                                                                              \
        test_register(#name, name, in_runtime, timeout_s);                                         \
    }                                                                                              \
    static void name(void)

/* A test file may define this to reset its own state before every case: with
 * CORRAL_TEST_NOFORK (the valgrind stage) the cases of a file share one process. */
void test_before_each(void) __attribute__((weak));

#define TEST(name) TEST_CASE_(name, true, 0)
#define TEST_PLAIN(name) TEST_CASE_(name, false, 0)
/* A TEST() case with a timeout of its own, in seconds, over the default and the environment. */
#define TEST_TIMEOUT(name, seconds) TEST_CASE_(name, true, seconds)

#define TEST_SKIP(why)                                                                             \
    do {                                                                                           \
        test_mark_skipped(why);                                                                    \
        return;                                                                                    \
    } while (0)

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            test_fail(__FILE__, __LINE__, "CHECK(%s) failed", #cond);                              \
    } while (0)

#define CHECK_EQ(a, b)                                                                             \
    do {                                                                                           \
        long long a_ = (long long)(a), b_ = (long long)(b);                                        \
        if (a_ != b_)                                                                              \
            test_fail(__FILE__, __LINE__, "%s == %s: %lld != %lld", #a, #b, a_, b_);               \
    } while (0)

#define CHECK_GE(a, b)                                                                             \
    do {                                                                                           \
        long long a_ = (long long)(a), b_ = (long long)(b);                                        \
        if (!(a_ >= b_))                                                                           \
            test_fail(__FILE__, __LINE__, "%s >= %s: %lld < %lld", #a, #b, a_, b_);                \
    } while (0)

#define CHECK_LT(a, b)                                                                             \
    do {                                                                                           \
        long long a_ = (long long)(a), b_ = (long long)(b);                                        \
        if (!(a_ < b_))                                                                            \
            test_fail(__FILE__, __LINE__, "%s < %s: %lld >= %lld", #a, #b, a_, b_);                \
    } while (0)

/* Run fn(arg) in a forked child; returns its wait status and what it wrote to stderr. */
struct child_result {
    int status;
    char err[4096];
};
void test_in_child(void (*fn)(void *), void *arg, struct child_result *out);

/* True under valgrind or TSan, where tests with 100 000 tasks are too slow to run and timing
 * is not kept (TSan defers signals, such as the stall detector's, to points of its own). */
bool test_slow_env(void);

/* A function whose frame a backtrace must show: never inlined, nor cloned (a clone's name,
 * "f.constprop.0", is not the one the test looks for). */
#if defined(__clang__)
#define KEEP_FRAME __attribute__((noinline))
#else
#define KEEP_FRAME __attribute__((noinline, noclone))
#endif

/* True under valgrind. */
bool test_under_valgrind(void);

/* Why a runtime of n cores cannot run here (fewer CPUs in the affinity mask; valgrind 3.19,
 * which stalls the other threads while one waits in io_uring_enter), or NULL if it can. */
const char *test_cannot_run_cores(unsigned n);

/* Why a core cannot wait for another thread of the process here (valgrind 3.19 on io_uring:
 * while the core waits in io_uring_enter the other threads barely run, so a pool job such as
 * getaddrinfo outlasts any deadline and a foreign thread's request is never sent), or NULL. */
const char *test_cannot_run_other_threads(void);

/* Skip the case unless a runtime of n cores can run here. */
#define TEST_NEED_CORES(n)                                                                         \
    do {                                                                                           \
        const char *why_ = test_cannot_run_cores(n);                                               \
        if (why_)                                                                                  \
            TEST_SKIP(why_);                                                                       \
    } while (0)

/* Debian's interpreter, whose python3-* packages the checkers import. */
#define TEST_PYTHON "/usr/bin/python3"

/* Run TEST_PYTHON script with the NULL-terminated arguments (at most 29) and wait for it:
 * its exit status (127: it could not be run). A script NULL fails the case. */
int test_python(const char *script, ...);

/* Open file descriptors of this process (entries of /proc/self/fd). */
int test_count_fds(void);

/* A TCP listener on 127.0.0.1 at a free port; its "127.0.0.1:PORT" goes to addr. In a task. */
int test_listen_loopback(char *addr, size_t cap);

#endif
