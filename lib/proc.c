/* Reading /proc: bounded buffers, EINTR-safe, no stdio and no locale. */
#include "internal/proc.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

pm_status_t pm__proc_read(const char *path, char *buf, size_t size, size_t *len, int whole)
{
    int fd;
    size_t n = 0;
    do {
        fd = open(path, O_RDONLY | O_CLOEXEC);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0) return PM_EIO;
    pm_status_t st = PM_OK;
    for (;;) {
        if (n == size - 1) {
            if (!whole) break;
            /* Full: only acceptable if the file ends exactly here. */
            char extra;
            ssize_t r = read(fd, &extra, 1);
            if (r < 0 && errno == EINTR) continue;
            if (r != 0) st = PM_EIO;
            break;
        }
        ssize_t r = read(fd, buf + n, size - 1 - n);
        if (r < 0) {
            if (errno == EINTR) continue;
            st = PM_EIO;
            break;
        }
        if (r == 0) break;
        n += (size_t)r;
    }
    close(fd);
    if (st != PM_OK) return st;
    buf[n] = '\0';
    *len = n;
    return PM_OK;
}

int pm__parse_u64(const char **p, uint64_t *out)
{
    const char *s = *p;
    uint64_t v = 0;
    if (*s < '0' || *s > '9') return 0;
    for (; *s >= '0' && *s <= '9'; s++) {
        unsigned d = (unsigned)(*s - '0');
        if (v > (UINT64_MAX - d) / 10) return 0;
        v = v * 10 + d;
    }
    *p = s;
    *out = v;
    return 1;
}
