/* Annotation templates (lib/alert_template.c): every action and pipe with
 * exact output, printf format checking, parse errors with positions, copies,
 * and independence from the C locale. Templates are handed over in
 * exact-size heap copies without a terminating NUL. */
#include "harness.h"

#include "internal/alert_internal.h"
#include <perfmetrics/perfmetrics.h>

#include <locale.h>

static char *exact_copy(const char *s, size_t n)
{
    char *c = malloc(n ? n : 1);
    if (!c) abort();
    if (n) memcpy(c, s, n);
    return c;
}

static pm_status_t tparse(const char *s, pm__atmpl **out, pm_parse_error_t **err)
{
    char *c = exact_copy(s, strlen(s));
    pm_status_t st = pm__atmpl_parse(c, strlen(s), PM__SRCPOS_START, out, err);
    free(c);
    return st;
}

static const char *const g_lname[] = {"code", "instance", "service", "service_name"};
static const char *const g_lvalue[] = {"503", "host:9090", "api", "API server"};

/* The rendering of template s for value v (labels above, alertname
 * "HighErrorRate", severity "critical"), or "ERR <message>". */
static const char *render(const char *s, double v)
{
    static char out[4096];
    pm__atmpl *t = NULL;
    pm_parse_error_t *err = NULL;
    pm_status_t st = tparse(s, &t, &err);
    if (st != PM_OK) {
        snprintf(out, sizeof out, "ERR %s", err ? pm_parse_error_message(err) : pm_status_name(st));
        pm_parse_error_free(err);
        return out;
    }
    pm_buf_t *b = NULL;
    if (pm_buf_new(&b) != PM_OK) abort();
    st = pm__atmpl_render(t, v, "HighErrorRate", "critical", g_lname, g_lvalue, 4, b);
    if (st != PM_OK) snprintf(out, sizeof out, "RENDER %s", pm_status_name(st));
    else snprintf(out, sizeof out, "%s", pm_buf_len(b) ? pm_buf_data(b) : "");
    pm_buf_free(b);
    pm__atmpl_free(t);
    return out;
}

#define CHECK_RENDER(s, v, want) CHECK_STR(render(s, v), want)

/* Checks that template s fails at line 1, column col (offset col - 1). */
static void check_terr_(const char *file, int line, const char *s, unsigned col,
                        const char *expected, const char *msg)
{
    pm__atmpl *t = (pm__atmpl *)1;
    pm_parse_error_t *err = NULL;
    pm_status_t st = tparse(s, &t, &err);
    if (st != PM_EPARSE || !err || t != NULL) {
        th_failures++;
        fprintf(stderr, "  %s:%d: parse(\"%s\") = %s, want PM_EPARSE\n", file, line, s,
                pm_status_name(st));
        if (st == PM_OK) pm__atmpl_free(t);
    } else if (pm_parse_error_line(err) != 1 || pm_parse_error_column(err) != col ||
               pm_parse_error_offset(err) != col - 1 ||
               strcmp(pm_parse_error_expected(err), expected) != 0 ||
               !strstr(pm_parse_error_message(err), msg)) {
        th_failures++;
        fprintf(stderr,
                "  %s:%d: parse(\"%s\"): got %u:%u expected \"%s\" msg \"%s\"; want 1:%u "
                "expected \"%s\" msg containing \"%s\"\n",
                file, line, s, pm_parse_error_line(err), pm_parse_error_column(err),
                pm_parse_error_expected(err), pm_parse_error_message(err), col, expected, msg);
    }
    pm_parse_error_free(err);
}
#define CHECK_TERR(s, col, expected, msg) check_terr_(__FILE__, __LINE__, s, col, expected, msg)

static const char *const want_var = "a variable ($value, $labels.NAME, $alertname, $severity)";
static const char *const want_fn =
    "a function (humanize, humanizePercentage, humanizeDuration, printf)";
static const char *const want_conv = "one %f, %e or %g conversion";

TEST(test_literal_text)
{
    CHECK_RENDER("", 1, "");
    CHECK_RENDER("hello", 1, "hello");
    CHECK_RENDER("{ } }} {x} {", 1, "{ } }} {x} {");
    CHECK_RENDER("a{{ $value }}b{{$value}}c", 2, "a2b2c");
    CHECK_RENDER("{{$value}}}", 1, "1}");
    CHECK_RENDER("{{{ $value }}", 1, "ERR line 1, column 3: expected a variable but found '{'");
    CHECK_RENDER("line1\nline2 {{ $value }} \xc3\xa9", 7, "line1\nline2 7 \xc3\xa9");
}

