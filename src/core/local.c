/* local.c - task-local storage: a few slots in every task record, keyed process-wide. */
#include "core.h"

#include <errno.h>
#include <stdatomic.h>

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
