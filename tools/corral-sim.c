/* corral-sim - run a scenario in the simulated backend over a range of seeds.
 *
 *   corral-sim --list                      the scenarios, one name a line
 *   corral-sim SCENARIO --seeds A-B        seeds A..B in turn; stops at the first failure
 *   corral-sim SCENARIO --seed N           one seed (a replay)
 *   ... --bug shield                       with a bug put back (shields ignored): the
 *                                          simulator's own test, that it finds one
 *
 * Each seed prints "seed N ok trace HASH" or "seed N FAIL trace HASH" (HASH: of the run's
 * every scheduling pick, operation and clock jump, the same for a seed on any machine);
 * a failure adds what broke, at which event of the trace, and the command that replays it.
 * Each seed runs in a child process, so that a crash or a deadlock report fails that seed
 * alone. Exit status: 0 when every seed passed, 1 on a failure, 2 on a usage error. */
#define _GNU_SOURCE
#include "io/io.h"
#include "sim/scenario.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

static const struct sim_scenario *const scenarios[] = {&sim_scenario_scopes, &sim_scenario_http,
                                                       &sim_scenario_xcore4, &sim_scenario_xcore8};
enum { NSCENARIOS = sizeof scenarios / sizeof scenarios[0] };

int sim_fail(struct sim_verdict *v, const char *fmt, ...)
{
    if (v->failed++ == 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(v->what, sizeof v->what, fmt, ap);
        va_end(ap);
    }
    return -EPROTO;
}

/* A seed's child is stopped after this much real time (a seed takes milliseconds). */
enum { SEED_REAL_S = 60 };

/* What a seed's child hands back (in memory shared with the parent). */
struct outcome {
    int done; /* the child got to the end of its run */
    int rc;
    uint64_t hash, events;
    int leaks;        /* LeakSanitizer found some (where it is built in) */
    char faults[128]; /* the swarm's CORRAL_FAULTS for this seed, "" for none */
    struct sim_verdict v;
};

static bool faults_on;

bool sim_faults_on(void) { return faults_on; }

/* The swarm's draw for a seed: no faults one time in four, else a rate and a non-empty set
 * of the faults a connection can meet (ENOMEM is left out: it would refuse the scenario's
 * own spawns). Deterministic in the seed, so a replay draws the same. */
static void swarm_draw(uint64_t seed, char *spec, size_t size)
{
    static const char *const kinds[] = {"ECONNRESET", "short", "delay", "EINTR", "EAGAIN"};
    static const char *const rates[] = {"0.002", "0.01", "0.03", "0.08"};
    uint64_t rng = seed ^ 0x5a4a7a11ULL;
    spec[0] = '\0';
    if (sim_below(&rng, 4) == 0)
        return;
    unsigned set = 0;
    while (set == 0)
        set = sim_below(&rng, 1u << 5);
    int n =
        snprintf(spec, size, "seed=%" PRIu64 ",rate=%s,errors=", seed, rates[sim_below(&rng, 4)]);
    const char *sep = "";
    for (unsigned i = 0; i < 5; i++)
        if (set >> i & 1) {
            n += snprintf(spec + n, size - (size_t)n, "%s%s", sep, kinds[i]);
            sep = ":";
        }
}

/* LeakSanitizer's check, where it is linked in (the ASan build); 0 elsewhere. */
int __lsan_do_recoverable_leak_check(void) __attribute__((weak));

struct seed_run {
    const struct sim_scenario *sc;
    uint64_t seed;
    struct outcome *out;
};

static int root_task(void *arg)
{
    struct seed_run *r = arg;
    return r->sc->run(r->seed, &r->out->v);
}

static void run_child(const struct sim_scenario *sc, uint64_t seed, struct outcome *out)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%" PRIu64, seed);
    setenv("CORRAL_SEED", buf, 1);
    if (sc->swarm)
        swarm_draw(seed, out->faults, sizeof out->faults);
    faults_on = out->faults[0] != '\0';
    crl__faults_override(faults_on ? out->faults : "");
    struct crl_config cfg = {
        .backend = CRL_BACKEND_SIM, .log_level = CRL_LOG_ERROR, .cores = sc->cores};
    struct seed_run r = {sc, seed, out};
    out->rc = crl_run(&cfg, root_task, &r);
    uint64_t s;
    crl__sim_last_trace(&s, &out->hash, &out->events);
    if (__lsan_do_recoverable_leak_check)
        out->leaks = __lsan_do_recoverable_leak_check();
    out->done = 1;
}