TEST(test_value)
{
    CHECK_RENDER("{{ $value }}", 0.0712, "0.0712");
    CHECK_RENDER("{{ $value }}", 1, "1");
    CHECK_RENDER("{{ $value }}", -42, "-42");
    CHECK_RENDER("{{ $value }}", 0, "0");
    CHECK_RENDER("{{ $value }}", -0.0, "0");
    CHECK_RENDER("{{ $value }}", 1e18, "1000000000000000000");
    CHECK_RENDER("{{ $value }}", 1e20, "1e+20");
    CHECK_RENDER("{{ $value }}", 1.5e-7, "1.5e-07");
    CHECK_RENDER("{{ $value }}", 0.1 + 0.2, "0.30000000000000004");
    CHECK_RENDER("{{ $value }}", 123456.789, "123456.789");
    CHECK_RENDER("{{ $value }}", 1e300, "1e+300");
    CHECK_RENDER("{{ $value }}", NAN, "NaN");
    CHECK_RENDER("{{ $value }}", INFINITY, "+Inf");
    CHECK_RENDER("{{ $value }}", -INFINITY, "-Inf");
    /* whitespace inside the action is optional, of any kind */
    CHECK_RENDER("{{$value}}", 3, "3");
    CHECK_RENDER("{{ \t$value\n }}", 3, "3");
}

TEST(test_labels_alertname_severity)
{
    CHECK_RENDER("{{ $labels.service }}", 1, "api");
    CHECK_RENDER("{{ $labels.service_name }}", 1, "API server");
    CHECK_RENDER("{{$labels.code}}/{{ $labels.instance }}", 1, "503/host:9090");
    CHECK_RENDER("[{{ $labels.missing }}]", 1, "[]");
    CHECK_RENDER("[{{ $labels.serv }}]", 1, "[]");
    CHECK_RENDER("{{ $alertname }} is {{ $severity }}", 1, "HighErrorRate is critical");
    CHECK_RENDER("error rate {{ $value | humanizePercentage }} on {{ $labels.service }}", 0.0712,
                 "error rate 7.12% on api");
    /* NULL names and no labels render as "" */
    pm__atmpl *t = NULL;
    REQUIRE(tparse("<{{ $alertname }}|{{ $severity }}|{{ $labels.a }}>", &t, NULL) == PM_OK);
    pm_buf_t *b = NULL;
    REQUIRE(pm_buf_new(&b) == PM_OK);
    CHECK_OK(pm__atmpl_render(t, 1, NULL, NULL, NULL, NULL, 0, b));
    CHECK_STR(pm_buf_data(b), "<||>");
    /* rendering appends */
    pm_buf_reset(b);
    CHECK_OK(pm_buf_append(b, "X", 1));
    const char *n1[] = {"a"}, *v1[] = {"1"};
    CHECK_OK(pm__atmpl_render(t, 1, "r", "info", n1, v1, 1, b));
    CHECK_STR(pm_buf_data(b), "X<r|info|1>");
    pm_buf_free(b);
    pm__atmpl_free(t);
}

TEST(test_humanize)
{
    struct {
        double v;
        const char *want;
    } c[] = {{0, "0"},          {1, "1"},           {999, "999"},         {1000, "1k"},
             {1234, "1.234k"},  {-1234, "-1.234k"}, {1234567, "1.235M"},  {12.3456, "12.35"},
             {1e9, "1G"},       {1.5e12, "1.5T"},   {1e15, "1P"},         {1e18, "1E"},
             {1e21, "1Z"},      {1e24, "1Y"},       {1e27, "1000Y"},      {999999, "1000k"},
             {0.5, "500m"},     {0.001, "1m"},      {0.000123, "123u"},   {1.5e-9, "1.5n"},
             {2e-12, "2p"},     {3e-15, "3f"},      {-0.25, "-250m"},     {NAN, "NaN"},
             {INFINITY, "+Inf"}, {-INFINITY, "-Inf"}};
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        const char *got = render("{{ $value | humanize }}", c[i].v);
        if (strcmp(got, c[i].want)) {
            th_failures++;
            fprintf(stderr, "  humanize(%g) = \"%s\", want \"%s\"\n", c[i].v, got, c[i].want);
        }
    }
}

