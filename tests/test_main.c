/* test_main.c - the harness behind test.h. */
#define _GNU_SOURCE
#include "test.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <sched.h>
#include <stdarg.h>
#include <string.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define HAVE_VALGRIND_H 1
#endif
#endif

struct test_case {
    const char *name;
    void (*fn)(void);
    bool in_runtime;
    double timeout_s; /* 0: the default */
};

static struct test_case cases[256];
static int ncases;
static const char *current;
static bool skipped;

void test_register(const char *name, void (*fn)(void), bool in_runtime, double timeout_s)
{
    if (ncases == (int)(sizeof cases / sizeof cases[0])) {
        fprintf(stderr, "too many test cases\n");
        exit(1);
    }
    cases[ncases++] = (struct test_case){name, fn, in_runtime, timeout_s};
}

void test_fail(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "FAIL %s (%s:%d): ", current ? current : "?", file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fflush(NULL);
    _exit(1); /* not exit(): a runtime left mid-run is no leak to report */
}

void test_mark_skipped(const char *why)
{
    skipped = true;
    printf("skip %s: %s\n", current, why);
}

int test_count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    int n = 0;
    if (!d)
        return -1;
    while (readdir(d))
        n++;
    closedir(d);
    return n;
}

int test_listen_loopback(char *addr, size_t cap)
{
    int lfd = crl_tcp_listen("127.0.0.1:0", NULL);
    if (lfd < 0)
        test_fail(__FILE__, __LINE__, "crl_tcp_listen: %d", lfd);
    struct sockaddr_storage ss;
    socklen_t len;
    if (crl_socket_local_addr(lfd, &ss, &len) != 0)
        test_fail(__FILE__, __LINE__, "crl_socket_local_addr failed");
    snprintf(addr, cap, "127.0.0.1:%d", ntohs(((struct sockaddr_in *)&ss)->sin_port));
    return lfd;
}

bool test_under_valgrind(void)
{
#ifdef HAVE_VALGRIND_H
    return RUNNING_ON_VALGRIND;
#else
    return false;
#endif
}

int test_python(const char *script, ...)
{
    CHECK(script != NULL);
    const char *argv[32] = {TEST_PYTHON, script};
    int argc = 2;
    va_list ap;
    va_start(ap, script);
    for (const char *a; argc < 31 && (a = va_arg(ap, const char *));)
        argv[argc++] = a;
    va_end(ap);
    argv[argc] = NULL;
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        execv(TEST_PYTHON, (char *const *)argv);
        _exit(127);
    }
    int status;
    CHECK_EQ(waitpid(pid, &status, 0), pid);
    CHECK(WIFEXITED(status));
    return WEXITSTATUS(status);
}

const char *test_cannot_run_cores(unsigned n)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) != 0 || CPU_COUNT(&set) < (int)n)
        return "too few CPUs in the affinity mask";
    const char *backend = getenv("CORRAL_BACKEND");
    if (n > 1 && test_under_valgrind() && !(backend && strcmp(backend, "epoll") == 0))
        return "valgrind 3.19 stalls the other threads while one waits in io_uring_enter";
    return NULL;
}

const char *test_cannot_run_other_threads(void)
{
    const char *backend = getenv("CORRAL_BACKEND");
    if (test_under_valgrind() && !(backend && strcmp(backend, "epoll") == 0))
        return "valgrind 3.19 barely runs other threads (the pool, a foreign caller) while the "
               "core "
               "waits in io_uring_enter";
    return NULL;
}

bool test_slow_env(void)
{
#ifdef HAVE_VALGRIND_H
    if (RUNNING_ON_VALGRIND)
        return true;
#endif
#if defined(__SANITIZE_THREAD__)
    return true;
#else
    return false;
#endif
}

void test_in_child(void (*fn)(void *), void *arg, struct child_result *out)
{
    int pipefd[2];
    memset(out, 0, sizeof *out);
    if (pipe(pipefd) != 0)
        test_fail(__FILE__, __LINE__, "pipe: %s", strerror(errno));
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        test_fail(__FILE__, __LINE__, "fork: %s", strerror(errno));
    if (pid == 0) {
        close(pipefd[0]);
        dup2(pipefd[1], STDERR_FILENO);
        fn(arg);
        _exit(0);
    }
    close(pipefd[1]);
    size_t n = 0;
    ssize_t r;
    while ((r = read(pipefd[0], out->err + n, sizeof out->err - 1 - n)) > 0)
        n += (size_t)r;
    close(pipefd[0]);
    waitpid(pid, &out->status, 0);
}

static int run_in_task(void *arg)
{
    ((void (*)(void))arg)();
    return 0;
}

enum outcome { PASSED, FAILED, SKIPPED };

/* Run one case in this process; a failed CHECK exits it with status 1. */
static enum outcome run_case(const struct test_case *tc)
{
    current = tc->name;
    skipped = false;
    if (test_before_each)
        test_before_each();
    if (tc->in_runtime) {
        int rc = crl_run(&(struct crl_config){.cores = 1}, run_in_task, (void *)tc->fn);
        if (rc != 0) {
            fprintf(stderr, "FAIL %s: crl_run returned %d (%s)\n", tc->name, rc, strerror(-rc));
            return FAILED;
        }
    } else {
        tc->fn();
    }
    if (!skipped)
        printf("ok %s\n", tc->name);
    fflush(stdout);
    return skipped ? SKIPPED : PASSED;
}

/* A case in a process of its own: its outcome as the exit status. */
static int child_main(const struct test_case *tc)
{
    setvbuf(stdout, NULL, _IOLBF, 0); /* what a crash cuts short is still printed */
    enum outcome o = run_case(tc);
    return o == FAILED ? 1 : o == SKIPPED ? 77 : 0;
}

