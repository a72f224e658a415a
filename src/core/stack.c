/* stack.c - task stacks: mmap'd, guarded, pooled per core, and the handler that turns a hit
 * on a guard page into an abort naming the task.
 *
 * The guard is installed with madvise(MADV_GUARD_INSTALL) (Linux >= 6.13), which adds no VMA,
 * so adjacent stacks merge into one mapping and a million guarded stacks fit the default
 * vm.max_map_count; older kernels get an mprotect'd page (two VMAs per stack). A fresh stack
 * costs a few microseconds (mmap, guard, first-touch faults) against tens of nanoseconds for
 * a recycled one, so released stacks are kept LIFO (the most recently used is still in cache).
 * An idle core gives back half of those that sat unused through a trim period (crl__stack_trim,
 * driven by the scheduler every cfg.stack_trim_ns): a burst's stacks do not stay resident. */
#define _GNU_SOURCE
#include "core.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#endif

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define CRL_VALGRIND 1
#endif
#endif

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define CRL_ASAN_POISON 1
#endif

#if defined(__SANITIZE_THREAD__)
#include <sanitizer/tsan_interface.h>
#define CRL_TSAN 1
#endif

enum { MIN_STACK = 16 * 1024 };

static size_t page_size_cached;

size_t crl__page_size(void)
{
    if (!page_size_cached)
        page_size_cached = (size_t)sysconf(_SC_PAGESIZE);
    return page_size_cached;
}

/* ---- Guard pages ------------------------------------------------------------------------ */

enum guard_mode { GUARD_UNKNOWN, GUARD_MADVISE, GUARD_MPROTECT };
static _Atomic int guard_mode = GUARD_UNKNOWN;

/* True if the kernel refuses to read the page at p: write() from it into a pipe must fail
 * with EFAULT. Emulators such as qemu-user accept MADV_GUARD_INSTALL and ignore it. */
static bool page_is_guarded(const char *p)
{
    int fds[2];
    if (pipe(fds) != 0)
        return true; /* cannot tell: trust the madvise */
    bool guarded = write(fds[1], p, 1) < 0 && errno == EFAULT;
    close(fds[0]);
    close(fds[1]);
    return guarded;
}

static int guard_with_madvise(char *base)
{
    if (madvise(base, CRL__STACK_GUARD, MADV_GUARD_INSTALL) != 0)
        return errno == EINVAL ? -EINVAL : -errno;
    if (atomic_load_explicit(&guard_mode, memory_order_relaxed) == GUARD_UNKNOWN) {
        if (!page_is_guarded(base) || !page_is_guarded(base + CRL__STACK_GUARD - 1))
            return -EINVAL;
        atomic_store_explicit(&guard_mode, GUARD_MADVISE, memory_order_relaxed);
    }
    return 0;
}

static int install_guard(char *base)
{
    if (atomic_load_explicit(&guard_mode, memory_order_relaxed) != GUARD_MPROTECT) {
        int rc = guard_with_madvise(base);
        if (rc != -EINVAL)
            return rc;
        atomic_store_explicit(&guard_mode, GUARD_MPROTECT, memory_order_relaxed);
        crl__logf(CRL_LOG_DEBUG, "corral: MADV_GUARD_INSTALL unsupported, guarding with mprotect");
    }
    return mprotect(base, CRL__STACK_GUARD, PROT_NONE) == 0 ? 0 : -errno;
}

bool crl__stack_guard_adds_no_mapping(void)
{
    return atomic_load_explicit(&guard_mode, memory_order_relaxed) == GUARD_MADVISE;
}

/* ---- The pool --------------------------------------------------------------------------- */

static struct crl__stack_class *class_for(struct crl__stack_pool *p, size_t size, bool create)
{
    for (int i = 0; i < CRL__STACK_CLASSES; i++)
        if (p->cls[i].size == size)
            return &p->cls[i];
    if (create)
        for (int i = 0; i < CRL__STACK_CLASSES; i++)
            if (p->cls[i].size == 0) {
                p->cls[i].size = size;
                return &p->cls[i];
            }
    return NULL;
}

