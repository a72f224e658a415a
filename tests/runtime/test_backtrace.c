/* The internal backtraces: a signal capture on a blocked or spinning thread, a parked task's
 * stack from its saved context, and their symbols. The functions that must show up in a
 * backtrace are global (dladdr, the fallback without libdw, names exported ones only: the
 * test is linked with -rdynamic), never inlined or cloned, and do work after their call (no
 * tail call hides their frame). */
#define _GNU_SOURCE
#include "../test.h"

#include "core.h"
#include "runtime/backtrace.h"
#include "arch/ctx.h"

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum { MAX_FRAMES = 64 };

static char syms[MAX_FRAMES][512];

/* Symbolize a capture as crl__bt_write does; returns the index of the first frame whose
 * symbol contains name, or -1 (and prints the backtrace). */
static int find_frame(const uintptr_t *pcs, int n, const char *name)
{
    for (int i = 0; i < n; i++) {
        crl__bt_symbolize(i == 0 ? pcs[i] : pcs[i] - 1, syms[i], sizeof syms[i]);
        if (strstr(syms[i], name))
            return i;
    }
    fprintf(stderr, "no frame names %s in:\n", name);
    crl__bt_write(2, pcs, n, "  ");
    return -1;
}

/* File and line are asserted where both are there to find: libdw, and -g (a debug build). */
static bool expect_lines(void)
{
#if defined(CRL_HAVE_LIBDW) && defined(TEST_HAVE_DEBUG)
    return true;
#else
    return false;
#endif
}

/* ---- Direct capture ---------------------------------------------------------------------- */

volatile int sink;
int capture_here(uintptr_t *pcs, int max);

KEEP_FRAME int capture_here(uintptr_t *pcs, int max)
{
    int n = crl__bt_capture(pcs, max);
    sink = n;
    return n;
}

/* Outside a signal the first frame is crl__bt_capture's caller. */
TEST_PLAIN(capture_starts_at_its_caller)
{
    uintptr_t pcs[MAX_FRAMES];
    int n = capture_here(pcs, MAX_FRAMES);
    CHECK_GE(n, 2);
    CHECK_EQ(find_frame(pcs, n, "capture_here"), 0);
}

/* At most max frames are stored. */
TEST_PLAIN(capture_is_bounded_by_max)
{
    uintptr_t pcs[3] = {0, 0, 0};
    CHECK_EQ(capture_here(pcs, 2), 2);
    CHECK(pcs[2] == 0);
    CHECK_EQ(capture_here(pcs, 0), 0);
}

/* ---- Capture in a signal handler ----------------------------------------------------------- */

static uintptr_t sig_pcs[MAX_FRAMES];
static atomic_int sig_frames = -1;
static atomic_bool stop_thread;
static atomic_int thread_tid;

static void on_capture_signal(int sig)
{
    (void)sig;
    if (atomic_load(&sig_frames) >= 0)
        return; /* the second signal, which only ends the sleep, keeps the first capture */
    int saved = errno;
    atomic_store(&sig_frames, crl__bt_capture(sig_pcs, MAX_FRAMES));
    errno = saved;
}

void blocked_in_sleep(void);
void spinning_loop(void);

KEEP_FRAME void blocked_in_sleep(void)
{
    while (!atomic_load(&stop_thread))
        sleep(10); /* the signal ends it early (EINTR) */
    sink = 1;
}

KEEP_FRAME void spinning_loop(void)
{
    while (!atomic_load_explicit(&stop_thread, memory_order_relaxed))
        sink++;
    sink = 2;
}

void *run_thread(void *arg);

KEEP_FRAME void *run_thread(void *arg)
{
    atomic_store(&thread_tid, gettid());
    ((void (*)(void))arg)();
    return NULL;
}

/* The thread's state letter from /proc (R running, S sleeping), or 0. */
static char thread_state(int tid)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/self/task/%d/stat", tid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    size_t len = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[len] = 0;
    const char *paren = strrchr(buf, ')');
    return paren && paren[1] == ' ' ? paren[2] : 0;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {0, ms * 1000000L};
    nanosleep(&ts, NULL);
}