TEST(test_humanize_percentage)
{
    struct {
        double v;
        const char *want;
    } c[] = {{0.0712, "7.12%"}, {0.05, "5%"},        {1, "100%"},       {0.123456, "12.35%"},
             {0, "0%"},         {12.5, "1250%"},     {123.4, "1.234e+04%"}, {-0.5, "-50%"},
             {0.000001, "0.0001%"}, {NAN, "NaN%"},   {INFINITY, "+Inf%"}};
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        const char *got = render("{{ $value | humanizePercentage }}", c[i].v);
        if (strcmp(got, c[i].want)) {
            th_failures++;
            fprintf(stderr, "  humanizePercentage(%g) = \"%s\", want \"%s\"\n", c[i].v, got,
                    c[i].want);
        }
    }
}

TEST(test_humanize_duration)
{
    struct {
        double v;
        const char *want;
    } c[] = {{0, "0s"},          {1.5, "1.5s"},         {0.25, "250ms"},     {59, "59s"},
             {59.99, "59.99s"},  {60, "1m 0s"},         {61.7, "1m 1s"},     {3723, "1h 2m 3s"},
             {3600, "1h 0m 0s"}, {86400, "1d 0h 0m 0s"}, {90061, "1d 1h 1m 1s"},
             {-90, "-1m 30s"},   {-1.5, "-1.5s"},       {-0.25, "-250ms"},   {0.0005, "500us"},
             {1e-9, "1ns"},      {1, "1s"},             {1e7, "115d 17h 46m 40s"},
             {1e30, "106751991167300d 15h 30m 7s"},     {NAN, "NaN"},        {INFINITY, "+Inf"},
             {-INFINITY, "-Inf"}};
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        const char *got = render("{{ $value | humanizeDuration }}", c[i].v);
        if (strcmp(got, c[i].want)) {
            th_failures++;
            fprintf(stderr, "  humanizeDuration(%g) = \"%s\", want \"%s\"\n", c[i].v, got,
                    c[i].want);
        }
    }
}

TEST(test_printf)
{
    const double pi = 3.14159265358979;
    CHECK_RENDER("{{ $value | printf \"%.2f\" }}", pi, "3.14");
    CHECK_RENDER("{{ $value | printf \"%.0f\" }}", pi, "3");
    CHECK_RENDER("{{ $value | printf \"%f\" }}", pi, "3.141593");
    CHECK_RENDER("{{ $value | printf \"%e\" }}", 12345.678, "1.234568e+04");
    CHECK_RENDER("{{ $value | printf \"%.3E\" }}", 12345.678, "1.235E+04");
    CHECK_RENDER("{{ $value | printf \"%g\" }}", 0.0001, "0.0001");
    CHECK_RENDER("{{ $value | printf \"%G\" }}", 1e-10, "1E-10");
    CHECK_RENDER("{{ $value | printf \"%8.2f\" }}", pi, "    3.14");
    CHECK_RENDER("{{ $value | printf \"%-8.2f|\" }}", pi, "3.14    |");
    CHECK_RENDER("{{ $value | printf \"%+.1f\" }}", pi, "+3.1");
    CHECK_RENDER("{{ $value | printf \"%08.2f\" }}", pi, "00003.14");
    CHECK_RENDER("{{ $value | printf \"% .1f\" }}", pi, " 3.1");
    CHECK_RENDER("{{ $value | printf \"%#.0f\" }}", pi, "3.");
    /* flags may repeat (each counts once) */
    CHECK_RENDER("{{ $value | printf \"[%--++--++--++--++--5.1f]\" }}", pi, "[+3.1 ]");
    CHECK_RENDER("{{ $value | printf `%-+ 0#-+ 0#-+ 0#-+ 0#99.99e` }}", 1,
                 "+1.000000000000000000000000000000000000000000000000000000000000000000000000000"
                 "000000000000000000000000e+00");
    CHECK_RENDER("{{ $value | printf \"value=%.1f%% of %%\" }}", pi, "value=3.1% of %");
    CHECK_RENDER("{{ $value | printf \"%%%.1f%%\" }}", pi, "%3.1%");
    CHECK_RENDER("{{ $value | printf `%.1f` }}", pi, "3.1");
    CHECK_RENDER("{{ $value | printf \"a\\tb\\\\ \\\"%.1f\\\"\\n\" }}", pi, "a\tb\\ \"3.1\"\n");
    CHECK_RENDER("{{ $value | printf \"}}%.1f{{\" }}", pi, "}}3.1{{");
    CHECK_RENDER("{{$value|printf\"%.1f\"}}", pi, "3.1");
    CHECK_RENDER("{{ $value | printf \"%.2f\" }}", NAN, "NaN");
    CHECK_RENDER("{{ $value | printf \"%.2f\" }}", INFINITY, "+Inf");
    CHECK_RENDER("{{ $value | printf \"[%6.2f]\" }}", INFINITY, "[  +Inf]");
    CHECK_RENDER("{{ $value | printf \"[%-6.1e]\" }}", -INFINITY, "[-Inf  ]");
    /* as C's printf in the C locale prints it */
    char want[512];
    snprintf(want, sizeof want, "%.2f", 1e300);
    CHECK_RENDER("{{ $value | printf \"%.2f\" }}", 1e300, want);
    /* the widest output fits */
    snprintf(want, sizeof want, "%99.99f", -1.0);
    CHECK_RENDER("{{ $value | printf \"%99.99f\" }}", -1, want);
}

