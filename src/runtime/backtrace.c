/* backtrace.c - raw backtraces (unwound by CFI, or read from a parked task's frame pointers)
 * and their symbols (libdw when built with it, else dladdr).
 *
 * Capture and symbolization are apart, because the stall detector captures in a signal
 * handler, where neither a lock nor malloc is allowed. libgcc's _Unwind_Backtrace reads the
 * .eh_frame of each frame: it goes through code without frame pointers (Debian's libc) and
 * through the signal frame. libgcc (12, on glibc >= 2.35) finds an address's unwind table
 * with _dl_find_object, which takes no lock; crl__bt_warm runs it once anyway before a
 * handler may, since Seastar found first uses of unwinders that allocate. */
#define _GNU_SOURCE
#include "backtrace.h"

#include "../arch/ctx.h"

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <unwind.h>

#ifdef CRL_HAVE_LIBDW
#include <elfutils/libdwfl.h>
#endif

/* ---- Capture: the running thread, by CFI ------------------------------------------------- */

struct unwind_walk {
    uintptr_t *pcs;
    int max, n;
    int skip;         /* frames still to leave out: crl__bt_capture's own */
    bool past_signal; /* the frame a signal interrupted was seen */
};

static _Unwind_Reason_Code on_frame(struct _Unwind_Context *ctx, void *arg)
{
    struct unwind_walk *w = arg;
    int exact = 0; /* set for the frame a signal interrupted: its pc is not a return address */
    uintptr_t pc = (uintptr_t)_Unwind_GetIPInfo(ctx, &exact);
    if (exact && !w->past_signal) {
        /* What was collected so far is the handler's: start again from the interrupted code. */
        w->past_signal = true;
        w->n = 0;
        w->skip = 0;
    }
    if (w->skip > 0) {
        w->skip--;
        return _URC_NO_REASON;
    }
    if (pc == 0)
        return _URC_END_OF_STACK;
    w->pcs[w->n++] = pc;
    return w->n < w->max ? _URC_NO_REASON : _URC_END_OF_STACK;
}

__attribute__((noinline)) int crl__bt_capture(uintptr_t *pcs, int max)
{
    if (max <= 0)
        return 0;
    struct unwind_walk w = {.pcs = pcs, .max = max, .skip = 1};
    _Unwind_Backtrace(on_frame, &w);
    return w.n;
}

static atomic_bool warmed;

void crl__bt_warm(void)
{
    if (atomic_load_explicit(&warmed, memory_order_acquire))
        return;
    uintptr_t pcs[8];
    (void)crl__bt_capture(pcs, 8);
    atomic_store_explicit(&warmed, true, memory_order_release);
}

/* ---- Capture: a parked task, by its frame pointers --------------------------------------- */

/* The saved frame of crl__ctx_switch (see x86_64.S, aarch64.S): its size in words and where
 * the frame pointer and the resume address are. A frame record is {caller's fp, return
 * address} on both, at the frame pointer: 16-aligned on x86-64 (rsp is 16-aligned before a
 * call, the return address and rbp make 16), 8 is all AAPCS64 promises of where in its
 * 16-aligned frame a function puts its record. */
#if defined(__x86_64__)
enum { SAVED_WORDS = 8, SAVED_FP = 6, SAVED_PC = 7, FP_ALIGN = 16 };
#else
enum { SAVED_WORDS = 22, SAVED_FP = 10, SAVED_PC = 11, FP_ALIGN = 8 };
#endif

static bool frame_record_ok(uintptr_t fp, uintptr_t below, uintptr_t lo, uintptr_t hi)
{
    return fp > below && fp % FP_ALIGN == 0 && fp >= lo && fp <= hi - 2 * sizeof(uintptr_t);
}

/* Reads another context's stack: its words are not this code's objects (ASan would check
 * them against that stack's redzones, TSan against the other fiber's writes). */
__attribute__((no_sanitize("address", "thread"))) int crl__bt_from_saved(void *saved_sp,
                                                                         const void *stack_lo,
                                                                         const void *stack_hi,
                                                                         uintptr_t *pcs, int max)
{
    uintptr_t sp = (uintptr_t)saved_sp, lo = (uintptr_t)stack_lo, hi = (uintptr_t)stack_hi;
    if (max <= 0 || sp % sizeof(uintptr_t) || sp < lo || hi < SAVED_WORDS * sizeof(uintptr_t) ||
        sp > hi - SAVED_WORDS * sizeof(uintptr_t))
        return 0;
    const uintptr_t *saved = saved_sp;
    int n = 0;
    pcs[n++] = saved[SAVED_PC];
    /* A fresh context's other saved words are whatever the stack held before (crl__ctx_make). */
    if (saved[SAVED_PC] == (uintptr_t)crl__ctx_start)
        return n;
    uintptr_t fp = saved[SAVED_FP], below = sp;
    while (n < max && frame_record_ok(fp, below, lo, hi)) {
        const uintptr_t *record = (const uintptr_t *)fp;
        if (record[1] == 0)
            break;
        pcs[n++] = record[1];
        below = fp;
        fp = record[0];
    }
    return n;
}

