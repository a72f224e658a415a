/* stall.h - the stall detector: a watchdog thread that sees a core's progress stand still.
 *
 * Each core counts its task switches and loop turns (core's stats, a plain store each). The
 * watchdog looks at every core a few times per threshold: a core that is not asleep in its
 * backend's wait and whose counts have not moved for a threshold is stalled, by a task or by
 * the loop itself. It then signals that core's thread, whose handler records the running
 * task's name and a backtrace of the stalled code (libgcc's CFI unwinder: it sees through
 * libc's frames, which have no frame pointers); the watchdog symbolizes it and logs the
 * report. While the stall lasts it reports again at 2x, 4x, ... the threshold, then one line
 * when it ends; at most STALL_REPORTS_PER_MIN reports a minute per core. It never stops the
 * task. Wall time, not CPU time: a core blocked in a syscall (sleep(1)) is found too. */
#ifndef CRL_RUNTIME_STALL_H
#define CRL_RUNTIME_STALL_H

#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

enum { CRL__STALL_FRAMES = 48 };

/* The sample a stalled core's thread takes in the signal handler, per core. */
struct crl__stall_core {
    pid_t tid;                 /* the executor thread, for tgkill */
    _Atomic uint32_t asked;    /* bumped by the watchdog to ask for a sample */
    _Atomic uint32_t answered; /* set to asked once the sample below is complete */
    const char *task;          /* the running task's name, or "(loop)" */
    uint32_t task_id;          /* its id in the trace (0: the loop) */
    int nframes;
    uintptr_t frames[CRL__STALL_FRAMES];
};

/* The watchdog's last report of a core, kept for the dump. */
struct crl__stall_report {
    bool made;        /* a report was made since the runtime started */
    bool ongoing;     /* its stall has not ended yet */
    int64_t at_ns;    /* when (crl__clock_mono_ns) */
    int64_t ms;       /* how long the core had been stalled then */
    const char *task; /* NULL: the core's thread did not take its sample */
    int nframes;
    uintptr_t frames[CRL__STALL_FRAMES];
};

struct crl__runtime;
struct crl__executor;
struct crl__watchdog;

/* The signal the watchdog samples a stalled core's thread with. */
#define CRL__STALL_SIGNAL (SIGRTMAX - 2)

/* In crl_run, before the cores start: the threshold from the config (resolved already). */
int crl__stall_init(struct crl__runtime *rt);
/* On each executor thread, as its core starts: record its tid, let the signal in. */
void crl__stall_core_start(struct crl__executor *ex);
/* Start the watchdog once every core is up; stop and join it before they stop. */
int crl__stall_start(struct crl__runtime *rt);
void crl__stall_stop(struct crl__runtime *rt);
/* The last report made on core id, into out: false if none (or no detector). Any thread. */
bool crl__stall_last(struct crl__runtime *rt, unsigned id, struct crl__stall_report *out);
/* Free what crl__stall_init made (after crl__stall_stop). */
void crl__stall_fini(struct crl__runtime *rt);
/* Stalls reported so far on core id (the watchdog's own count). */
uint64_t crl__stall_count(const struct crl__runtime *rt, unsigned id);

#endif