TEST(test_parse_errors)
{
    CHECK_TERR("abc {{ $value", 5, "'}}'", "unclosed action");
    CHECK_TERR("{{", 1, "'}}'", "unclosed action");
    CHECK_TERR("{{ $value }} {{ $value }", 14, "'}}'", "unclosed action");
    CHECK_TERR("{{ $value | printf \"%.2f }}", 1, "'}}'", "unclosed action");
    CHECK_TERR("x {{ $foo }}", 6, want_var, "unknown variable '$foo'");
    CHECK_TERR("{{ $Value }}", 4, want_var, "unknown variable '$Value'");
    CHECK_TERR("{{ $ }}", 4, want_var, "unknown variable '$'");
    CHECK_TERR("{{ value }}", 4, "a variable", "expected a variable but found 'value'");
    CHECK_TERR("{{ .Value }}", 4, "a variable", "found '.'");
    CHECK_TERR("{{ }}", 4, "a variable", "expected a variable but found '}}'");
    CHECK_TERR("{{}}", 3, "a variable", "found '}}'");
    CHECK_TERR("{{ $labels }}", 11, "'.'", "expected '.' but found a blank");
    CHECK_TERR("{{ $labels}}", 11, "'.'", "expected '.' but found '}}'");
    CHECK_TERR("{{ $labels. x }}", 12, "a label name", "found a blank");
    CHECK_TERR("{{ $labels.1x }}", 12, "a label name", "expected a label name but found '1x'");
    CHECK_TERR("{{ $labels.}}", 12, "a label name", "found '}}'");
    CHECK_TERR("{{ $value | }}", 13, "a function", "expected a function but found '}}'");
    CHECK_TERR("{{ $value | foo }}", 13, want_fn, "unknown function 'foo'");
    CHECK_TERR("{{ $value | Humanize }}", 13, want_fn, "unknown function 'Humanize'");
    CHECK_TERR("{{ $labels.a | humanize }}", 16, "", "'humanize' applies to $value only");
    CHECK_TERR("{{ $alertname | printf \"%f\" }}", 17, "", "applies to $value only");
    CHECK_TERR("{{ $value humanize }}", 11, "'|' or '}}'", "expected '|' or '}}' but found 'humanize'");
    CHECK_TERR("{{ $value | humanize | printf \"%.1f\" }}", 22, "'}}'", "found '|'");
    CHECK_TERR("{{ $value | humanize x }}", 22, "'}}'", "found 'x'");
    CHECK_TERR("{{ $value | printf }}", 20, "a string", "expected a string but found '}}'");
    CHECK_TERR("{{ $value | printf '%f' }}", 20, "a string", "found '''");
    CHECK_TERR("{{ $value | printf \"%.1f\" \"%.1f\" }}", 27, "'}}'", "found '\"'");
    /* printf formats: one floating conversion, nothing else */
    CHECK_TERR("{{ $value | printf \"%d\" }}", 21, want_conv, "unsupported conversion");
    CHECK_TERR("{{ $value | printf \"%s\" }}", 21, want_conv, "unsupported conversion");
    CHECK_TERR("{{ $value | printf \"x %5.3d\" }}", 23, want_conv, "unsupported conversion");
    CHECK_TERR("{{ $value | printf \"%123f\" }}", 21, want_conv, "unsupported conversion");
    CHECK_TERR("{{ $value | printf \"%.100f\" }}", 21, want_conv, "unsupported conversion");
    CHECK_TERR("{{ $value | printf \"%ld\" }}", 21, want_conv, "unsupported conversion");
    CHECK_TERR("{{ $value | printf \"%*f\" }}", 21, want_conv, "unsupported conversion");
    CHECK_TERR("{{ $value | printf \"%'f\" }}", 21, want_conv, "unsupported conversion");
    CHECK_TERR("{{ $value | printf \"%n\" }}", 21, want_conv, "unsupported conversion");
    CHECK_TERR("{{ $value | printf \"50%\" }}", 23, want_conv, "unsupported conversion");
    CHECK_TERR("{{ $value | printf \"%.1f %.1f\" }}", 26, want_conv, "more than one conversion");
    CHECK_TERR("{{ $value | printf \"abc\" }}", 20, want_conv, "no conversion");
    CHECK_TERR("{{ $value | printf \"%%\" }}", 20, want_conv, "no conversion");
    CHECK_TERR("{{ $value | printf \"\" }}", 20, want_conv, "no conversion");
    /* after an escape, at the '%' itself */
    CHECK_TERR("{{ $value | printf \"\\t\\\"%d\" }}", 25, want_conv, "unsupported conversion");
    CHECK_TERR("{{ $value | printf \"\\q%f\" }}", 21, "an escape sequence", "invalid escape");
    /* the first error of several */
    CHECK_TERR("{{ $value }} {{ $bar", 14, "'}}'", "unclosed action");
    CHECK_TERR("{{ $foo }} {{ $bar", 4, want_var, "unknown variable '$foo'");
    CHECK_TERR("{{ $foo }} {{ $bar }}", 4, want_var, "unknown variable '$foo'");
    /* a NUL byte in a printf format */
    pm__atmpl *t = NULL;
    pm_parse_error_t *err = NULL;
    const char nul[] = "{{ $value | printf \"%.1f\0\" }}";
    char *c = exact_copy(nul, sizeof nul - 1);
    CHECK_STATUS(pm__atmpl_parse(c, sizeof nul - 1, PM__SRCPOS_START, &t, &err), PM_EPARSE);
    CHECK_EQ_INT(pm_parse_error_column(err), 25);
    CHECK_CONTAINS(pm_parse_error_message(err), "NUL byte");
    free(c);
    pm_parse_error_free(err);
}