/* The process group of the case running now, for the signal forwarder; 0 when none. */
static volatile sig_atomic_t child_pgid;

/* Killed from outside (meson's timeout, Ctrl-C): take the running case's group along. */
static void forward_signal(int sig)
{
    if (child_pgid > 0)
        kill(-child_pgid, SIGKILL);
    signal(sig, SIG_DFL);
    raise(sig);
}

static const int forwarded[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};

static void set_forwarding(void (*handler)(int))
{
    for (size_t i = 0; i < sizeof forwarded / sizeof forwarded[0]; i++)
        signal(forwarded[i], handler);
}

/* Wait up to timeout_s for child pid to end; true with its status, false on timeout. */
static bool wait_child(pid_t pid, double timeout_s, int *status)
{
    int64_t end = crl_now_ns() + (int64_t)(timeout_s * 1e9), left;
    /* valgrind 3.19 knows no pidfd_open (and warns for each call) */
    int pfd = test_under_valgrind() ? -1 : (int)syscall(SYS_pidfd_open, pid, 0);
    int64_t nap = 100 * CRL_USEC_NS; /* without pidfds: poll waitpid, backing off to 20 ms */
    while (waitpid(pid, status, WNOHANG) == 0) {
        if ((left = end - crl_now_ns()) <= 0) {
            if (pfd >= 0)
                close(pfd);
            return false;
        }
        if (pfd >= 0) {
            poll(&(struct pollfd){.fd = pfd, .events = POLLIN}, 1, (int)(left / CRL_MSEC_NS) + 1);
            continue;
        }
        int64_t ns = nap < left ? nap : left;
        nanosleep(&(struct timespec){ns / CRL_SEC_NS, ns % CRL_SEC_NS}, NULL);
        nap = nap * 2 < 20 * CRL_MSEC_NS ? nap * 2 : 20 * CRL_MSEC_NS;
    }
    if (pfd >= 0)
        close(pfd);
    return true;
}

/* The case's outcome from the child's wait status, reporting what went wrong by name. */
static enum outcome judge(const struct test_case *tc, int status)
{
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return PASSED;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 77)
        return SKIPPED;
    if (WIFSIGNALED(status))
        fprintf(stderr, "FAIL %s: killed by signal %d (%s)\n", tc->name, WTERMSIG(status),
                strsignal(WTERMSIG(status)));
    else if (WEXITSTATUS(status) != 1) /* 1: test_fail or crl_run already said why */
        fprintf(stderr, "FAIL %s: exit status %d\n", tc->name, WEXITSTATUS(status));
    return FAILED;
}

/* Run one case in a forked child of its own process group, killed after its timeout. The
 * parent has started no runtime and no thread, so the child may start both. */
static enum outcome run_case_forked(const struct test_case *tc, double timeout_s)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "FAIL %s: fork: %s\n", tc->name, strerror(errno));
        return FAILED;
    }
    if (pid == 0) {
        setpgid(0, 0);
        set_forwarding(SIG_DFL);
        /* A fresh image: ASan's shadow, inherited over a fork, splits into a mapping per
         * stack (100 000 tasks pass vm.max_map_count). valgrind would not follow the exec. */
        if (!test_under_valgrind()) {
            setenv("CORRAL_TEST_CHILD", "1", 1);
            execv("/proc/self/exe", (char *[]){(char *)"test", (char *)tc->name, NULL});
        }
        exit(child_main(tc));
    }
    setpgid(pid, pid); /* both sides, so that the kill below never misses */
    child_pgid = pid;
    int status;
    enum outcome o;
    if (wait_child(pid, timeout_s, &status)) {
        o = judge(tc, status);
    } else {
        kill(-pid, SIGKILL);
        waitpid(pid, &status, 0);
        fprintf(stderr, "TIMEOUT %s after %g s\n", tc->name, timeout_s);
        o = FAILED;
    }
    kill(-pid, SIGKILL); /* whatever the case forked and left behind */
    child_pgid = 0;
    return o;
}

static double env_timeout(void)
{
    const char *s = getenv("CORRAL_TEST_TIMEOUT");
    char *end;
    double t = s ? strtod(s, &end) : 0;
    return s && end != s && *end == '\0' && t > 0 && isfinite(t) ? t : TEST_DEFAULT_TIMEOUT_S;
}

int main(int argc, char **argv)
{
    if (getenv("CORRAL_TEST_CHILD") && argc > 1) /* run_case_forked's exec */
        for (int i = 0; i < ncases; i++)
            if (strcmp(argv[1], cases[i].name) == 0)
                return child_main(&cases[i]);
    const char *nf = getenv("CORRAL_TEST_NOFORK");
    bool nofork = nf && *nf && strcmp(nf, "0") != 0;
    double dflt = env_timeout();
    int passed = 0, failed = 0, nskipped = 0;
    if (!nofork)
        set_forwarding(forward_signal);
    for (int i = 0; i < ncases; i++) {
        if (argc > 1 && strcmp(argv[1], cases[i].name) != 0)
            continue;
        double t = cases[i].timeout_s > 0 ? cases[i].timeout_s : dflt;
        enum outcome o = nofork ? run_case(&cases[i]) : run_case_forked(&cases[i], t);
        failed += o == FAILED;
        nskipped += o == SKIPPED;
        passed += o == PASSED;
    }
    if (argc > 1 && passed + failed + nskipped == 0) {
        fprintf(stderr, "no case named %s\n", argv[1]);
        return 1;
    }
    printf("%d passed, %d failed, %d skipped\n", passed, failed, nskipped);
    if (failed)
        return 1;
    return passed == 0 && nskipped > 0 ? 77 : 0;
}
