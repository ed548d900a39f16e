/* Prints the fixed batch of tests/span_fixture.h in the span format named by
 * argv[1] (jsonl | otlp | otlp-empty, the last an empty batch) to stdout, for
 * tests/validate_spans.py to check with Python's json module. */
#include "span_fixture.h"

#include <perfmetrics/perfmetrics.h>

#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: dump_spans jsonl|otlp|otlp-empty\n");
        return 2;
    }
    static sf_fixture f;
    sf_fixture_build(&f);
    pm_span_format_t fmt;
    if (strcmp(argv[1], "jsonl") == 0) {
        fmt = PM_SPAN_FORMAT_JSONL;
    } else if (strcmp(argv[1], "otlp") == 0) {
        fmt = PM_SPAN_FORMAT_OTLP_JSON;
    } else if (strcmp(argv[1], "otlp-empty") == 0) {
        fmt = PM_SPAN_FORMAT_OTLP_JSON;
        f.batch.n = 0;
    } else {
        fprintf(stderr, "dump_spans: unknown format %s\n", argv[1]);
        return 2;
    }
    pm_buf_t *b = NULL;
    pm_status_t st = pm_buf_new(&b);
    if (st == PM_OK) st = pm_span_batch_format(&f.batch, fmt, b);
    if (st != PM_OK) {
        fprintf(stderr, "dump_spans: %s\n", pm_strerror(st));
        pm_buf_free(b);
        return 1;
    }
    int ok =
        fwrite(pm_buf_data(b), 1, pm_buf_len(b), stdout) == pm_buf_len(b) && fflush(stdout) == 0;
    pm_buf_free(b);
    return ok ? 0 : 1;
}