/* Start fn on a thread, wait until /proc shows it in `state`, signal it and wait for the
 * handler's capture; returns the number of frames (-1: none came within 10 s). */
static int capture_thread_in(void (*fn)(void), char state)
{
    crl__bt_warm();
    struct sigaction sa = {.sa_handler = on_capture_signal}, old;
    sigemptyset(&sa.sa_mask);
    CHECK_EQ(sigaction(SIGUSR2, &sa, &old), 0);
    atomic_store(&sig_frames, -1);
    atomic_store(&stop_thread, false);
    atomic_store(&thread_tid, 0);
    pthread_t th;
    CHECK_EQ(pthread_create(&th, NULL, run_thread, (void *)fn), 0);
    int tid;
    while ((tid = atomic_load(&thread_tid)) == 0)
        sleep_ms(1);
    for (int i = 0; i < 10000 && thread_state(tid) != state; i++)
        sleep_ms(1);
    sleep_ms(20); /* well inside the call by now */
    CHECK_EQ(pthread_kill(th, SIGUSR2), 0);
    for (int i = 0; i < 10000 && atomic_load(&sig_frames) < 0; i++)
        sleep_ms(1);
    atomic_store(&stop_thread, true);
    pthread_kill(th, SIGUSR2); /* out of its sleep, if the first signal came before it */
    pthread_join(th, NULL);
    sigaction(SIGUSR2, &old, NULL);
    return atomic_load(&sig_frames);
}

/* A thread blocked in sleep(): the unwind goes through libc (no frame pointers there) to the
 * function that called sleep, and does not show the handler's frames. */
TEST_PLAIN(signal_capture_through_libc_to_the_caller_of_sleep)
{
    if (test_under_valgrind())
        TEST_SKIP("valgrind's signal frames are its own");
    int n = capture_thread_in(blocked_in_sleep, 'S');
    CHECK_GE(n, 2);
    int at = find_frame(sig_pcs, n, "blocked_in_sleep");
    CHECK_GE(at, 1); /* below it: sleep, clock_nanosleep */
    for (int i = 0; i < at; i++)
        CHECK(strstr(syms[i], "on_capture_signal") == NULL);
    CHECK(find_frame(sig_pcs, n, "run_thread") > at);
    if (expect_lines())
        CHECK(strstr(syms[at], "test_backtrace.c:") != NULL);
}

/* A spinning thread: the first frame is the interrupted instruction, in the spinning
 * function. */
TEST_PLAIN(signal_capture_starts_at_the_interrupted_code)
{
    if (test_under_valgrind())
        TEST_SKIP("valgrind's signal frames are its own");
#if defined(__SANITIZE_THREAD__)
    TEST_SKIP("TSan delivers a signal at the next call it intercepts, never in a spin");
#endif
    int n = capture_thread_in(spinning_loop, 'R');
    CHECK_GE(n, 2);
    CHECK_EQ(find_frame(sig_pcs, n, "spinning_loop"), 0);
}

/* ---- A parked task's saved stack ----------------------------------------------------------- */

static struct crl_task *parked;
int parked_on_event(void *arg);
int parked_in_sleep(void *arg);

KEEP_FRAME int parked_on_event(void *arg)
{
    parked = crl__self();
    int rc = crl_event_wait(arg);
    sink = rc;
    return rc;
}

KEEP_FRAME int parked_in_sleep(void *arg)
{
    (void)arg;
    parked = crl__self();
    int rc = crl_sleep_ns(20 * 1000 * 1000);
    sink = rc;
    return rc;
}

/* The parked task's backtrace from its saved context, over its stack's range. */
static int backtrace_of_parked(uintptr_t *pcs)
{
    while (!parked || parked->state != CRL__PARKED)
        CHECK_EQ(crl_yield(), 0);
    struct crl_task *t = parked;
    return crl__bt_from_saved(t->sp, t->stack.base + CRL__STACK_GUARD, t, pcs, MAX_FRAMES);
}

