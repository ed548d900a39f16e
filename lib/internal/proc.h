/* Small, locale-independent readers for /proc files (lib/proc.c), shared by
 * the process and system collectors. */
#ifndef PM_PROC_H
#define PM_PROC_H

#include "pm_internal.h"

/* Reads path into buf (size - 1 bytes at most), NUL-terminated, *len bytes.
 * whole != 0: PM_EIO unless the whole file fits; whole == 0: a prefix is
 * fine (the caller parses complete lines only). PM_EIO if unreadable. */
pm_status_t pm__proc_read(const char *path, char *buf, size_t size, size_t *len, int whole);

/* Parses an unsigned decimal (at least one digit) at *p, advancing *p.
 * Returns 0 on a missing number or overflow. */
int pm__parse_u64(const char **p, uint64_t *out);

static inline void pm__skip_blanks(const char **p)
{
    while (**p == ' ' || **p == '\t') (*p)++;
}

#endif
