#!/usr/bin/python3
"""Validates the embedded server's /metrics against a real Prometheus and
against parsers we did not write.

Starts two tests/serve_fixture instances on 127.0.0.1 (found at
$PM_BUILD_ROOT/tests/serve_fixture, or the newest build*/tests one): "plain"
with --series 1000, and "token" with --token. Then:
  - direct fetches (urllib) from the plain fixture: /metrics with
    Accept: text/plain and with the Accept header Prometheus sends, each with
    the exact Content-Type; `promtool check metrics` on the text (no parse
    error, no lint finding); prometheus_client's text parser and its strict
    OpenMetrics parser over the two bodies, with the fixture's fixed values
    (tests/serve_fixture.c); gzip responses (text and OpenMetrics) that
    decode to the same families; the token fixture answers 401 without the
    token and with a wrong one, 200 with the right one;
  - the peer: Debian's prometheus on 127.0.0.1 (a free port, a temporary
    storage directory, a generated config with scrape_interval 1s) scrapes
    three jobs: "plain", "token" (the right bearer token in
    authorization.credentials) and "wrongtoken" (the token fixture with a
    wrong token). Polling its HTTP API with deadlines: plain and token are
    up, wrongtoken is down with a 401; the fixed values as Prometheus stored
    them (fixture_requests_total GET/200 = 42 and POST/500 = 7,
    fixture_temperature 21.5, fixture_latency_seconds _count 100, _sum 5.0
    and two buckets); fixture_ticks_total grows between two queries;
    1000 fixture_load_total series summing to 499500 on plain, none on token;
    perfmetrics_http_* self metrics present, the plain fixture's count of
    answered scrapes grows, the token fixture counted its 401s; nothing
    stored for wrongtoken.
Prometheus and the fixtures are stopped at the end, also on failure; each
fixture must then exit 0. A missing prometheus, promtool or prometheus_client
fails the run when CI=true; otherwise the checks needing it are skipped (exit
77 when something was skipped and nothing failed).
Prints "validate_prometheus_scrape: N passed, N failed".
"""

import gzip
import json
import os
import subprocess
import sys
import tempfile
import urllib.parse

from pmcheck import (Fixture, built_program, check, exit_status, http, missing, poll, start_server,
                     stop_process, summary)

try:
    from prometheus_client.openmetrics.parser import \
        text_string_to_metric_families as parse_openmetrics
    from prometheus_client.parser import text_string_to_metric_families as parse_prometheus
except ImportError:  # reported in main()
    parse_openmetrics = parse_prometheus = None

NAME = "validate_prometheus_scrape"
PROMETHEUS = "/usr/bin/prometheus"
PROMTOOL = "/usr/bin/promtool"
TOKEN = "fixture-Token_0.9~+/="
WRONG_TOKEN = "not-the-fixture-token"
SERIES = 1000

# What Prometheus 2.x sends (scrape/scrape.go, scrapeAcceptHeader).
PROMETHEUS_ACCEPT = ("application/openmetrics-text;version=1.0.0,"
                     "application/openmetrics-text;version=0.0.1;q=0.75,"
                     "text/plain;version=0.0.4;q=0.5,*/*;q=0.1")
CT_TEXT = "text/plain; version=0.0.4; charset=utf-8"
CT_OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"

# The fixed contents of tests/serve_fixture.c.
REQUESTS = {("GET", "200"): 42.0, ("POST", "500"): 7.0}
TEMPERATURE = 21.5
LATENCY_COUNT = 100
LATENCY_SUM = 5.0
LATENCY_BUCKETS = {"0.005": 5, "0.01": 10, "0.025": 25, "0.05": 50, "0.1": 100, "+Inf": 100}
FIXED_FAMILIES = {"fixture_requests", "fixture_temperature", "fixture_latency_seconds",
                  "fixture_ticks", "fixture_queue_length", "fixture_task_seconds"}

# ---------------------------------------------------------------- processes


def prometheus_config(plain, token):
    # JSON is YAML: no quoting rules to get wrong for the tokens.
    def job(name, fixture, credentials=None):
        j = {"job_name": name, "static_configs": [{"targets": ["127.0.0.1:%d" % fixture.port]}]}
        if credentials is not None:
            j["authorization"] = {"type": "Bearer", "credentials": credentials}
        return j
    return json.dumps({
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [job("plain", plain), job("token", token, TOKEN),
                           job("wrongtoken", token, WRONG_TOKEN)],
    }, indent=2)