static void check_parked_frames(const uintptr_t *pcs, int n, const char *fn)
{
    CHECK_GE(n, 2); /* fn (or what it called) and crl__ctx_start at least */
    int at = find_frame(pcs, n, fn);
    CHECK_GE(at, 0); /* 0 when LTO inlined the wait, crl__park and the switch into fn */
    if (expect_lines())
        CHECK(strstr(syms[at], "test_backtrace.c:") != NULL);
}

static int event_body(struct crl_scope *s, void *arg)
{
    struct crl_event ev;
    crl_event_init(&ev);
    parked = NULL;
    CHECK_EQ(crl_spawn(s, parked_on_event, &ev), 0);
    uintptr_t pcs[MAX_FRAMES];
    int n = backtrace_of_parked(pcs);
    check_parked_frames(pcs, n, "parked_on_event");
    crl_event_set(&ev);
    return 0;
}

/* A task parked on an event: its function is in its backtrace. */
TEST(saved_stack_of_a_task_parked_on_an_event) { CHECK_EQ(crl_scope_run(event_body, NULL), 0); }

static int sleep_body(struct crl_scope *s, void *arg)
{
    parked = NULL;
    CHECK_EQ(crl_spawn(s, parked_in_sleep, NULL), 0);
    uintptr_t pcs[MAX_FRAMES];
    int n = backtrace_of_parked(pcs);
    check_parked_frames(pcs, n, "parked_in_sleep");
    return 0;
}

/* A task parked in crl_sleep_ns (on a timer): its function is in its backtrace. */
TEST(saved_stack_of_a_sleeping_task) { CHECK_EQ(crl_scope_run(sleep_body, NULL), 0); }

/* ---- The walk's bounds, on a made-up stack --------------------------------------------------- */

#if defined(__x86_64__)
enum { SAVED_WORDS = 8, SAVED_FP = 6, SAVED_PC = 7 };
#else
enum { SAVED_WORDS = 22, SAVED_FP = 10, SAVED_PC = 11 };
#endif

static _Alignas(16) uintptr_t fake[64];

/* A saved frame at fake[0] whose chain is fake[32] -> fake[36] -> next (each {fp, pc}). */
static void make_chain(uintptr_t next)
{
    memset(fake, 0, sizeof fake);
    fake[SAVED_PC] = 0x1000;
    fake[SAVED_FP] = (uintptr_t)&fake[32];
    fake[32] = (uintptr_t)&fake[36];
    fake[33] = 0x2000;
    fake[36] = next;
    fake[37] = 0x3000;
}

/* A frame pointer that goes down the stack (a loop, or garbage) ends the walk. */
TEST_PLAIN(saved_walk_stops_where_the_chain_does_not_climb)
{
    uintptr_t pcs[8];
    make_chain((uintptr_t)&fake[34]);
    CHECK_EQ(crl__bt_from_saved(fake, fake, fake + 64, pcs, 8), 3);
    CHECK(pcs[0] == 0x1000 && pcs[1] == 0x2000 && pcs[2] == 0x3000);
}

/* The walk stays inside [lo, hi) and ends at a misaligned frame pointer. */
TEST_PLAIN(saved_walk_stays_inside_the_stack)
{
    uintptr_t pcs[8];
    make_chain((uintptr_t)&fake[48]);
    CHECK_EQ(crl__bt_from_saved(fake, fake, fake + 38, pcs, 8), 3); /* fake[48] is out */
    make_chain((uintptr_t)&fake[48] + 4);
    CHECK_EQ(crl__bt_from_saved(fake, fake, fake + 64, pcs, 8), 3);
    CHECK_EQ(crl__bt_from_saved(fake, fake, fake + 33, pcs, 8), 1);     /* fake[33], a pc, is out */
    CHECK_EQ(crl__bt_from_saved(fake, fake + 1, fake + 64, pcs, 8), 0); /* sp below lo */
    CHECK_EQ(crl__bt_from_saved(fake + 60, fake, fake + 64, pcs, 8), 0); /* frame past hi */
}

