/* The process collector: Prometheus's standard process_* families, read from
 * /proc at snapshot time.
 *
 * The collector keeps no state of its own: every value is read afresh, so it
 * needs no user data and nothing outlives the registry it is registered in.
 * /proc files are read into fixed-size stack buffers; a file that does not
 * fit, or a field that does not parse, makes the run fail with PM_EIO (the
 * core then drops this run's output and counts the failure). Numbers are
 * parsed by hand, so the host's locale never matters. */
#include "internal/proc.h"

#include <perfmetrics/collector.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdint.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#define COLLECTOR_NAME "process"

/* /proc/self/stat is one line of 52 numeric fields after a comm of at most 64
 * bytes: well under 1 KiB. statm is 7 numbers. */
#define STAT_BUF_SIZE 4096
/* /proc/stat is streamed: its "intr" line can be tens of KiB on large
 * machines; lines longer than this are skipped (btime is short). */
#define LINE_BUF_SIZE 512
#define CHUNK_SIZE 4096

/* Fields of /proc/self/stat, counted from 0 at the field after comm (state),
 * i.e. proc(5) field number minus 3. */
enum {
    STAT_UTIME = 14 - 3,
    STAT_STIME = 15 - 3,
    STAT_NUM_THREADS = 20 - 3,
    STAT_STARTTIME = 22 - 3,
    STAT_FIELDS_NEEDED = STAT_STARTTIME + 1
};

static int skip_token(const char **p)
{
    const char *s = *p;
    while (*s != '\0' && *s != ' ' && *s != '\t' && *s != '\n') s++;
    if (s == *p) return 0;
    *p = s;
    return 1;
}

struct proc_stat {
    uint64_t utime, stime, num_threads, starttime;
};

/* Parses /proc/self/stat. comm (field 2) is the thread name in parentheses and
 * may itself hold spaces, parentheses or newlines; no later field can hold ')'
 * (the rest are numbers and a one-letter state), so the fields start after the
 * LAST ')' in the line. */
static pm_status_t parse_proc_stat(const char *buf, size_t len, struct proc_stat *out)
{
    const char *close_paren = NULL;
    for (size_t i = 0; i < len; i++)
        if (buf[i] == ')') close_paren = buf + i;
    if (!close_paren) return PM_EIO;

    uint64_t *dst[STAT_FIELDS_NEEDED] = {NULL};
    dst[STAT_UTIME] = &out->utime;
    dst[STAT_STIME] = &out->stime;
    dst[STAT_NUM_THREADS] = &out->num_threads;
    dst[STAT_STARTTIME] = &out->starttime;

    const char *p = close_paren + 1;
    for (int field = 0; field < STAT_FIELDS_NEEDED; field++) {
        pm__skip_blanks(&p);
        if (dst[field] ? !pm__parse_u64(&p, dst[field]) : !skip_token(&p)) return PM_EIO;
    }
    return PM_OK;
}

/* Parses the first two fields of /proc/self/statm: total program size and
 * resident set size, in pages. */
static pm_status_t parse_statm(const char *buf, uint64_t *size_pages, uint64_t *rss_pages)
{
    const char *p = buf;
    pm__skip_blanks(&p);
    if (!pm__parse_u64(&p, size_pages)) return PM_EIO;
    pm__skip_blanks(&p);
    if (!pm__parse_u64(&p, rss_pages)) return PM_EIO;
    return PM_OK;
}

/* Finds the "btime N" line of /proc/stat (boot time, seconds since the
 * epoch). The file is streamed through a bounded line buffer: an overlong
 * line is skipped to its newline, never truncated into a false match. */
static pm_status_t read_boot_time(uint64_t *btime)
{
    static const char key[] = "btime ";
    char chunk[CHUNK_SIZE];
    char line[LINE_BUF_SIZE];
    size_t line_len = 0;
    int overlong = 0, found = 0, fd;

    do {
        fd = open("/proc/stat", O_RDONLY | O_CLOEXEC);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0) return PM_EIO;
    while (!found) {
        ssize_t r = read(fd, chunk, sizeof chunk);
        if (r < 0) {
            if (errno == EINTR) continue;
            break;
        }
        if (r == 0) break;
        for (ssize_t i = 0; i < r && !found; i++) {
            char c = chunk[i];
            if (c != '\n') {
                if (line_len < sizeof line - 1)
                    line[line_len++] = c;
                else
                    overlong = 1;
                continue;
            }
            line[line_len] = '\0';
            if (!overlong && strncmp(line, key, sizeof key - 1) == 0) {
                const char *p = line + sizeof key - 1;
                pm__skip_blanks(&p);
                if (pm__parse_u64(&p, btime)) found = 1;
            }
            line_len = 0;
            overlong = 0;
        }
    }
    close(fd);
    return found ? PM_OK : PM_EIO;
}

