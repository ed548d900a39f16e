/* Private to the embedded server (lib/http_request.c, lib/server*.c): the
 * HTTP/1.1 request-head parser, the header helpers built on it, and the
 * server's internal interfaces. Never installed.
 *
 * The parser works on the bytes received so far and never copies: a parsed
 * request points into the caller's buffer. It is incremental in the simplest
 * way (the caller calls it again with more bytes), which costs a re-scan of
 * at most one request head (<= 1 MiB by the limits) per read. */
#ifndef PM_HTTP_INTERNAL_H
#define PM_HTTP_INTERNAL_H

#include <perfmetrics/format.h>
#include <perfmetrics/server.h>

#include <stddef.h>
#include <stdint.h>

typedef struct pm__http_limits {
    size_t max_line;    /* request line, CRLF excluded */
    size_t max_head;    /* header section after the request line, final CRLF included */
    size_t max_headers; /* header fields */
} pm__http_limits_t;

typedef struct pm__http_field {
    const char *name; /* not NUL-terminated */
    size_t name_len;
    const char *value; /* OWS stripped at both ends */
    size_t value_len;
} pm__http_field_t;

enum {
    PM__HTTP_GET = 1,
    PM__HTTP_HEAD = 2,
    PM__HTTP_OTHER = 3
};

typedef struct pm__http_request {
    int method; /* PM__HTTP_* */
    const char *method_text;
    size_t method_len;
    const char *target; /* as received */
    size_t target_len;
    const char *path; /* origin-form path (absolute-form reduced to it) */
    size_t path_len;
    const char *query; /* after '?', NULL when there is none */
    size_t query_len;
    int minor;                /* HTTP/1.<minor>: 0 or 1 */
    pm__http_field_t *fields; /* caller's array of max_headers entries */
    size_t nfields;
    size_t head_len;        /* bytes of the request head, blank line included */
    int keep_alive;         /* after the version and Connection tokens */
    int64_t content_length; /* -1 when absent */
    int transfer_encoding;  /* a Transfer-Encoding field is present */
    int host_count;         /* Host fields seen */
} pm__http_request_t;

/* Parses the request head at the start of buf[0..len). req->fields must point
 * to lim->max_headers entries. Returns the head length (> 0) when a complete
 * and valid head is there, 0 when more bytes are needed, or minus an HTTP
 * status: -400 (syntax; also a bare CR, obs-fold, space before a colon, a
 * control character, a bad or duplicate Content-Length, a duplicate Host),
 * -414 (request line over max_line), -431 (head over max_head or more than
 * max_headers fields), -505 (a major version other than 1; a later 1.x minor is read as 1.1).
 * Limits are applied to incomplete input too: a client cannot make the
 * server buffer more than max_line + max_head + 4 bytes of one head.
 * Empty lines before the request line are skipped (RFC 9112 2.2). */
int pm__http_parse(const char *buf, size_t len, const pm__http_limits_t *lim,
                   pm__http_request_t *req);

/* Parses a response head (status line and header section) at the start of
 * buf[0..len) into `head` (the request fields that apply: minor, fields,
 * head_len, keep_alive, content_length, transfer_encoding) and *status (100
 * to 999; 0 unless accepted), for the push client (lib/http_client.c). The
 * same return values and limits as pm__http_parse, max_line bounding the
 * status line. */
int pm__http_parse_response(const char *buf, size_t len, const pm__http_limits_t *lim,
                            pm__http_request_t *head, int *status);

/* The first field called `name` (case-insensitive), or NULL. */
const pm__http_field_t *pm__http_field(const pm__http_request_t *req, const char *name);

/* Content negotiation over every Accept field: PM_FORMAT_OPENMETRICS or
 * PM_FORMAT_PROMETHEUS (the default, also for no or unusable Accept). */
pm_format_t pm__http_accept_format(const pm__http_request_t *req);

/* 1 if the Accept-Encoding fields accept gzip (gzip, x-gzip or * with q > 0,
 * not overridden by gzip;q=0). */
int pm__http_accepts_gzip(const pm__http_request_t *req);

/* Checks the Authorization field against token (token_len > 0) in time that
 * depends only on token_len and the received length: 1 if it is
 * "Bearer <token>" (scheme case-insensitive). */
int pm__http_bearer_ok(const pm__http_request_t *req, const char *token, size_t token_len);

/* 1 if the Host field names this machine's loopback by an IP literal or
 * "localhost" (any port): what a DNS-rebinding page cannot send. */
int pm__http_host_is_local(const pm__http_request_t *req);

/* Query strings: iterates `name=value` pairs separated by '&'. Returns 1 and
 * sets the raw (still percent-encoded) name and value slices for the next
 * pair, advancing *pos; 0 at the end. */
int pm__query_next(const char *q, size_t qlen, size_t *pos, const char **name, size_t *name_len,
                   const char **value, size_t *value_len);
/* Percent-decodes (and '+' -> space) src into dst (size >= 1), NUL-terminated.
 * Returns the decoded length, or -1 when it does not fit, a %-escape is
 * malformed, or it decodes to a NUL byte. */
long pm__query_decode(const char *src, size_t len, char *dst, size_t size);

/* Case-insensitive comparison of a slice with a NUL-terminated ASCII string. */
int pm__http_ieq(const char *s, size_t n, const char *lit);

/* Reason phrase of an HTTP status ("Not Found"); "Unknown" for others. */
const char *pm__http_reason(int status);

#endif
