/* io_uring refused (here by a seccomp filter, as a sandbox would) falls back to epoll with
 * exactly one log line per process, however many runtimes start. */
#define _GNU_SOURCE
#include "../test.h"

#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

/* Fail io_uring_setup with EPERM, allow everything else. */
static int refuse_io_uring(void)
{
    struct sock_filter code[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA)),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {.len = sizeof code / sizeof code[0], .filter = code};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        return -errno;
    return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) == 0 ? 0 : -errno;
}

static int backend_is_epoll(void *arg)
{
    (void)arg;
    if (strcmp(crl_io_backend(), "epoll") != 0)
        return -EPROTO;
    return crl_sleep_ns(CRL_MSEC_NS); /* and it works */
}

static void run_refused(void *arg)
{
    (void)arg;
    if (refuse_io_uring() != 0)
        _exit(77);
    struct crl_config cfg = {.backend = CRL_BACKEND_URING};
    int a = crl_run(&cfg, backend_is_epoll, NULL);
    int b = crl_run(NULL, backend_is_epoll, NULL);
    _exit(a == 0 && b == 0 ? 0 : 1);
}

static int count(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p++)
        n++;
    return n;
}

/* Two runtimes with io_uring refused: both run on epoll, one log line in all. */
TEST_PLAIN(refused_io_uring_falls_back_to_epoll_once)
{
    struct child_result r;
    test_in_child(run_refused, NULL, &r);
    CHECK(WIFEXITED(r.status));
    if (WEXITSTATUS(r.status) == 77)
        TEST_SKIP("seccomp filters not permitted here");
    CHECK_EQ(WEXITSTATUS(r.status), 0);
    CHECK_EQ(count(r.err, "corral: io_uring unavailable (Operation not permitted), using epoll"),
             1);
    CHECK_EQ(count(r.err, "\n"), 1);
}
