/* tracing.c - the runtime's flight recorders: one ring per core while tracing is on
 * (crl_config.trace_file or CORRAL_TRACE), written as Chrome trace-event JSON on request
 * (crl_trace_write), when a stall is reported and when crl_run returns. */
#define _GNU_SOURCE
#include "runtime.h"
#include "trace.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <stdlib.h>
#include <unistd.h>

/* A core's stall events kept: a begin and an end per stall, the last 32 stalls. */
enum { STALL_EVENTS = 64 };

int crl__tracing_init(struct crl__runtime *rt)
{
    if (!rt->cfg.trace_file) {
        const char *env = getenv("CORRAL_TRACE");
        rt->cfg.trace_file = env && *env ? env : NULL;
    }
    if (!rt->cfg.trace_file)
        return 0;
    rt->trace_rings = calloc(rt->ncores, sizeof *rt->trace_rings);
    rt->stall_rings = calloc(rt->ncores, sizeof *rt->stall_rings);
    if (!rt->trace_rings || !rt->stall_rings) {
        crl__tracing_fini(rt);
        return -ENOMEM;
    }
    for (unsigned i = 0; i < rt->ncores; i++)
        if (!(rt->trace_rings[i] = crl__trace_new(rt->cfg.trace_events)) ||
            !(rt->stall_rings[i] = crl__trace_new(STALL_EVENTS))) {
            crl__tracing_fini(rt);
            return -ENOMEM;
        }
    return 0;
}

void crl__tracing_fini(struct crl__runtime *rt)
{
    for (unsigned i = 0; i < rt->ncores; i++) {
        if (rt->trace_rings)
            crl__trace_free(rt->trace_rings[i]);
        if (rt->stall_rings)
            crl__trace_free(rt->stall_rings[i]);
    }
    free(rt->trace_rings);
    free(rt->stall_rings);
    rt->trace_rings = rt->stall_rings = NULL;
}

void crl__tracing_stall(struct crl__runtime *rt, unsigned core, uint8_t kind, int64_t ts,
                        uint32_t task, int64_t ns)
{
    if (rt->stall_rings)
        crl__trace(rt->stall_rings[core], ts, kind, task, (uint64_t)ns);
}

static int write_rings(struct crl__runtime *rt, int fd)
{
    if (!rt->trace_rings)
        return -ENODATA;
    struct crl__trace_json_opts opts = {.end_ns = crl__clock_mono_ns(),
                                        .stall_rings = rt->stall_rings};
    return crl__trace_write_json(fd, rt->trace_rings, rt->ncores, &opts);
}

void crl__tracing_to_file(struct crl__runtime *rt)
{
    if (!rt->trace_rings)
        return;
    int fd = open(rt->cfg.trace_file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    int rc = fd < 0 ? -errno : write_rings(rt, fd);
    if (fd >= 0)
        close(fd);
    if (rc)
        crl__log_cfg(&rt->cfg, CRL_LOG_WARN, "corral: trace not written to %s: %s",
                     rt->cfg.trace_file, strerror(-rc));
}

int crl_trace_write(int fd)
{
    struct crl__core *c = crl__cur;
    return c ? write_rings(c->rt, fd) : -ESRCH;
}
