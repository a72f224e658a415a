/* log.c - the runtime's one way to say something: a level and a sink (stderr by default),
 * and crl__panic for invariants that cannot be reported as an error. */
#include "core.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void stderr_sink(void *ctx, enum crl_log_level level, const char *line)
{
    (void)ctx, (void)level;
    char buf[1024];
    size_t n = strnlen(line, sizeof buf - 1);
    memcpy(buf, line, n);
    buf[n++] = '\n';
    ssize_t unused = write(STDERR_FILENO, buf, n); /* one write: lines of threads don't mix */
    (void)unused;
}

/* The sink and level of cfg (NULL: stderr, CRL_LOG_INFO). */
static void vlog_with(const struct crl_config *cfg, enum crl_log_level level, const char *fmt,
                      va_list ap)
{
    crl_log_fn *sink = stderr_sink;
    void *ctx = NULL;
    enum crl_log_level max = CRL_LOG_INFO;
    if (cfg) {
        if (cfg->log_level != CRL_LOG_DEFAULT)
            max = cfg->log_level;
        if (cfg->log_fn) {
            sink = cfg->log_fn;
            ctx = cfg->log_ctx;
        }
    }
    if (level > max)
        return;
    char line[4096]; /* a stall report, with its backtrace, is one message */
    vsnprintf(line, sizeof line, fmt, ap);
    sink(ctx, level, line);
}

static void vlog(enum crl_log_level level, const char *fmt, va_list ap)
{
    struct crl__core *c = crl__cur;
    vlog_with(c ? c->cfg : NULL, level, fmt, ap);
}

void crl__logf(enum crl_log_level level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog(level, fmt, ap);
    va_end(ap);
}

void crl__log_cfg(const struct crl_config *cfg, enum crl_log_level level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog_with(cfg, level, fmt, ap);
    va_end(ap);
}

void crl_log(enum crl_log_level level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog(level, fmt, ap);
    va_end(ap);
}

/* The message goes to the runtime's sink and, if that is not stderr, to stderr too: an abort
 * must be explained where a developer looks, whatever the sink does with it. */
_Noreturn void crl__panic(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char line[1024];
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    struct crl__core *c = crl__cur;
    if (c && c->cfg->log_fn)
        c->cfg->log_fn(c->cfg->log_ctx, CRL_LOG_ERROR, line);
    stderr_sink(NULL, CRL_LOG_ERROR, line);
    abort();
}
