/* local.c - task-local storage (a few slots in every task record) and per-core locals (one
 * instance per core, made on first use), both keyed process-wide. */
#include "core.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

static void (*local_dtors[CRL_TASK_LOCALS_MAX])(void *);
static _Atomic int local_keys;

int crl_task_local_create(void (*dtor)(void *value))
{
    int key = atomic_fetch_add(&local_keys, 1);
    if (key >= CRL_TASK_LOCALS_MAX) {
        atomic_store(&local_keys, CRL_TASK_LOCALS_MAX);
        return -ENOSPC;
    }
    local_dtors[key] = dtor;
    return key;
}

static bool key_ok(int key)
{
    return key >= 0 && key < CRL_TASK_LOCALS_MAX && key < atomic_load(&local_keys);
}

int crl_task_local_set(int key, void *value)
{
    if (!key_ok(key))
        return -EINVAL;
    struct crl_task *t = crl__self();
    t->locals[key] = value;
    t->locals_used |= 1u << key;
    return 0;
}

void *crl_task_local_get(int key)
{
    if (!key_ok(key))
        return NULL;
    struct crl_task *t = crl__self();
    return t->locals_used & (1u << key) ? t->locals[key] : NULL;
}

void crl__task_locals_destroy(struct crl_task *t)
{
    if (!t->locals_used)
        return;
    for (int k = 0; k < CRL_TASK_LOCALS_MAX; k++) {
        void *v = t->locals[k];
        if ((t->locals_used & (1u << k)) && v && local_dtors[k]) {
            t->locals[k] = NULL;
            local_dtors[k](v);
        }
    }
}

/* ---- Per-core locals -------------------------------------------------------------------- */

static struct {
    size_t size;
    void (*dtor)(void *);
} core_keys[CRL_CORE_LOCALS_MAX];
static _Atomic int core_nkeys;

int crl_core_local_create(size_t size, void (*dtor)(void *value))
{
    if (size == 0)
        return -EINVAL;
    int key = atomic_fetch_add(&core_nkeys, 1);
    if (key >= CRL_CORE_LOCALS_MAX) {
        atomic_store(&core_nkeys, CRL_CORE_LOCALS_MAX);
        return -ENOSPC;
    }
    core_keys[key].size = size;
    core_keys[key].dtor = dtor;
    return key;
}

void *crl_core_local_get(int key)
{
    struct crl__core *c = crl__core();
    if (!c || key < 0 || key >= CRL_CORE_LOCALS_MAX || key >= atomic_load(&core_nkeys))
        return NULL;
    if (!c->core_locals[key]) { /* whole cache lines: no false sharing with other cores */
        size_t size = (core_keys[key].size + 63) & ~(size_t)63;
        c->core_locals[key] = aligned_alloc(64, size);
        if (c->core_locals[key])
            memset(c->core_locals[key], 0, size);
    }
    return c->core_locals[key];
}

void crl__core_locals_destroy(struct crl__core *c)
{
    for (int k = 0; k < CRL_CORE_LOCALS_MAX; k++) {
        if (!c->core_locals[k])
            continue;
        if (core_keys[k].dtor)
            core_keys[k].dtor(c->core_locals[k]);
        free(c->core_locals[k]);
        c->core_locals[k] = NULL;
    }
}
