/* tree.c - crl_dump_tree: the calling core's scopes and tasks, as text; and core's part of
 * the runtime's dump (the scope walk, the waits core knows). */
#define _GNU_SOURCE
#include "core.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

const char *crl__task_state_name(enum crl__task_state s)
{
    switch (s) {
    case CRL__RUNNABLE: return "runnable";
    case CRL__RUNNING: return "running";
    case CRL__PARKED: return "parked";
    case CRL__DONE: return "done";
    case CRL__SETTLED: return "cached";
    }
    return "?";
}

static void plain_task_line(FILE *f, const struct crl_task *t)
{
    /* crl_scope_run's join parks on the task's innermost scope, not cancellably */
    bool joining = t->state == CRL__PARKED && !t->unpark && t->park_obj == t->scope;
    fprintf(f, "%s\n", joining ? " (joining)" : "");
}

void crl__dump_scope(FILE *f, const struct crl_scope *s, int depth, crl__task_line_fn *task_line,
                     void *ctx)
{
    fprintf(f, "%*sscope %p%s%s%s live=%u\n", depth * 2, "", (const void *)s,
            s->owner ? " opened by " : " (root)", s->owner ? s->owner->name : "",
            s->cancel_reason == ETIMEDOUT ? " timed-out"
            : s->cancel_reason            ? " cancelled"
                                          : "",
            s->nlive);
    for (const struct crl__list *l = s->tasks.next; l != &s->tasks; l = l->next) {
        const struct crl_task *t = crl__container_of(l, struct crl_task, scope_link);
        fprintf(f, "%*stask '%s' %s", depth * 2 + 2, "", t->name, crl__task_state_name(t->state));
        if (task_line)
            task_line(f, t, depth + 1, ctx);
        else
            plain_task_line(f, t);
    }
    if (s->owner && s->owner->scope == s)
        fprintf(f, "%*sbody of '%s' %s\n", depth * 2 + 2, "", s->owner->name,
                crl__task_state_name(s->owner->state));
    for (const struct crl__list *l = s->kids.next; l != &s->kids; l = l->next)
        crl__dump_scope(f, crl__container_of(l, struct crl_scope, kid_link), depth + 1, task_line,
                        ctx);
}

bool crl__core_describe_wait(void (*unpark)(struct crl_task *t), const void *obj, int64_t now_ns,
                             char *out, size_t cap)
{
    return crl__timer_describe_wait(unpark, obj, now_ns, out, cap) ||
           crl__sync_describe_wait(unpark, obj, now_ns, out, cap);
}

void crl_dump_tree(int fd)
{
    struct crl__core *c = crl__cur;
    if (!c) {
        dprintf(fd, "corral: no runtime on this thread\n");
        return;
    }
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f)
        return;
    fprintf(f, "corral: core scope tree, %llu live task(s)\n",
            (unsigned long long)c->stats.tasks_live);
    crl__dump_scope(f, c->root, 1, NULL, NULL);
    fclose(f);
    for (size_t off = 0; off < len;) {
        ssize_t n = write(fd, text + off, len - off);
        if (n <= 0)
            break;
        off += (size_t)n;
    }
    free(text);
}
