/* The push engine's HTTP/1.1 client (lib/http_client.c): plain TCP, one
 * connection per destination reused while the server keeps it alive, every
 * step bounded by a timeout. Never installed. */
#ifndef PM_HTTP_CLIENT_H
#define PM_HTTP_CLIENT_H

#include "http_internal.h"
#include "pm_internal.h"

#include <sys/socket.h>

/* An http:// URL split into its parts (owned strings, pm__default_alloc).
 * host is without brackets; host_header is what the Host field carries
 * (host[:port] as written, brackets kept). */
typedef struct pm__url {
    char *host, *port, *host_header, *path;
} pm__url_t;

/* Errors: PM_EINVAL (not http://host[:port][/path], a bad port, userinfo,
 * a fragment, control characters or spaces), PM_ENOMEM. */
pm_status_t pm__url_parse(const char *url, pm__url_t *out);
void pm__url_free(pm__url_t *u);

typedef struct pm__http_client {
    struct sockaddr_storage addr;
    socklen_t addrlen;
    int fd;         /* -1 when not connected */
    int reused;     /* requests sent on fd before the current one */
    char *buf;      /* response bytes */
    size_t len, cap;
} pm__http_client_t;

/* Resolves host:port (the first address getaddrinfo gives) and prepares an
 * unconnected client. Errors: PM_EIO (not resolved), PM_ENOMEM. */
pm_status_t pm__http_client_init(pm__http_client_t *c, const char *host, const char *port);
void pm__http_client_close(pm__http_client_t *c); /* closes the connection, keeps the address */
void pm__http_client_fini(pm__http_client_t *c);

enum {
    PM__HTTP_RES_OK = 0,      /* a complete response was read (any status) */
    PM__HTTP_RES_ERROR = 1,   /* connect refused, reset, a torn or malformed answer */
    PM__HTTP_RES_TIMEOUT = 2  /* a step or the whole request ran out of time */
};

typedef struct pm__http_result {
    int outcome;        /* PM__HTTP_RES_* */
    int status;         /* the HTTP status when outcome is OK */
    double retry_after; /* Retry-After in seconds (delta-seconds form), -1 when absent */
} pm__http_result_t;

/* Sends one request (head: request line and header fields, final CRLF
 * included; then body) and reads its response, each connect, send and read
 * waiting at most step_s and the whole exchange ending by deadline_ns
 * (pm__mono_ns clock). A reused connection the server closed meanwhile is
 * reopened once at no extra attempt. The connection is kept for the next
 * request when both sides allow it. Responses over 1 MiB are errors. */
void pm__http_exchange(pm__http_client_t *c, const char *head, size_t head_len, const char *body,
                       size_t body_len, double step_s, uint64_t deadline_ns,
                       pm__http_result_t *res);

/* Response framing: where the response at buf[0..len) ends. Returns its
 * length (head + body) when complete; 0 when more bytes are needed (with
 * `eof` set: the response is complete at len when it is delimited by the
 * close, else -1); -1 when malformed. *status, *keep_alive and
 * *retry_after (-1 when absent) are set when it returns > 0. Bodies: none
 * for 1xx, 204 and 304 (and for a HEAD request, which the client never
 * sends), Content-Length, chunked (extensions and trailers skipped), or up
 * to the close. Interim 1xx responses are skipped. A pure function (the
 * fuzz target's entry point). */
long pm__http_response_frame(const char *buf, size_t len, int eof, int *status, int *keep_alive,
                             double *retry_after);

#endif