TEST(test_positions_from_at)
{
    pm__srcpos at = {3, 10, 100};
    pm__atmpl *t = NULL;
    pm_parse_error_t *err = NULL;
    const char *s = "ab {{ $x }}";
    char *c = exact_copy(s, strlen(s));
    CHECK_STATUS(pm__atmpl_parse(c, strlen(s), at, &t, &err), PM_EPARSE);
    free(c);
    CHECK(t == NULL);
    CHECK_EQ_INT(pm_parse_error_line(err), 3);
    CHECK_EQ_INT(pm_parse_error_column(err), 16);
    CHECK_EQ_U64(pm_parse_error_offset(err), 106);
    CHECK_STR(pm_parse_error_message(err), "line 3, column 16: unknown variable '$x'");
    pm_parse_error_free(err);
    /* a first error is kept */
    err = NULL;
    CHECK_STATUS(pm__perr(&err, 9, 9, 9, NULL, "earlier"), PM_EPARSE);
    CHECK_STATUS(tparse("{{", &t, &err), PM_EPARSE);
    CHECK_STR(pm_parse_error_message(err), "line 9, column 9: earlier");
    pm_parse_error_free(err);
    CHECK_STATUS(tparse("{{", &t, NULL), PM_EPARSE);
}

TEST(test_copy)
{
    const char *s = "A {{ $alertname }} {{$severity}} {{ $value }} {{ $value | humanize }} "
                    "{{ $value | humanizePercentage }} {{ $value | humanizeDuration }} "
                    "{{ $value | printf \"%%%5.1f%%\" }} {{ $labels.service }} Z";
    pm__atmpl *t = NULL, *c = NULL;
    REQUIRE(tparse(s, &t, NULL) == PM_OK);
    REQUIRE(pm__atmpl_copy(t, &c) == PM_OK);
    pm_buf_t *b1 = NULL, *b2 = NULL;
    REQUIRE(pm_buf_new(&b1) == PM_OK && pm_buf_new(&b2) == PM_OK);
    CHECK_OK(pm__atmpl_render(t, 4321.5, "R", "warning", g_lname, g_lvalue, 4, b1));
    pm__atmpl_free(t);
    CHECK_OK(pm__atmpl_render(c, 4321.5, "R", "warning", g_lname, g_lvalue, 4, b2));
    CHECK_STR(pm_buf_data(b1), pm_buf_data(b2));
    CHECK_STR(pm_buf_data(b2),
              "A R warning 4321.5 4.322k 4.322e+05% 1h 12m 1s %4321.5% api Z");
    /* an empty template copies too */
    pm__atmpl *e = NULL, *ec = NULL;
    REQUIRE(tparse("", &e, NULL) == PM_OK);
    REQUIRE(pm__atmpl_copy(e, &ec) == PM_OK);
    pm_buf_reset(b1);
    CHECK_OK(pm__atmpl_render(ec, 1, NULL, NULL, NULL, NULL, 0, b1));
    CHECK_EQ_U64(pm_buf_len(b1), 0);
    pm__atmpl_free(e);
    pm__atmpl_free(ec);
    pm__atmpl_free(c);
    pm_buf_free(b1);
    pm_buf_free(b2);
}

