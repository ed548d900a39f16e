/* Name and text validation by the Prometheus/OpenMetrics rules. */
#include "internal/pm_internal.h"

static bool is_alpha_(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}
static bool is_digit(unsigned char c) { return c >= '0' && c <= '9'; }

bool pm__valid_metric_name(const char *s)
{
    if (!s || !*s) return false;
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++, n++) {
        bool ok = is_alpha_(*p) || *p == ':' || (p != (const unsigned char *)s && is_digit(*p));
        if (!ok || n >= PM_MAX_NAME) return false;
    }
    return true;
}

bool pm__valid_label_name(const char *s)
{
    if (!s || !*s) return false;
    if (s[0] == '_' && s[1] == '_') return false; /* reserved for internal use */
    if (!strcmp(s, "le") || !strcmp(s, "quantile") || !strcmp(s, "pm_overflow")) return false;
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++, n++) {
        bool ok = is_alpha_(*p) || (p != (const unsigned char *)s && is_digit(*p));
        if (!ok || n >= PM_MAX_NAME) return false;
    }
    return true;
}

/* The sample names a family of this type writes (Prometheus and OpenMetrics
 * together), as suffixes of its name. */
static const char *const *sample_suffixes(pm_type_t type)
{
    static const char *const counter[] = {"", "_total", "_created", NULL};
    static const char *const gauge[] = {"", NULL};
    static const char *const histogram[] = {"", "_bucket", "_count", "_sum", "_created", NULL};
    return type == PM_TYPE_COUNTER ? counter : type == PM_TYPE_HISTOGRAM ? histogram : gauge;
}

/* True when two families would write a sample (or family) name in common,
 * e.g. a gauge "x_total" beside a counter "x". */
bool pm__names_clash(pm_type_t t1, const char *n1, pm_type_t t2, const char *n2)
{
    size_t l1 = strlen(n1), l2 = strlen(n2);
    for (const char *const *a = sample_suffixes(t1); *a; a++)
        for (const char *const *b = sample_suffixes(t2); *b; b++) {
            size_t la = strlen(*a), lb = strlen(*b);
            if (l1 + la != l2 + lb) continue;
            /* compare n1+a with n2+b without building them */
            char x[PM_MAX_NAME + 16], y[PM_MAX_NAME + 16];
            if (l1 + la >= sizeof x) continue;
            memcpy(x, n1, l1);
            memcpy(x + l1, *a, la + 1);
            memcpy(y, n2, l2);
            memcpy(y + l2, *b, lb + 1);
            if (!strcmp(x, y)) return true;
        }
    return false;
}

bool pm__names_clash_probe(pm_type_t type, const char *name,
                           bool (*probe)(void *ctx, const char *n2), void *ctx)
{
    static const pm_type_t types[] = {PM_TYPE_COUNTER, PM_TYPE_GAUGE, PM_TYPE_HISTOGRAM};
    size_t len = strlen(name);
    char s[PM_MAX_NAME + 16];
    for (const char *const *a = sample_suffixes(type); *a; a++) {
        size_t la = strlen(*a), ls = len + la;
        if (ls >= sizeof s) continue; /* names are < PM_MAX_NAME by validation */
        memcpy(s, name, len);
        memcpy(s + len, *a, la + 1);
        /* b: every suffix of every type (a few names are probed twice). */
        for (size_t t = 0; t < sizeof types / sizeof *types; t++)
            for (const char *const *b = sample_suffixes(types[t]); *b; b++) {
                size_t lb = strlen(*b);
                if (lb >= ls || memcmp(s + ls - lb, *b, lb)) continue;
                char saved = s[ls - lb];
                s[ls - lb] = '\0'; /* n2 = name + a without b */
                bool hit = probe(ctx, s);
                s[ls - lb] = saved;
                if (hit) return true;
            }
    }
    return false;
}

bool pm__valid_unit(const char *s)
{
    if (!s || !*s) return false;
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++, n++)
        if (!(is_alpha_(*p) || is_digit(*p)) || n >= 64) return false;
    return true;
}

/* Strict UTF-8 (RFC 3629): no overlongs, no surrogates, nothing above U+10FFFF. */
bool pm__valid_utf8(const char *str, size_t len)
{
    const unsigned char *s = (const unsigned char *)str, *end = s + len;
    while (s < end) {
        unsigned char c = *s;
        if (c < 0x80) {
            s++;
            continue;
        }
        size_t need;
        uint32_t cp, min;
        if ((c & 0xE0) == 0xC0) {
            need = 1, cp = c & 0x1F, min = 0x80;
        } else if ((c & 0xF0) == 0xE0) {
            need = 2, cp = c & 0x0F, min = 0x800;
        } else if ((c & 0xF8) == 0xF0) {
            need = 3, cp = c & 0x07, min = 0x10000;
        } else {
            return false;
        }
        if ((size_t)(end - s) <= need) return false;
        for (size_t i = 1; i <= need; i++) {
            if ((s[i] & 0xC0) != 0x80) return false;
            cp = (cp << 6) | (s[i] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
        s += need + 1;
    }
    return true;
}
