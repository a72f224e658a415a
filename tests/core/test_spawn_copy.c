/* crl_spawn_copy: the task's argument copied onto its own stack. */
#include "../test.h"

#include <errno.h>
#include <stdalign.h>
#include <string.h>

struct order {
    int index;
    int value;
    char note[40];
};

struct orders {
    int seen[64];
};

static struct orders *orders_seen; /* the test's frame, set before the children run */

/* Yield first, so that the parent has changed or dropped the source before the copy is read. */
static int check_order(void *arg)
{
    CHECK_EQ(crl_yield(), 0);
    struct order *o = arg;
    CHECK_EQ(o->value, o->index * 3);
    char want[40];
    snprintf(want, sizeof want, "order %d", o->index);
    CHECK(strcmp(o->note, want) == 0);
    orders_seen->seen[o->index]++;
    return 0;
}

static int spawn_orders_from_one_variable(struct crl_scope *s, void *arg)
{
    (void)arg;
    struct order o;
    for (int i = 0; i < 64; i++) {
        o = (struct order){.index = i, .value = i * 3};
        snprintf(o.note, sizeof o.note, "order %d", i);
        CHECK_EQ(crl_spawn_copy(s, check_order, &o, sizeof o), 0);
    }
    memset(&o, 0xff, sizeof o); /* the children must not see this */
    return 0;
}

/* One variable in the body, refilled for each child and then scribbled over: every child
 * still reads the value it was spawned with. */
TEST(copy_is_independent_of_the_source)
{
    struct orders seen = {{0}};
    orders_seen = &seen;
    CHECK_EQ(crl_scope_run(spawn_orders_from_one_variable, NULL), 0);
    for (int i = 0; i < 64; i++)
        CHECK_EQ(seen.seen[i], 1);
}

static __attribute__((noinline)) void spawn_from_a_frame_that_returns(struct crl_scope *s, int i)
{
    struct order o = {.index = i, .value = i * 3};
    snprintf(o.note, sizeof o.note, "order %d", i);
    CHECK_EQ(crl_spawn_copy(s, check_order, &o, sizeof o), 0);
}

static __attribute__((noinline)) void overwrite_the_stack_below(void)
{
    volatile char junk[512];
    memset((char *)junk, 0xa5, sizeof junk);
}

static int spawn_from_dead_frames(struct crl_scope *s, void *arg)
{
    (void)arg;
    for (int i = 0; i < 8; i++)
        spawn_from_a_frame_that_returns(s, i);
    overwrite_the_stack_below();
    return 0;
}

/* The source lives in a frame that has returned (and been overwritten) by the time the
 * children run. */
TEST(copy_outlives_the_frame_of_its_source)
{
    struct orders seen = {{0}};
    orders_seen = &seen;
    CHECK_EQ(crl_scope_run(spawn_from_dead_frames, NULL), 0);
    for (int i = 0; i < 8; i++)
        CHECK_EQ(seen.seen[i], 1);
}

struct placed {
    size_t size;
    unsigned char fill;
};

/* The copy is aligned for any type, above the task's frames, on its own stack. */
static int check_placement(void *arg)
{
    /* The frame itself, not a local (ASan may keep locals on a stack of its own). */
    uintptr_t frame = (uintptr_t)__builtin_frame_address(0);
    const struct placed *p = arg;
    CHECK_EQ((uintptr_t)arg % alignof(max_align_t), 0);
    CHECK((uintptr_t)arg > frame);
    CHECK_LT((uintptr_t)arg - frame, 64 * 1024);
    const unsigned char *bytes = arg;
    for (size_t i = sizeof *p; i < p->size; i++)
        CHECK_EQ(bytes[i], p->fill);
    return 0;
}

static int spawn_sizes(struct crl_scope *s, void *arg)
{
    (void)arg;
    static const size_t sizes[] = {sizeof(struct placed), 17, 33, 100, 1000, 4097};
    unsigned char buf[4097];
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        struct placed p = {sizes[k], (unsigned char)(k + 1)};
        memset(buf, p.fill, sizeof buf);
        memcpy(buf, &p, sizeof p);
        CHECK_EQ(crl_spawn_copy(s, check_placement, buf, sizes[k]), 0);
    }
    return 0;
}

TEST(copy_is_aligned_and_on_the_task_stack) { CHECK_EQ(crl_scope_run(spawn_sizes, NULL), 0); }

