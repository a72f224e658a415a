/* Misuse is explained: a scope used after it returned aborts naming the call, a refused
 * config says why, and a scope's errors after its first are logged, not lost. */
#include "../test.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif

static int nothing(void *arg)
{
    (void)arg;
    return 0;
}

static int keep_scope(struct crl_scope *s, void *arg)
{
    *(struct crl_scope **)arg = s;
    return 0;
}

enum misuse { SPAWN_INTO_DEAD, CANCEL_DEAD };

static void drop_line(void *ctx, enum crl_log_level level, const char *line)
{
    (void)ctx, (void)level, (void)line;
}

static int use_dead_scope(void *arg)
{
    struct crl_scope *dead = NULL;
    CHECK_EQ(crl_scope_run(keep_scope, &dead), 0);
    if (*(enum misuse *)arg == SPAWN_INTO_DEAD)
        crl_spawn(dead, nothing, NULL);
    else
        crl_scope_cancel(dead);
    return 0;
}

static void run_misuse(void *arg)
{
    /* A sink that drops every line: an abort's message must reach stderr all the same. */
    struct crl_config cfg = {.cores = 1, .log_fn = drop_line};
    crl_run(&cfg, use_dead_scope, arg);
}

static void check_aborts_naming(enum misuse what, const char *call)
{
    struct child_result r;
    test_in_child(run_misuse, &what, &r);
#ifdef UNDER_ASAN
    /* ASan sees the dead frame first (detect_stack_use_after_return): its report is the
     * explanation there. */
    if (strstr(r.err, "stack-use-after-return")) {
        CHECK(!WIFEXITED(r.status) || WEXITSTATUS(r.status) != 0);
        return;
    }
#endif
    if (!WIFSIGNALED(r.status) || WTERMSIG(r.status) != SIGABRT)
        test_fail(__FILE__, __LINE__, "status %#x, stderr: %s", r.status, r.err);
    if (!strstr(r.err, call) || !strstr(r.err, "not open"))
        test_fail(__FILE__, __LINE__, "no '%s ... not open' in: %s", call, r.err);
    size_t n = strlen(r.err);
    CHECK(n > 0 && r.err[n - 1] == '\n');
}

/* Spawning into a scope whose crl_scope_run returned aborts with a message naming the call
 * (not "outside the scope's core"), on stderr even with a sink of one's own. */
TEST_PLAIN(spawn_into_a_scope_that_returned_aborts_naming_the_call)
{
    check_aborts_naming(SPAWN_INTO_DEAD, "crl_spawn");
}

/* Cancelling a scope that returned aborts with a message too, instead of a crash. */
TEST_PLAIN(cancel_of_a_scope_that_returned_aborts_naming_the_call)
{
    check_aborts_naming(CANCEL_DEAD, "crl_scope_cancel");
}

struct lines {
    char text[8][256];
    int n;
    enum crl_log_level level[8];
};

static void keep_line(void *ctx, enum crl_log_level level, const char *line)
{
    struct lines *l = ctx;
    if (l->n < 8) {
        snprintf(l->text[l->n], sizeof l->text[0], "%s", line);
        l->level[l->n++] = level;
    }
}

static const char *find_line(const struct lines *l, const char *a, const char *b)
{
    for (int i = 0; i < l->n; i++)
        if (strstr(l->text[i], a) && (!b || strstr(l->text[i], b)))
            return l->text[i];
    return NULL;
}

/* crl_run refusing a config says why, through the config's sink. */
TEST_PLAIN(refused_config_says_why)
{
    struct lines l = {.n = 0};
    struct crl_config cfg = {.cores = 1, .stack_size = 1000, .log_fn = keep_line, .log_ctx = &l};
    CHECK_EQ(crl_run(&cfg, nothing, NULL), -EINVAL);
    CHECK(find_line(&l, "crl_run", "stack_size"));
    l.n = 0;
    cfg = (struct crl_config){.cores = 100000, .log_fn = keep_line, .log_ctx = &l};
    CHECK_EQ(crl_run(&cfg, nothing, NULL), -EINVAL);
    CHECK(find_line(&l, "crl_run", "cores"));
    l.n = 0;
    cfg = (struct crl_config){.cores = 1, .backend = 7, .log_fn = keep_line, .log_ctx = &l};
    CHECK_EQ(crl_run(&cfg, nothing, NULL), -EINVAL);
    CHECK(find_line(&l, "crl_run", "backend"));
}

static int fails_eio(void *arg)
{
    (void)arg;
    return -EIO;
}

static int cancelled_sibling(void *arg)
{
    (void)arg;
    return crl_sleep_ns(10 * CRL_SEC_NS); /* -ECANCELED, caused by the first error */
}

static int shielded_second(struct crl_scope *s, void *arg)
{
    (void)arg;
    crl_scope_shield(s, true);
    CHECK_EQ(crl_yield(), 0);
    CHECK_EQ(crl_yield(), 0);
    return -EPIPE;
}

static int run_second(void *arg)
{
    (void)arg;
    return crl_scope_run(shielded_second, NULL);
}

static int two_failures(struct crl_scope *s, void *arg)
{
    (void)arg;
    CHECK_EQ(crl_spawn(s, fails_eio, NULL), 0);
    CHECK_EQ(crl_spawn(s, run_second, NULL), 0);
    CHECK_EQ(crl_spawn(s, cancelled_sibling, NULL), 0);
    return 0;
}

static int main_two_failures(void *arg)
{
    (void)arg;
    CHECK_EQ(crl_scope_run(two_failures, NULL), -EIO);
    return 0;
}

/* A scope's second error is logged at warning level with its task's name; the siblings'
 * cancellations that the first error caused are not. */
TEST_PLAIN(second_error_of_a_scope_is_logged_with_the_task_name)
{
    struct lines l = {.n = 0};
    struct crl_config cfg = {.cores = 1, .log_fn = keep_line, .log_ctx = &l};
    CHECK_EQ(crl_run(&cfg, main_two_failures, NULL), 0);
    const char *line = find_line(&l, "run_second", "dropped");
    if (!line)
        test_fail(__FILE__, __LINE__, "no warning naming run_second among %d lines", l.n);
    CHECK(strstr(line, "-32") || strstr(line, "Broken pipe"));
    CHECK(!find_line(&l, "cancelled_sibling", NULL));
    for (int i = 0; i < l.n; i++)
        if (strstr(l.text[i], "dropped"))
            CHECK_EQ(l.level[i], CRL_LOG_WARN);
}