/* ---- Symbols ------------------------------------------------------------------------------ */

static const char *base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

/* dladdr knows the dynamic symbols only: exported functions, not static ones. */
static void dl_symbolize(uintptr_t pc, char *out, size_t cap)
{
    Dl_info info;
    if (!dladdr((void *)pc, &info) || !info.dli_fname) {
        snprintf(out, cap, "0x%lx", (unsigned long)pc);
        return;
    }
    const char *modname = base_name(info.dli_fname);
    if (info.dli_sname && info.dli_saddr)
        snprintf(out, cap, "%s+0x%lx (%s)", info.dli_sname,
                 (unsigned long)(pc - (uintptr_t)info.dli_saddr), modname);
    else
        snprintf(out, cap, "0x%lx (%s+0x%lx)", (unsigned long)pc, modname,
                 (unsigned long)(pc - (uintptr_t)info.dli_fbase));
}

#ifdef CRL_HAVE_LIBDW
/* A source path as the debug info has it, without the build directory's leading "../". */
static const char *short_path(const char *path)
{
    while (strncmp(path, "../", 3) == 0 || strncmp(path, "./", 2) == 0)
        path += path[1] == '/' ? 2 : 3;
    return path;
}

/* One Dwfl for the process, made on first use and kept: reading a module's symbols and line
 * table is what costs, and it is done once. Modules loaded later (dlopen) are found by
 * reporting the mappings again when an address falls in none. Used by the symbolizer thread
 * only (below). */
static Dwfl *dw;

/* Separate debug info by build id under /usr/lib/debug only (Debian's -dbgsym packages):
 * dwfl_standard_find_debuginfo would ask a debuginfod server over the network when
 * DEBUGINFOD_URLS is set, and a stall report must not wait on that. */
static char *debuginfo_path;
static const Dwfl_Callbacks dw_callbacks = {
    .find_elf = dwfl_linux_proc_find_elf,
    .find_debuginfo = dwfl_build_id_find_debuginfo,
    .debuginfo_path = &debuginfo_path,
};

static int dw_report(Dwfl *d)
{
    dwfl_report_begin(d);
    int rc = dwfl_linux_proc_report(d, getpid());
    return dwfl_report_end(d, NULL, NULL) != 0 ? -1 : rc;
}

static Dwfl *dw_get(void)
{
    if (!dw) {
        dw = dwfl_begin(&dw_callbacks);
        if (dw && dw_report(dw) != 0) {
            dwfl_end(dw);
            dw = NULL;
        }
    }
    return dw;
}

static void dw_format(Dwfl_Module *mod, uintptr_t pc, char *out, size_t cap)
{
    GElf_Off off = 0;
    GElf_Sym sym;
    const char *name = dwfl_module_addrinfo(mod, pc, &off, &sym, NULL, NULL, NULL);
    const char *modname = dwfl_module_info(mod, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
    modname = modname ? base_name(modname) : "?";
    Dwfl_Line *line = dwfl_module_getsrc(mod, pc);
    int lineno = 0;
    const char *file = line ? dwfl_lineinfo(line, NULL, &lineno, NULL, NULL, NULL) : NULL;
    if (name && file && lineno > 0)
        snprintf(out, cap, "%s+0x%lx (%s:%d)", name, (unsigned long)off, short_path(file), lineno);
    else if (name)
        snprintf(out, cap, "%s+0x%lx (%s)", name, (unsigned long)off, modname);
    else
        snprintf(out, cap, "0x%lx (%s)", (unsigned long)pc, modname);
}

/* The module libdw holds for pc, if the dynamic loader agrees on where it starts. libdw
 * takes a module to span its file's mappings from first to last; under valgrind a library
 * loaded later can land in a gap of another's, which libdw would then name. */
static Dwfl_Module *dw_module(Dwfl *d, uintptr_t pc)
{
    Dwfl_Module *mod = dwfl_addrmodule(d, pc);
    Dwarf_Addr start = 0;
    Dl_info info;
    if (mod && dwfl_module_info(mod, NULL, &start, NULL, NULL, NULL, NULL, NULL) &&
        dladdr((void *)pc, &info) && info.dli_fbase && (uintptr_t)info.dli_fbase != start)
        return NULL;
    return mod;
}

static bool dw_symbolize(uintptr_t pc, char *out, size_t cap)
{
    Dwfl *d = dw_get();
    Dwfl_Module *mod = d ? dw_module(d, pc) : NULL;
    if (d && !mod && dw_report(d) == 0) /* loaded since the last report? */
        mod = dw_module(d, pc);
    if (mod)
        dw_format(mod, pc, out, cap);
    return mod != NULL;
}
#endif

static void symbolize_here(uintptr_t pc, char *out, size_t cap)
{
#ifdef CRL_HAVE_LIBDW
    if (dw_symbolize(pc, out, cap))
        return;
#endif
    dl_symbolize(pc, out, cap);
}

static void write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t w = write(fd, buf, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return;
        buf += w;
        len -= (size_t)w;
    }
}