/* Fresh stacks come from slabs of SLAB_STACKS: one mmap instead of one a stack (2 us each
 * here). A stack released out of a slab is not unmapped alone: that would split the slab's
 * mapping, one VMA more per hole, and once vm.max_map_count is reached the unmap fails and
 * the stack leaks (tasks ending in any order make such holes). Its memory goes back at once
 * (MADV_DONTNEED); its addresses go back with the last stack of the slab. */
enum { SLAB_STACKS = 64 };

struct crl__slab {
    char *base;
    size_t bytes;
    unsigned held; /* stacks not given back yet, those still to carve included */
};

/* Address space for stacks: reserved lazily (NORESERVE), NULL when there is none. */
static char *map_stack_memory(size_t bytes)
{
    void *m = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    return m == MAP_FAILED ? NULL : m;
}

static void slab_put(struct crl__slab *slab, unsigned n)
{
    slab->held -= n;
    if (slab->held == 0) {
        munmap(slab->base, slab->bytes);
        free(slab);
    }
}

static int slab_new(struct crl__stack_class *cls)
{
    struct crl__slab *slab = malloc(sizeof *slab);
    if (!slab)
        return -ENOMEM;
    size_t bytes = cls->size * SLAB_STACKS;
    char *base = map_stack_memory(bytes);
    if (!base) {
        free(slab);
        return -ENOMEM;
    }
    *slab = (struct crl__slab){.base = base, .bytes = bytes, .held = SLAB_STACKS};
    cls->slab = slab;
    cls->carve = base;
    cls->slab_left = SLAB_STACKS;
    return 0;
}

/* Memory and addresses of a stack back to the kernel (see above for one from a slab). */
static void stack_give_back(const struct crl__stack *s)
{
    if (!s->slab) {
        munmap(s->base, s->size);
        return;
    }
    if (s->slab->held > 1) /* the last one's slab goes whole; the guard stays installed */
        madvise(s->base + CRL__STACK_GUARD, s->size - CRL__STACK_GUARD, MADV_DONTNEED);
    slab_put(s->slab, 1);
}

/* A stack of the class's size (carved from its slab) or, with cls NULL, of its own mapping. */
static int stack_new(struct crl__stack_pool *p, struct crl__stack_class *cls, size_t size,
                     struct crl__stack *out)
{
    *out = (struct crl__stack){.size = size, .colour = (p->serial++ % 64) * 64};
    if (cls) {
        if (!cls->slab_left) {
            int rc = slab_new(cls);
            if (rc)
                return rc;
        }
        out->base = cls->carve;
        out->slab = cls->slab;
        cls->carve += size;
        if (--cls->slab_left == 0)
            cls->slab = NULL; /* all carved: its stacks hold it now */
    } else {
        out->base = map_stack_memory(size);
        if (!out->base)
            return -ENOMEM;
    }
    int rc = install_guard(out->base);
    if (rc) {
        stack_give_back(out);
        return rc;
    }
#ifdef CRL_VALGRIND
    out->vg_id = VALGRIND_STACK_REGISTER(out->base + CRL__STACK_GUARD, out->base + size);
#endif
    return 0;
}

static void stack_release(const struct crl__stack *s)
{
#ifdef CRL_VALGRIND
    VALGRIND_STACK_DEREGISTER(s->vg_id);
#endif
    stack_give_back(s);
}

/* The task record sits at the top of its stack, 64-byte aligned. */
static struct crl_task *record_of(const struct crl__stack *st)
{
    uintptr_t top = (uintptr_t)(st->base + st->size);
    return (struct crl_task *)((top - sizeof(struct crl_task)) & ~(uintptr_t)63);
}

size_t crl__stack_region_size(size_t usable)
{
    size_t page = crl__page_size();
    if (usable < MIN_STACK)
        usable = MIN_STACK;
    return CRL__STACK_GUARD + ((usable + page - 1) & ~(page - 1));
}