def start_prometheus(tmp, config):
    """Starts Prometheus on a free port; returns (process, base URL) or (None, None)."""
    cfg = os.path.join(tmp, "prometheus.yml")
    with open(cfg, "w") as f:
        f.write(config)
    return start_server("prometheus", lambda port, attempt: [
        PROMETHEUS, "--config.file=" + cfg,
        "--storage.tsdb.path=" + os.path.join(tmp, "data%d" % attempt),
        "--web.listen-address=127.0.0.1:%d" % port, "--log.level=warn"], tmp)


# ---------------------------------------------------------------- direct fetches


def samples(families, name):
    """{(sample name, sorted labels): value} of one parsed family."""
    f = families.get(name)
    if f is None:
        return {}
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for s in f.samples}


def check_fixed_values(fmt, families):
    """The fixture's fixed families as a parser read them."""
    w = "%s parse" % fmt
    for name in FIXED_FAMILIES:
        check(name in families, "%s: family %s missing" % (w, name))
    req = samples(families, "fixture_requests")
    for (method, code), want in REQUESTS.items():
        key = ("fixture_requests_total", (("code", code), ("method", method)))
        check(req.get(key) == want, "%s: fixture_requests_total{%s,%s} = %r, want %r"
              % (w, method, code, req.get(key), want))
    temp = samples(families, "fixture_temperature")
    check(temp.get(("fixture_temperature", ())) == TEMPERATURE,
          "%s: fixture_temperature = %r" % (w, temp))
    lat = samples(families, "fixture_latency_seconds")
    check(lat.get(("fixture_latency_seconds_count", ())) == LATENCY_COUNT,
          "%s: fixture_latency_seconds_count = %r" % (w, lat.get(("fixture_latency_seconds_count", ()))))
    total = lat.get(("fixture_latency_seconds_sum", ()))
    check(total is not None and abs(total - LATENCY_SUM) < 1e-9,
          "%s: fixture_latency_seconds_sum = %r, want %r" % (w, total, LATENCY_SUM))
    buckets = {float(dict(k[1])["le"]): v for k, v in lat.items()
               if k[0] == "fixture_latency_seconds_bucket"}
    for le, want in LATENCY_BUCKETS.items():
        got = buckets.get(float(le))
        check(got == want, "%s: fixture_latency_seconds_bucket{le=%s} = %r, want %r"
              % (w, le, got, want))
    if "fixture_latency_seconds" in families:
        check(families["fixture_latency_seconds"].type == "histogram",
              "%s: fixture_latency_seconds type %s" % (w, families["fixture_latency_seconds"].type))
    load = [k for k in samples(families, "fixture_load") if k[0] == "fixture_load_total"]
    check(len(load) == SERIES, "%s: %d fixture_load_total samples, want %d" % (w, len(load), SERIES))
    check(any(n.startswith("perfmetrics_http") for n in families),
          "%s: no perfmetrics_http_* family" % w)


def parse(fmt, text):
    """Families by name, or None when the parser rejects the text."""
    parser = parse_prometheus if fmt == "prometheus" else parse_openmetrics
    try:
        return {f.name: f for f in parser(text)}
    except ValueError as e:
        check(False, "%s parser rejected the body: %s" % (fmt, e))
        return None


def fetch_metrics(fixture, what, accept, gzip_ok=False, token=None):
    """GET /metrics; returns (status, headers, decoded text or None)."""
    headers = {"Accept": accept}
    if gzip_ok:
        headers["Accept-Encoding"] = "gzip"
    if token is not None:
        headers["Authorization"] = "Bearer " + token
    status, hdrs, body = http(fixture.base + "/metrics", headers)
    if not check(status == 200, "%s: HTTP %d" % (what, status)):
        return status, hdrs, None
    encoding = hdrs.get("Content-Encoding")
    check(encoding == ("gzip" if gzip_ok else None),
          "%s: Content-Encoding %r" % (what, encoding))
    vary = [v.strip().lower() for v in (hdrs.get("Vary") or "").split(",")]
    check("accept" in vary and "accept-encoding" in vary, "%s: Vary %r" % (what, hdrs.get("Vary")))
    if encoding == "gzip":
        try:
            body = gzip.decompress(body)
        except (OSError, EOFError) as e:
            check(False, "%s: gzip body does not decode: %s" % (what, e))
            return status, hdrs, None
    try:
        return status, hdrs, body.decode("utf-8")
    except UnicodeDecodeError as e:
        check(False, "%s: body is not UTF-8: %s" % (what, e))
        return status, hdrs, None