static void write_here(int fd, const uintptr_t *pcs, int n, const char *indent)
{
    for (int i = 0; i < n; i++) {
        char sym[512], line[600];
        symbolize_here(i == 0 ? pcs[i] : pcs[i] - 1, sym, sizeof sym);
        int len = snprintf(line, sizeof line, "%s#%d %s\n", indent ? indent : "", i, sym);
        if (len > 0)
            write_all(fd, line, (size_t)len < sizeof line ? (size_t)len : sizeof line - 1);
    }
}

/* ---- The symbolizer thread ------------------------------------------------------------------ */

/* What to symbolize: one pc into out (fd < 0), or n frames written to fd. */
struct sym_job {
    uintptr_t pc;
    char *out;
    size_t cap;
    int fd;
    const uintptr_t *pcs;
    int n;
    const char *indent;
    bool done;
};

static void do_job(struct sym_job *j)
{
    if (j->fd < 0)
        symbolize_here(j->pc, j->out, j->cap);
    else
        write_here(j->fd, j->pcs, j->n, j->indent);
}

#ifndef CRL_HAVE_LIBDW
static void run_job(struct sym_job *j) { do_job(j); } /* dladdr needs little stack */
#else
/* libdw needs some 160 KB of stack to read a module's debug info: more than a task's stack
 * has (64 KiB by default). The lookups run on a thread of their own, started on first use,
 * one job at a time. jobs_lock guards the job and the thread's start; the Dwfl is the thread's. */
enum { SYMBOLIZER_STACK = 4 << 20 };

static pthread_mutex_t jobs_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t jobs_cond = PTHREAD_COND_INITIALIZER; /* always broadcast */
static struct sym_job *job;                                 /* the one posted, or NULL */
static bool symbolizer_started;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void *symbolizer_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&jobs_lock);
    for (;;) {
        while (!job || job->done)
            pthread_cond_wait(&jobs_cond, &jobs_lock);
        struct sym_job *j = job;
        pthread_mutex_unlock(&jobs_lock);
        do_job(j);
        pthread_mutex_lock(&jobs_lock);
        j->done = true;
        pthread_cond_broadcast(&jobs_cond);
    }
    return NULL;
}

/* With jobs_lock held. Signals stay blocked on it: none is meant for it. */
static bool start_symbolizer(void)
{
    pthread_attr_t attr;
    if (pthread_attr_init(&attr) != 0)
        return false;
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, SYMBOLIZER_STACK);
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_t th;
    symbolizer_started = pthread_create(&th, &attr, symbolizer_main, NULL) == 0;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    if (symbolizer_started)
        pthread_setname_np(th, "crl-symbolizer");
    return symbolizer_started;
}

/* A fork waits for the job in flight: the child then gets the Dwfl between two lookups,
 * and starts a symbolizer thread of its own (it has none: only the forking thread is copied). */
static void before_fork(void)
{
    pthread_mutex_lock(&jobs_lock);
    while (job)
        pthread_cond_wait(&jobs_cond, &jobs_lock);
}

static void after_fork_parent(void) { pthread_mutex_unlock(&jobs_lock); }

static void after_fork_child(void)
{
    pthread_mutex_init(&jobs_lock, NULL);
    pthread_cond_init(&jobs_cond, NULL); /* the parent's symbolizer waited on it */
    symbolizer_started = false;
}

static void register_atfork(void)
{
    pthread_atfork(before_fork, after_fork_parent, after_fork_child);
}

static void run_job(struct sym_job *j)
{
    pthread_once(&atfork_once, register_atfork);
    pthread_mutex_lock(&jobs_lock);
    if (!symbolizer_started && !start_symbolizer()) {
        do_job(j); /* no thread to be had: here, on whatever stack this is */
        pthread_mutex_unlock(&jobs_lock);
        return;
    }
    while (job)
        pthread_cond_wait(&jobs_cond, &jobs_lock);
    j->done = false;
    job = j;
    pthread_cond_broadcast(&jobs_cond);
    while (!j->done)
        pthread_cond_wait(&jobs_cond, &jobs_lock);
    job = NULL;
    pthread_cond_broadcast(&jobs_cond);
    pthread_mutex_unlock(&jobs_lock);
}
#endif

void crl__bt_symbolize(uintptr_t pc, char *out, size_t cap)
{
    if (cap == 0)
        return;
    struct sym_job j = {.pc = pc, .out = out, .cap = cap, .fd = -1};
    run_job(&j);
}

void crl__bt_write(int fd, const uintptr_t *pcs, int n, const char *indent)
{
    if (fd < 0 || n <= 0)
        return;
    struct sym_job j = {.fd = fd, .pcs = pcs, .n = n, .indent = indent};
    run_job(&j);
}
