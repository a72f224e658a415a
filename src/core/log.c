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

static void vlog(enum crl_log_level level, const char *fmt, va_list ap)
{
    struct crl__core *c = crl__cur;
    crl_log_fn *sink = stderr_sink;
    void *ctx = NULL;
    enum crl_log_level max = CRL_LOG_INFO;
    if (c) {
        max = c->rt->cfg.log_level;
        if (c->rt->cfg.log_fn) {
            sink = c->rt->cfg.log_fn;
            ctx = c->rt->cfg.log_ctx;
        }
    }
    if (level > max)
        return;
    char line[1024];
    vsnprintf(line, sizeof line, fmt, ap);
    sink(ctx, level, line);
}

void crl__logf(enum crl_log_level level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog(level, fmt, ap);
    va_end(ap);
}

void crl_log(enum crl_log_level level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog(level, fmt, ap);
    va_end(ap);
}

_Noreturn void crl__panic(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog(CRL_LOG_ERROR, fmt, ap);
    va_end(ap);
    abort();
}
