/* Named callback lists: what collectors, metric exporters and span exporters
 * have in common (a unique name, user data with a release callback, an entry
 * in a list guarded by one of their owner's locks). */
#include "internal/pm_internal.h"

pm_status_t pm__cb_add(const pm_alloc_t *a, pthread_mutex_t *lock, pm_cb_entry **head,
                       const char *name, void (*fn)(void), void *user, pm_release_fn release,
                       bool refuse, pm_cb_entry **out)
{
    *out = NULL;
    pm_status_t st = PM_OK;
    if (!a || !name || !fn)
        st = PM_EINVAL;
    else if (!*name || strlen(name) > PM_MAX_LABEL_VALUE || !pm__valid_utf8(name, strlen(name)))
        st = PM_EUTF8;
    else if (refuse)
        st = PM_ESTATE;
    if (st != PM_OK) goto fail;
    pm_cb_entry *e = NULL;
    pthread_mutex_lock(lock);
    pm_cb_entry **tail = head;
    for (; *tail; tail = &(*tail)->next)
        if (!strcmp((*tail)->name, name)) st = PM_EEXIST;
    if (st == PM_OK && !(e = pm__calloc(a, sizeof *e))) st = PM_ENOMEM;
    if (st == PM_OK && !(e->name = pm__strdup(a, name))) {
        pm__free(a, e);
        st = PM_ENOMEM;
    }
    if (st == PM_OK) {
        e->fn = fn;
        e->user = user;
        e->release = release;
        *tail = e;
    }
    pthread_mutex_unlock(lock);
    if (st != PM_OK) goto fail;
    *out = e;
    return PM_OK;
fail:
    if (release) release(user); /* ownership of user always passes to us */
    return st;
}

void pm__cb_unlink(pm_cb_entry **head, pm_cb_entry *e)
{
    for (pm_cb_entry **p = head; *p; p = &(*p)->next)
        if (*p == e) {
            *p = e->next;
            return;
        }
}

void pm__cb_free(const pm_alloc_t *a, pm_cb_entry *e)
{
    if (e->release) e->release(e->user);
    pm__free(a, e->name);
    pm__free(a, e);
}

void pm__cb_free_all(const pm_alloc_t *a, pm_cb_entry **head)
{
    pm_cb_entry *e = *head;
    *head = NULL;
    while (e) {
        pm_cb_entry *n = e->next;
        pm__cb_free(a, e);
        e = n;
    }
}