def promtool_check(text):
    if not os.access(PROMTOOL, os.X_OK):
        missing(NAME, PROMTOOL, "prometheus")
        return
    proc = subprocess.run([PROMTOOL, "check", "metrics"], input=text.encode(),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
    # Exit 1 is a parse error, 3 a lint finding; neither is tolerated.
    check(proc.returncode == 0, "promtool check metrics exited %d:\n%s"
          % (proc.returncode, proc.stdout.decode(errors="replace")[-3000:]))


def check_direct(plain, token):
    cases = [("text", "text/plain", CT_TEXT, "prometheus"),
             ("openmetrics", PROMETHEUS_ACCEPT, CT_OPENMETRICS, "openmetrics")]
    for label, accept, ctype, fmt in cases:
        for gz in (False, True):
            what = "GET /metrics (%s%s)" % (label, ", gzip" if gz else "")
            _, hdrs, text = fetch_metrics(plain, what, accept, gzip_ok=gz)
            if text is None:
                continue
            check(hdrs.get("Content-Type") == ctype,
                  "%s: Content-Type %r, want %r" % (what, hdrs.get("Content-Type"), ctype))
            if fmt == "openmetrics":
                check(text.endswith("# EOF\n"), "%s: does not end with '# EOF\\n'" % what)
            if fmt == "prometheus" and not gz:
                promtool_check(text)
            if parse_prometheus is None:
                continue
            families = parse(fmt, text)
            if families is not None:
                check_fixed_values(what, families)

    # The token fixture: the bearer token is required on /metrics.
    for hdr, want in ((None, 401), ("Bearer " + WRONG_TOKEN, 401), ("Basic Zm9vOmJhcg==", 401),
                      ("Bearer " + TOKEN, 200)):
        status, hdrs, body = http(token.base + "/metrics",
                                  {"Authorization": hdr} if hdr else {})
        check(status == want, "token fixture, Authorization %r: HTTP %d, want %d"
              % (hdr, status, want))
        if want == 401 and status == 401:
            check(b"fixture_" not in body, "token fixture: a 401 body carries metrics")
    if parse_prometheus is not None:
        _, _, text = fetch_metrics(token, "token fixture, right token", "text/plain", token=TOKEN)
        families = parse("prometheus", text) if text is not None else None
        if families is not None:
            check("fixture_temperature" in families, "token fixture: fixture_temperature missing")
            check("fixture_load" not in families, "token fixture: has fixture_load (no --series)")


# ---------------------------------------------------------------- the peer


def query(base, expr):
    """The result vector of an instant query, or None on any error."""
    status, _, body = http(base + "/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
    if status != 200:
        return None
    try:
        d = json.loads(body)
    except ValueError:
        return None
    if d.get("status") != "success" or d.get("data", {}).get("resultType") != "vector":
        return None
    return d["data"]["result"]


def scalar(base, expr):
    """The value of a one-element result, or None."""
    r = query(base, expr)
    if not r or len(r) != 1:
        return None
    return float(r[0]["value"][1])


def targets(base):
    """{job: target} once every job's target has been scraped, else None."""
    status, _, body = http(base + "/api/v1/targets?state=active")
    if status != 200:
        return None
    by_job = {}
    for t in json.loads(body).get("data", {}).get("activeTargets", []):
        by_job[t.get("labels", {}).get("job")] = t
    if set(by_job) != {"plain", "token", "wrongtoken"}:
        return None
    if any(t.get("health") == "unknown" for t in by_job.values()):
        return None
    # The first scrape of a target may race its start-up: wait for the
    # expected states, then check them below (the deadline bounds this).
    if by_job["plain"]["health"] != "up" or by_job["token"]["health"] != "up":
        return None
    return by_job


def check_targets(base):
    got = poll(lambda: targets(base), 45)
    if got is None:
        status, _, body = http(base + "/api/v1/targets")
        check(False, "targets did not reach plain=up, token=up within 45 s: %r"
              % body.decode(errors="replace")[:3000])
        return False
    check(got["plain"]["health"] == "up", "plain target: %r" % got["plain"])
    check(got["token"]["health"] == "up", "token target: %r" % got["token"])
    wrong = got["wrongtoken"]
    check(wrong.get("health") == "down", "wrongtoken target health %r" % wrong.get("health"))
    check("401" in (wrong.get("lastError") or ""),
          "wrongtoken target lastError %r (want a 401)" % wrong.get("lastError"))
    return True


def check_value(base, expr, want, tol=0.0):
    got = poll(lambda: scalar(base, expr), 15)
    ok = got is not None and (got == want if tol == 0 else abs(got - want) <= tol)
    check(ok, "prometheus: %s = %r, want %r" % (expr, got, want))


def check_grows(base, expr):
    """Two queries of expr, the second after a later scrape, see it grow."""
    first = poll(lambda: scalar(base, expr), 15)
    if not check(first is not None, "prometheus: no value for %s" % expr):
        return

    def grown():
        v = scalar(base, expr)
        return v if v is not None and v > first else None
    later = poll(grown, 20)
    check(later is not None, "prometheus: %s stayed at %r for 20 s" % (expr, first))


def check_stored(base):
    for job in ("plain", "token"):
        sel = 'job="%s"' % job
        for (method, code), want in REQUESTS.items():
            check_value(base, 'fixture_requests_total{%s,method="%s",code="%s"}'
                        % (sel, method, code), want)
        check_value(base, "fixture_temperature{%s}" % sel, TEMPERATURE)
        check_value(base, "fixture_latency_seconds_count{%s}" % sel, LATENCY_COUNT)
        check_value(base, "fixture_latency_seconds_sum{%s}" % sel, LATENCY_SUM, tol=1e-9)
        for le in ("0.025", "0.05"):
            check_value(base, 'fixture_latency_seconds_bucket{%s,le="%s"}' % (sel, le),
                        LATENCY_BUCKETS[le])
        check_value(base, "up{%s}" % sel, 1)

        check_grows(base, "fixture_ticks_total{%s}" % sel)
        n = poll(lambda: scalar(base, 'count({__name__=~"perfmetrics_http_.+",%s})' % sel), 15)
        check(n is not None and n > 0, "prometheus: no perfmetrics_http_* series for %s" % job)

    check_value(base, 'count(fixture_load_total{job="plain"})', SERIES)
    check_value(base, 'sum(fixture_load_total{job="plain"})', SERIES * (SERIES - 1) / 2)
    check(query(base, 'fixture_load_total{job="token"}') == [],
          "prometheus: fixture_load_total on the token job (no --series)")
    n = scalar(base, 'scrape_samples_scraped{job="plain"}')
    check(n is not None and n > SERIES, "prometheus: plain scraped %r samples" % n)
    check_value(base, 'up{job="wrongtoken"}', 0)
    # The server counts the scrapes it answered, the refused ones too.
    check_grows(base, 'perfmetrics_http_requests_total{job="plain",handler="metrics",code="200"}')
    n = poll(lambda: scalar(base, 'perfmetrics_http_requests_total'
                                  '{job="token",handler="metrics",code="401"}'), 15)
    check(n is not None and n >= 1, "prometheus: the token fixture counted %r 401 answers" % n)
    check(query(base, '{job="wrongtoken",__name__=~"fixture_.+"}') == [],
          "prometheus: fixture series stored for wrongtoken")


def check_peer(plain, token):
    if not os.access(PROMETHEUS, os.X_OK):
        missing(NAME, PROMETHEUS, "prometheus")
        return
    with tempfile.TemporaryDirectory(prefix="pm-prometheus-") as tmp:
        proc, base = start_prometheus(tmp, prometheus_config(plain, token))
        if not check(proc is not None, "prometheus did not become ready"):
            return
        try:
            if check_targets(base):
                check_stored(base)
        finally:
            stop_process(proc)


def main():
    exe = built_program("serve_fixture")
    if not exe:
        return summary(NAME)
    print("using " + exe)
    if parse_prometheus is None:
        missing(NAME, "prometheus_client", "python3-prometheus-client")
    with tempfile.TemporaryDirectory(prefix="pm-scrape-fixtures-") as tmp:
        fixtures = []
        try:
            for name, args in (("plain", ["--series", str(SERIES)]),
                               ("token", ["--token", TOKEN, "--threads", "1"])):
                with open(os.path.join(tmp, name + ".log"), "wb") as log:
                    fixtures.append(Fixture(exe, name, args, log))
            plain, token = fixtures
            if all([f.wait_ready() for f in fixtures]):
                check_direct(plain, token)
                check_peer(plain, token)
        finally:
            for f in fixtures:
                f.stop()
    return exit_status(NAME)


if __name__ == "__main__":
    sys.exit(main())