/* Counts the entries of /proc/self/fd. The directory's own descriptor is
 * included, as client_golang and prometheus_client count it too. */
static pm_status_t count_open_fds(uint64_t *out)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d) return errno == ENOMEM ? PM_ENOMEM : PM_EIO;
    uint64_t n = 0;
    struct dirent *ent;
    errno = 0;
    while ((ent = readdir(d)) != NULL) {
        const char *nm = ent->d_name;
        if (nm[0] == '.' && (nm[1] == '\0' || (nm[1] == '.' && nm[2] == '\0'))) continue;
        n++;
    }
    int err = errno;
    closedir(d);
    if (err != 0) return PM_EIO;
    *out = n;
    return PM_OK;
}

/* Emits a family with one unlabelled sample. */
static pm_status_t emit_one(pm_emit_t *e, pm_type_t type, const char *name, const char *help,
                            const char *unit, double value)
{
    pm_status_t st = pm_emit_family(e, type, name, help, unit, NULL, 0);
    if (st != PM_OK) return st;
    return pm_emit_sample(e, NULL, 0, value);
}

static pm_status_t process_collect(pm_emit_t *e, void *user)
{
    (void)user;
    char buf[STAT_BUF_SIZE];
    size_t len;
    struct proc_stat ps = {0, 0, 0, 0};
    uint64_t size_pages, rss_pages, btime, open_fds;
    struct rlimit rl;
    pm_status_t st;

    long ticks = sysconf(_SC_CLK_TCK);
    long page = sysconf(_SC_PAGESIZE);
    if (ticks <= 0 || page <= 0) return PM_EIO;

    if ((st = pm__proc_read("/proc/self/stat", buf, sizeof buf, &len, 1)) != PM_OK) return st;
    if ((st = parse_proc_stat(buf, len, &ps)) != PM_OK) return st;
    if ((st = pm__proc_read("/proc/self/statm", buf, sizeof buf, &len, 1)) != PM_OK) return st;
    if ((st = parse_statm(buf, &size_pages, &rss_pages)) != PM_OK) return st;
    if ((st = read_boot_time(&btime)) != PM_OK) return st;
    if ((st = count_open_fds(&open_fds)) != PM_OK) return st;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return PM_EIO;

    const double hz = (double)ticks;
    const double max_fds = rl.rlim_cur == RLIM_INFINITY ? INFINITY : (double)rl.rlim_cur;

    /* Names, help texts and types as client_golang and prometheus_client. */
    if ((st = emit_one(e, PM_TYPE_COUNTER, "process_cpu_seconds",
                       "Total user and system CPU time spent in seconds.", "seconds",
                       (double)(ps.utime + ps.stime) / hz)) != PM_OK)
        return st;
    if ((st = emit_one(e, PM_TYPE_GAUGE, "process_resident_memory_bytes",
                       "Resident memory size in bytes.", "bytes",
                       (double)rss_pages * (double)page)) != PM_OK)
        return st;
    if ((st = emit_one(e, PM_TYPE_GAUGE, "process_virtual_memory_bytes",
                       "Virtual memory size in bytes.", "bytes",
                       (double)size_pages * (double)page)) != PM_OK)
        return st;
    if ((st = emit_one(e, PM_TYPE_GAUGE, "process_open_fds", "Number of open file descriptors.",
                       "", (double)open_fds)) != PM_OK)
        return st;
    if ((st = emit_one(e, PM_TYPE_GAUGE, "process_max_fds",
                       "Maximum number of open file descriptors.", "", max_fds)) != PM_OK)
        return st;
    if ((st = emit_one(e, PM_TYPE_GAUGE, "process_start_time_seconds",
                       "Start time of the process since unix epoch in seconds.", "seconds",
                       (double)btime + (double)ps.starttime / hz)) != PM_OK)
        return st;
    return emit_one(e, PM_TYPE_GAUGE, "process_threads", "Number of OS threads in the process.",
                    "", (double)ps.num_threads);
}

pm_status_t pm_process_collector_enable(pm_registry_t *r)
{
    if (!r) return PM_EINVAL;
    /* Without a Linux-style /proc there is nothing to read; say so now rather
     * than fail every snapshot. */
    if (access("/proc/self/stat", R_OK) != 0 || access("/proc/stat", R_OK) != 0)
        return PM_EUNSUPPORTED;
    pm_status_t st = pm_collector_add(r, COLLECTOR_NAME, process_collect, NULL, NULL, NULL);
    return st == PM_EEXIST ? PM_OK : st;
}