TEST(test_bad_arguments)
{
    pm__atmpl *t = (pm__atmpl *)1;
    pm_parse_error_t *err = NULL;
    CHECK_STATUS(pm__atmpl_parse(NULL, 0, PM__SRCPOS_START, &t, &err), PM_EINVAL);
    CHECK(t == NULL);
    CHECK(err == NULL);
    CHECK_STATUS(pm__atmpl_parse("x", 1, PM__SRCPOS_START, NULL, &err), PM_EINVAL);
    CHECK_STATUS(pm__atmpl_copy(NULL, &t), PM_EINVAL);
    CHECK(t == NULL);
    pm__atmpl_free(NULL);
    REQUIRE(tparse("{{ $value }}", &t, NULL) == PM_OK);
    CHECK_STATUS(pm__atmpl_copy(t, NULL), PM_EINVAL);
    pm_buf_t *b = NULL;
    REQUIRE(pm_buf_new(&b) == PM_OK);
    CHECK_STATUS(pm__atmpl_render(NULL, 1, "a", "b", NULL, NULL, 0, b), PM_EINVAL);
    CHECK_STATUS(pm__atmpl_render(t, 1, "a", "b", NULL, NULL, 0, NULL), PM_EINVAL);
    CHECK_STATUS(pm__atmpl_render(t, 1, "a", "b", NULL, NULL, 2, b), PM_EINVAL);
    CHECK_EQ_U64(pm_buf_len(b), 0);
    pm_buf_free(b);
    pm__atmpl_free(t);
}

/* Set LOCPATH to a directory made with `localedef -i de_DE -f UTF-8
 * DIR/de_DE.UTF-8` to run this where no such locale is installed. */
TEST(test_locale)
{
    const char *names[] = {"de_DE.UTF-8", "de_DE.utf8", "fr_FR.UTF-8", "fr_FR.utf8"};
    const char *got = NULL;
    for (size_t i = 0; i < sizeof names / sizeof names[0] && !got; i++)
        got = setlocale(LC_NUMERIC, names[i]);
    if (!got) printf("  (no locale with a decimal comma installed: checked in the C locale only)\n");
    CHECK_RENDER("{{ $value }}", 0.5, "0.5");
    CHECK_RENDER("{{ $value | printf \"%.2f,%%\" }}", 3.14159, "3.14,%");
    CHECK_RENDER("{{ $value | printf \"%e\" }}", 1.5, "1.500000e+00");
    CHECK_RENDER("{{ $value | humanize }}", 1234, "1.234k");
    CHECK_RENDER("{{ $value | humanizePercentage }}", 0.0712, "7.12%");
    CHECK_RENDER("{{ $value | humanizeDuration }}", 1.5, "1.5s");
    setlocale(LC_NUMERIC, "C");
}

TEST_MAIN(TH_CASE(test_literal_text), TH_CASE(test_value), TH_CASE(test_labels_alertname_severity),
          TH_CASE(test_humanize), TH_CASE(test_humanize_percentage),
          TH_CASE(test_humanize_duration), TH_CASE(test_printf), TH_CASE(test_parse_errors),
          TH_CASE(test_positions_from_at), TH_CASE(test_copy), TH_CASE(test_bad_arguments),
          TH_CASE(test_locale))
