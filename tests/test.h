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

/* True under valgrind or TSan, where tests with 100 000 tasks are too slow to run. */
bool test_slow_env(void);

/* True under valgrind. */
bool test_under_valgrind(void);

/* Why a runtime of n cores cannot run here (fewer CPUs in the affinity mask; valgrind 3.19,
 * which stalls the other threads while one waits in io_uring_enter), or NULL if it can. */
const char *test_cannot_run_cores(unsigned n);

/* Skip the case unless a runtime of n cores can run here. */
#define TEST_NEED_CORES(n)                                                                         \
    do {                                                                                           \
        const char *why_ = test_cannot_run_cores(n);                                               \
        if (why_)                                                                                  \
            TEST_SKIP(why_);                                                                       \
    } while (0)

/* Open file descriptors of this process (entries of /proc/self/fd). */
int test_count_fds(void);

/* A TCP listener on 127.0.0.1 at a free port; its "127.0.0.1:PORT" goes to addr. In a task. */
int test_listen_loopback(char *addr, size_t cap);

#endif