/* max bounds the walk. */
TEST_PLAIN(saved_walk_is_bounded_by_max)
{
    uintptr_t pcs[8];
    make_chain(0);
    CHECK_EQ(crl__bt_from_saved(fake, fake, fake + 64, pcs, 2), 2);
    CHECK_EQ(crl__bt_from_saved(fake, fake, fake + 64, pcs, 0), 0);
}

static void never_run(void *arg) { (void)arg; }

/* A context that never ran has only its resume address: its other words are stale. */
TEST_PLAIN(saved_walk_of_a_fresh_context_is_one_frame)
{
    uintptr_t pcs[8];
    for (int i = 0; i < 64; i++)
        fake[i] = (uintptr_t)&fake[40]; /* stale words that would look like frames */
    void *sp = crl__ctx_make(fake + 64, never_run, NULL);
    CHECK_EQ(crl__bt_from_saved(sp, fake, fake + 64, pcs, 8), 1);
    CHECK(pcs[0] == (uintptr_t)crl__ctx_start);
}

/* ---- Symbols --------------------------------------------------------------------------------- */

/* A function's address is named with its offset; an unknown one as a number. */
TEST_PLAIN(symbolize_names_function_and_offset)
{
    char out[512];
    crl__bt_symbolize((uintptr_t)capture_here + 1, out, sizeof out);
    CHECK(strstr(out, "capture_here+0x1") == out);
    crl__bt_symbolize(16, out, sizeof out);
    CHECK(strcmp(out, "0x10") == 0);
    crl__bt_symbolize(16, out, 3);
    CHECK(strcmp(out, "0x") == 0); /* truncated, terminated */
}

/* A module loaded after the first lookup is found (the mappings are reported again). */
TEST_PLAIN(symbolize_finds_a_module_loaded_later)
{
    char out[512];
    crl__bt_symbolize((uintptr_t)capture_here, out, sizeof out);
    void *lib = dlopen("libcrypt.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!lib)
        TEST_SKIP("no libcrypt.so.1 to load");
    void *fn = dlsym(lib, "crypt");
    CHECK(fn != NULL);
    crl__bt_symbolize((uintptr_t)fn, out, sizeof out);
    CHECK(strstr(out, "crypt") == out);
    dlclose(lib);
}

/* A forked child symbolizes too (the symbolizer thread, if any, stayed in the parent). */
TEST_PLAIN(symbolize_in_a_forked_child)
{
#if defined(__SANITIZE_THREAD__)
    TEST_SKIP("TSan starts no thread in the child of a multi-threaded fork");
#endif
    char out[512];
    crl__bt_symbolize((uintptr_t)capture_here, out, sizeof out);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        alarm(20);
        crl__bt_symbolize((uintptr_t)capture_here + 2, out, sizeof out);
        _exit(strstr(out, "capture_here+0x2") == out ? 0 : 1);
    }
    int status;
    CHECK_EQ(waitpid(pid, &status, 0), pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* One line a frame: the indent, #N and the symbol. */
TEST_PLAIN(write_puts_one_line_a_frame)
{
    uintptr_t pcs[MAX_FRAMES];
    int n = capture_here(pcs, MAX_FRAMES);
    int fds[2];
    CHECK_EQ(pipe(fds), 0);
    crl__bt_write(fds[1], pcs, n, "    ");
    close(fds[1]);
    static char text[65536];
    size_t len = 0;
    ssize_t r;
    while ((r = read(fds[0], text + len, sizeof text - 1 - len)) > 0)
        len += (size_t)r;
    close(fds[0]);
    text[len] = 0;
    CHECK(strncmp(text, "    #0 capture_here+0x", 22) == 0);
    int lines = 0;
    for (const char *p = text; (p = strchr(p, '\n')); p++)
        lines++;
    CHECK_EQ(lines, n);
    CHECK(strstr(text, "\n    #1 ") != NULL);
}
