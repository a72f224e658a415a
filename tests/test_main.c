/* test_main.c - the harness behind test.h. */
#define _GNU_SOURCE
#include "test.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <sched.h>
#include <stdarg.h>
#include <string.h>
#include <sys/wait.h>
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
};

static struct test_case cases[256];
static int ncases;
static const char *current;
static bool skipped;

void test_register(const char *name, void (*fn)(void), bool in_runtime)
{
    if (ncases == (int)(sizeof cases / sizeof cases[0])) {
        fprintf(stderr, "too many test cases\n");
        exit(1);
    }
    cases[ncases++] = (struct test_case){name, fn, in_runtime};
}

void test_fail(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "FAIL %s (%s:%d): ", current ? current : "?", file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
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

static bool run_case(const struct test_case *tc)
{
    current = tc->name;
    skipped = false;
    if (tc->in_runtime) {
        int rc = crl_run(&(struct crl_config){.cores = 1}, run_in_task, (void *)tc->fn);
        if (rc != 0) {
            fprintf(stderr, "FAIL %s: crl_run returned %d (%s)\n", tc->name, rc, strerror(-rc));
            return false;
        }
    } else {
        tc->fn();
    }
    if (!skipped)
        printf("ok %s\n", tc->name);
    fflush(stdout);
    return true;
}

int main(int argc, char **argv)
{
    int passed = 0, failed = 0, nskipped = 0;
    for (int i = 0; i < ncases; i++) {
        if (argc > 1 && strcmp(argv[1], cases[i].name) != 0)
            continue;
        if (!run_case(&cases[i]))
            failed++;
        else if (skipped)
            nskipped++;
        else
            passed++;
    }
    printf("%d passed, %d failed, %d skipped\n", passed, failed, nskipped);
    if (failed)
        return 1;
    return passed == 0 && nskipped > 0 ? 77 : 0;
}
