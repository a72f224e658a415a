/* cases.c - the harness's own test file: cases that fail, crash and hang between cases that
 * pass, run by check.sh, which asserts that each bad case is named and the rest still run. */
#define _GNU_SOURCE
#include "test.h"

#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

TEST_TIMEOUT(passes_first, 60) { CHECK_EQ(crl_yield(), 0); }

TEST_TIMEOUT(fails_a_check, 60) { CHECK_EQ(1 + 1, 3); }

TEST_TIMEOUT(passes_after_a_failure, 60) { CHECK_EQ(crl_checkpoint(), 0); }

TEST_TIMEOUT(crashes, 60)
{
    setrlimit(RLIMIT_CORE, &(struct rlimit){0, 0}); /* no core file for a crash on purpose */
    abort();
}

TEST_TIMEOUT(passes_after_a_crash, 60) { CHECK_EQ(crl_sleep_ns(CRL_USEC_NS), 0); }

/* Under CORRAL_TEST_TIMEOUT=1: killed after 1 s, with the process it forked. */
TEST(hangs)
{
    fflush(NULL);
    if (fork() == 0) /* were it left behind, check.sh's read of the output would never end */
        for (;;)
            pause();
    crl_sleep_ns(3600 * CRL_SEC_NS);
}

TEST_TIMEOUT(passes_after_a_hang, 60) { CHECK(true); }

/* Longer than CORRAL_TEST_TIMEOUT=1, within its own timeout. */
TEST_TIMEOUT(outlives_the_default_with_its_own_timeout, 60)
{
    CHECK_EQ(crl_sleep_ns(1500 * CRL_MSEC_NS), 0);
}

TEST_TIMEOUT(skips, 60) { TEST_SKIP("on purpose"); }