static int check_last_byte(void *arg)
{
    const unsigned char *bytes = arg;
    CHECK_EQ(bytes[0], 1);
    CHECK_EQ(bytes[16 * 1024 - 1], 2);
    /* The task still has the rest of its stack: a few KiB of frames work. */
    volatile char frame[8192];
    memset((char *)frame, 3, sizeof frame);
    return frame[100] == 3 ? 0 : -EIO;
}

static int spawn_bounds(struct crl_scope *s, void *arg)
{
    static unsigned char big[16 * 1024 + 1];
    (void)arg;
    big[0] = 1;
    big[16 * 1024 - 1] = 2;
    /* The default stack is 64 KiB: a quarter of it is the most a copy may take. */
    CHECK_EQ(crl_spawn_copy(s, check_last_byte, big, 16 * 1024), 0);
    CHECK_EQ(crl_spawn_copy(s, check_last_byte, big, 16 * 1024 + 1), -EINVAL);
    CHECK_EQ(crl_spawn_copy(s, check_last_byte, NULL, 8), -EINVAL);
    return 0;
}

/* A copy beyond a quarter of the stack, or of NULL, is refused; the bound itself is not. */
TEST(copy_size_is_bounded_by_a_quarter_of_the_stack)
{
    CHECK_EQ(crl_scope_run(spawn_bounds, NULL), 0);
}

static int see_empty(void *arg)
{
    CHECK(arg != NULL);
    CHECK_EQ((uintptr_t)arg % alignof(max_align_t), 0);
    return 0;
}

static int spawn_empty(struct crl_scope *s, void *arg)
{
    (void)arg;
    CHECK_EQ(crl_spawn_copy(s, see_empty, NULL, 0), 0);
    return 0;
}

/* Zero bytes of nothing: the task gets a valid (empty) place all the same. */
TEST(copy_of_zero_bytes_gives_a_valid_pointer) { CHECK_EQ(crl_scope_run(spawn_empty, NULL), 0); }

struct bound_probe {
    int small, large;
};

static int noop(void *arg)
{
    (void)arg;
    return 0;
}

static int probe_bound_body(struct crl_scope *s, void *arg)
{
    static unsigned char big[32 * 1024 + 1];
    struct bound_probe *p = arg;
    p->small = crl_spawn_copy(s, noop, big, 32 * 1024);
    p->large = crl_spawn_copy(s, noop, big, 32 * 1024 + 1);
    return 0;
}

static int probe_bound(void *arg) { return crl_scope_run(probe_bound_body, arg); }

/* The bound follows the configured stack size: 128 KiB stacks take copies of 32 KiB. */
TEST_PLAIN(copy_bound_follows_the_configured_stack_size)
{
    struct crl_config cfg = {.cores = 1, .stack_size = 128 * 1024};
    struct bound_probe p = {1, 1};
    CHECK_EQ(crl_run(&cfg, probe_bound, &p), 0);
    CHECK_EQ(p.small, 0);
    CHECK_EQ(p.large, -EINVAL);
}

#if defined(__SANITIZE_THREAD__)
enum { MANY = 2000 }; /* TSan counts every live fiber against its limit of 8128 threads */
#else
enum { MANY = 10000 };
#endif

struct tally {
    long sum;
    int count;
};

struct item {
    struct tally *tally;
    int index;
    int square;
};

static int add_item(void *arg)
{
    struct item *it = arg;
    CHECK_EQ(it->square, it->index * it->index);
    if (it->index % 7 == 0)
        CHECK_EQ(crl_yield(), 0);
    it->tally->sum += it->index;
    it->tally->count++;
    return 0;
}

static int spawn_many(struct crl_scope *s, void *arg)
{
    struct tally *t = arg;
    for (int i = 0; i < MANY; i++) {
        struct item it = {t, i, i * i};
        CHECK_EQ(crl_spawn_copy(s, add_item, &it, sizeof it), 0);
    }
    return 0;
}

/* MANY children, each with its own copy, all live at once. */
TEST(many_children_each_get_their_own_copy)
{
    struct tally t = {0, 0};
    CHECK_EQ(crl_scope_run(spawn_many, &t), 0);
    CHECK_EQ(t.count, MANY);
    CHECK_EQ(t.sum, (long)MANY * (MANY - 1) / 2);
}