struct crl_task *crl__task_alloc(struct crl__core *c, size_t usable, int *err)
{
    size_t size = crl__stack_region_size(usable);
    if (c->stack_fault && c->stack_fault(c)) {
        *err = -ENOMEM;
        return NULL;
    }
    struct crl__stack_class *cls = class_for(&c->stacks, size, true);
    struct crl_task *t = cls ? cls->free : NULL;
    if (t) {
        cls->free = t->run_next;
        if (--cls->nfree < cls->low)
            cls->low = cls->nfree;
    } else {
        struct crl__stack st;
        *err = stack_new(&c->stacks, cls, size, &st);
        if (*err)
            return NULL;
        t = record_of(&st);
        t->stack = st;
#ifdef CRL_TSAN
        t->tsan_fiber = __tsan_create_fiber(0); /* one per stack, kept across reuse */
#endif
    }
#ifdef CRL_ASAN_POISON
    /* Frames of a task that ended by switching away were never unwound: clear their marks. */
    ASAN_UNPOISON_MEMORY_REGION(t->stack.base + CRL__STACK_GUARD, t->stack.size - CRL__STACK_GUARD);
#endif
    return t;
}

void crl__task_free(struct crl__core *c, struct crl_task *t)
{
    if (crl__task_free_fast(c, t))
        return;
    struct crl__stack_class *cls = class_for(&c->stacks, t->stack.size, false);
    if (cls && cls->nfree < CRL__MAX_CACHED_STACKS) {
        t->run_next = cls->free;
        cls->free = t;
        cls->nfree++;
    } else {
        t->run_next = c->stacks.released;
        c->stacks.released = t;
    }
}

static void release_list(struct crl_task *t)
{
    while (t) {
        struct crl_task *next = t->run_next;
        struct crl__stack st = t->stack; /* t lives in the memory it describes */
#ifdef CRL_TSAN
        __tsan_destroy_fiber(t->tsan_fiber);
#endif
        stack_release(&st);
        t = next;
    }
}

/* Half of what sat unused through a whole period goes, so a pool shrinks towards its steady
 * need geometrically while a recurring burst keeps most of its stacks. The LIFO's tail holds
 * the coldest stacks; the walk to it runs once a period, on an idle core. */
void crl__stack_trim(struct crl__core *c)
{
    for (int i = 0; i < CRL__STACK_CLASSES; i++) {
        struct crl__stack_class *cls = &c->stacks.cls[i];
        size_t surplus = cls->low / 2;
        if (surplus) {
            struct crl_task **link = &cls->free;
            for (size_t kept = 0; kept < cls->nfree - surplus; kept++)
                link = &(*link)->run_next;
            struct crl_task *cut = *link, *tail = cut;
            *link = NULL;
            while (tail->run_next)
                tail = tail->run_next;
            tail->run_next = c->stacks.released;
            c->stacks.released = cut;
            cls->nfree -= surplus;
        }
        cls->low = cls->nfree;
    }
}

/* All of t's stack below the page of its record (whose link keeps t in the cache). */
static void stack_settle(struct crl_task *t)
{
    char *low = t->stack.base + CRL__STACK_GUARD;
    char *top = (char *)((uintptr_t)t & ~(uintptr_t)(crl__page_size() - 1));
    if (top > low)
        madvise(low, (size_t)(top - low), MADV_DONTNEED);
}

/* A class whose cache may hold unsettled stacks below the hot ones: it changed since the
 * last look (a change that leaves both its top and its length as they were waits for the
 * next one). */
static bool settle_pending(const struct crl__stack_class *cls)
{
    return cls->nfree > CRL__HOT_STACKS &&
           (cls->free != cls->seen_free || cls->nfree != cls->seen_nfree);
}

bool crl__stack_settle_pending(const struct crl__core *c)
{
    for (int i = 0; i < CRL__STACK_CLASSES; i++)
        if (settle_pending(&c->stacks.cls[i]))
            return true;
    return false;
}

/* The cache is a LIFO, so its settled stacks are always a tail of it: below the hot ones,
 * every stack up to the first settled one was cached (or was hot) since the last look. */
void crl__stack_settle(struct crl__core *c)
{
    for (int i = 0; i < CRL__STACK_CLASSES; i++) {
        struct crl__stack_class *cls = &c->stacks.cls[i];
        if (!settle_pending(cls))
            continue;
        cls->seen_free = cls->free;
        cls->seen_nfree = cls->nfree;
        struct crl_task *t = cls->free;
        for (size_t k = 0; t && k < CRL__HOT_STACKS; k++)
            t = t->run_next;
        for (; t && t->state != CRL__SETTLED; t = t->run_next) {
            stack_settle(t);
            t->state = CRL__SETTLED;
        }
    }
}

void crl__stack_reap(struct crl__core *c)
{
    struct crl_task *t = c->stacks.released;
    c->stacks.released = NULL;
    release_list(t);
}