/* 0 ok, 1 failed. */
static int run_seed(const struct sim_scenario *sc, uint64_t seed, struct outcome *out)
{
    memset(out, 0, sizeof *out);
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) {
        perror("corral-sim: fork");
        exit(2);
    }
    if (pid == 0) {
        alarm(SEED_REAL_S); /* a livelock: the virtual clock stands still while a task spins */
        run_child(sc, seed, out);
        _exit(0);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    bool ok = out->done && out->rc == 0 && out->v.failed == 0 && !out->leaks;
    printf("seed %" PRIu64 " %s trace %016" PRIx64 "\n", seed, ok ? "ok" : "FAIL", out->hash);
    if (ok)
        return 0;
    if (!out->done && WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM)
        printf("  the run took more than %d s of real time: a livelock (a task that never gives "
               "up its turn?)\n",
               SEED_REAL_S);
    else if (!out->done)
        printf("  the run died (%s %d) before its end\n", WIFSIGNALED(status) ? "signal" : "exit",
               WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
    else if (out->leaks)
        printf("  memory leaked (LeakSanitizer's report above)\n");
    else if (out->v.failed)
        printf("  %s (%d invariant%s broken), the run ending at event %" PRIu64 "\n", out->v.what,
               out->v.failed, out->v.failed == 1 ? "" : "s", out->events);
    else
        printf("  crl_run returned %d at event %" PRIu64 "\n", out->rc, out->events);
    if (out->faults[0])
        printf("  faults drawn: CORRAL_FAULTS=%s\n", out->faults);
    printf("  replay: corral-sim %s --seed %" PRIu64 "%s\n", sc->name, seed,
           crl__bug_shield_ignored ? " --bug shield" : "");
    return 1;
}

static int usage(void)
{
    fprintf(stderr, "usage: corral-sim --list\n"
                    "       corral-sim SCENARIO --seeds A-B [--bug shield]\n"
                    "       corral-sim SCENARIO --seed N [--bug shield]\n");
    return 2;
}

static bool parse_u64(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end)
        return false;
    *out = v;
    return true;
}

static bool parse_range(const char *s, uint64_t *lo, uint64_t *hi)
{
    const char *dash = strchr(s, '-');
    if (!dash)
        return parse_u64(s, lo) && (*hi = *lo, true);
    char first[32];
    size_t n = (size_t)(dash - s);
    if (n == 0 || n >= sizeof first)
        return false;
    memcpy(first, s, n);
    first[n] = '\0';
    return parse_u64(first, lo) && parse_u64(dash + 1, hi) && *lo <= *hi;
}

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "--list") == 0) {
        for (int i = 0; i < NSCENARIOS; i++)
            printf("%s\n", scenarios[i]->name);
        return 0;
    }
    if (argc == 6 && strcmp(argv[4], "--bug") == 0 && strcmp(argv[5], "shield") == 0)
        crl__bug_shield_ignored = true;
    else if (argc != 4)
        return usage();
    const struct sim_scenario *sc = NULL;
    for (int i = 0; i < NSCENARIOS; i++)
        if (strcmp(argv[1], scenarios[i]->name) == 0)
            sc = scenarios[i];
    if (!sc) {
        fprintf(stderr, "corral-sim: no scenario %s (corral-sim --list)\n", argv[1]);
        return 2;
    }
    uint64_t lo, hi;
    bool range = strcmp(argv[2], "--seeds") == 0;
    if ((!range && strcmp(argv[2], "--seed") != 0) ||
        !(range ? parse_range(argv[3], &lo, &hi) : parse_u64(argv[3], &lo)))
        return usage();
    if (!range)
        hi = lo;
    struct outcome *out =
        mmap(NULL, sizeof *out, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (out == MAP_FAILED) {
        perror("corral-sim: mmap");
        return 2;
    }
    for (uint64_t seed = lo;; seed++) {
        if (run_seed(sc, seed, out))
            return 1;
        if (seed == hi)
            break;
    }
    return 0;
}