void crl__stack_pool_fini(struct crl__core *c)
{
    crl__stack_reap(c);
    for (int i = 0; i < CRL__STACK_CLASSES; i++) {
        struct crl__stack_class *cls = &c->stacks.cls[i];
        release_list(cls->free);
        if (cls->slab_left)
            slab_put(cls->slab, (unsigned)cls->slab_left);
        cls->free = NULL;
        cls->nfree = 0;
        cls->seen_free = NULL;
        cls->seen_nfree = 0;
        cls->slab = NULL;
        cls->carve = NULL;
        cls->slab_left = 0;
    }
}

/* ---- Stack overflow: SIGSEGV on an alternate stack -------------------------------------- */

static struct sigaction previous_segv;
static pthread_once_t segv_once = PTHREAD_ONCE_INIT;
static int segv_install_error;

static size_t append(char *buf, size_t at, size_t cap, const char *s)
{
    while (*s && at + 1 < cap)
        buf[at++] = *s++;
    return at;
}

static size_t append_num(char *buf, size_t at, size_t cap, size_t v)
{
    char digits[24];
    int n = 0;
    do
        digits[n++] = (char)('0' + v % 10);
    while ((v /= 10) && n < (int)sizeof digits);
    while (n && at + 1 < cap)
        buf[at++] = digits[--n];
    return at;
}

/* Async-signal-safe: formats by hand and writes straight to fd 2 (the log hook may not be
 * signal-safe, and the process is about to abort). */
static _Noreturn void report_overflow(const struct crl_task *t)
{
    char msg[256];
    size_t n = append(msg, 0, sizeof msg, "corral: stack overflow in task '");
    n = append(msg, n, sizeof msg, t->name);
    n = append(msg, n, sizeof msg, "' (stack of ");
    n = append_num(msg, n, sizeof msg, t->stack.size - CRL__STACK_GUARD);
    n = append(msg, n, sizeof msg, " bytes)\n");
    ssize_t unused = write(STDERR_FILENO, msg, n);
    (void)unused;
    abort();
}

static void on_segv(int sig, siginfo_t *si, void *uc)
{
    struct crl__core *c = crl__cur;
    if (c && c->cur && c->cur != &c->loop) {
        const struct crl__stack *s = &c->cur->stack;
        char *addr = si->si_addr;
        if (addr >= s->base && addr < s->base + CRL__STACK_GUARD)
            report_overflow(c->cur);
    }
    /* Not ours: hand it to whoever was there before, or die of it the default way. */
    if (previous_segv.sa_flags & SA_SIGINFO) {
        previous_segv.sa_sigaction(sig, si, uc);
    } else if (previous_segv.sa_handler != SIG_DFL && previous_segv.sa_handler != SIG_IGN) {
        previous_segv.sa_handler(sig);
    } else {
        signal(SIGSEGV, SIG_DFL); /* returning re-runs the access, which now kills */
    }
}

static void install_segv_once(void)
{
    struct sigaction sa = {0};
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGSEGV, &sa, &previous_segv) != 0)
        segv_install_error = -errno;
}

int crl__stack_overflow_handler_install(struct crl__core *c)
{
    size_t size = 64 * 1024;
    void *alt = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (alt == MAP_FAILED)
        return -ENOMEM;
    stack_t ss = {.ss_sp = alt, .ss_size = size, .ss_flags = 0}, old;
    if (sigaltstack(&ss, &old) != 0) {
        int rc = -errno;
        munmap(alt, size);
        return rc;
    }
    c->altstack = alt;
    c->altstack_size = size;
    c->prev_altstack = old.ss_sp;
    c->prev_altstack_size = old.ss_size;
    c->prev_altstack_flags = old.ss_flags & SS_DISABLE;
    pthread_once(&segv_once, install_segv_once);
    return segv_install_error;
}

void crl__stack_overflow_handler_remove(struct crl__core *c)
{
    if (!c->altstack)
        return;
    stack_t ss = {.ss_sp = c->prev_altstack,
                  .ss_size = c->prev_altstack_size,
                  .ss_flags = c->prev_altstack_flags};
    sigaltstack(&ss, NULL);
    munmap(c->altstack, c->altstack_size);
    c->altstack = NULL;
}
