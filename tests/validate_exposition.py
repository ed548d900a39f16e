#!/usr/bin/python3
"""Validates the three exposition formats with parsers and tools we did not write.

Runs tests/dump_exposition (found at $PM_BUILD_ROOT/tests/dump_exposition, or
the newest build*/tests/dump_exposition of the source tree) for each format and:
  - parses the Prometheus text with prometheus_client.parser and the
    OpenMetrics text with prometheus_client.openmetrics.parser, and checks that
    families, types, HELP, units, sample values and the hostile label values
    round-trip exactly (EXPECTED mirrors dump_exposition.c);
  - runs `promtool check metrics` on the Prometheus text: any parse error or
    lint finding fails (none is tolerated; see check_promtool);
  - checks the exemplars (EXPECTED_EXEMPLARS): on the OpenMetrics bucket and
    _total lines, inside their bucket, absent from the Prometheus text, in
    JSON; and feeds the OpenMetrics text, exemplars and hostile labels
    included, to Prometheus's own OpenMetrics parser (`promtool tsdb
    create-blocks-from openmetrics`; see check_promtool_openmetrics);
  - loads the JSON with json.loads (rejecting NaN/Infinity tokens) and checks
    the schema documented in doc/formats.md and the same values.
A missing promtool fails the run unless PM_ALLOW_MISSING_TOOLS=1.
Runs under Debian's /usr/bin/python3, which has prometheus_client.
"""

import json
import re
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time

from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families as parse_prometheus

from pmcheck import built_program, check, run_dump, summary


# ---------------------------------------------------------------- expectations
# Keep in step with build() in tests/dump_exposition.c.

REQUESTS_HELP = 'Requests with "quotes", a back\\slash and a\nnewline.'
REQUESTS = [
    ("GET", "/", "200"),
    ("GET", '/a"b', "404"),
    ("POST", "C:\\dir\\", "500"),
    ("PUT", "multi\nline", "201"),
    ("DELETE", "é✓ üñí", "204"),
    ("GET", "", "200"),
    ("GET", "{}=,# x", "200"),
    ("GET", "\\n is not a newline", "200"),
]
DEFAULT_BOUNDS = ["0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1.0", "2.5", "5.0", "10.0"]


def _histogram(labels, bounds, cumulative, count, total):
    """Samples of one histogram series as {(suffix, labels): value}."""
    out = {}
    for le, c in zip(bounds + ["+Inf"], cumulative + [count]):
        out[("_bucket", tuple(sorted(dict(labels, le=le).items())))] = c
    out[("_count", tuple(sorted(labels.items())))] = count
    out[("_sum", tuple(sorted(labels.items())))] = total
    return out


def _scalar(suffix, series):
    return {(suffix, tuple(sorted(labels.items()))): v for labels, v in series}


EXPECTED = {
    "app_requests": dict(
        type="counter", help=REQUESTS_HELP, unit="", labels=["method", "path", "code"],
        samples=_scalar("_total", [({"method": m, "path": p, "code": c}, (i + 1) * 10.0)
                                   for i, (m, p, c) in enumerate(REQUESTS)])),
    "app_transferred_bytes": dict(
        type="counter", help="Bytes moved.", unit="bytes", labels=["direction"],
        samples=_scalar("_total", [({"direction": "rx"}, 1e15), ({"direction": "tx"}, 0.125)])),
    "app_temperature_celsius": dict(
        type="gauge", help="Sensor temperature.", unit="celsius", labels=["sensor"],
        samples=_scalar("", [({"sensor": "inlet"}, 21.5), ({"sensor": "outlet"}, -3.25),
                             ({"sensor": "broken"}, math.nan), ({"sensor": "hot"}, math.inf),
                             ({"sensor": "cold"}, -math.inf)])),
    "app_idle_workers": dict(
        type="gauge", help="Idle workers per pool.", unit="", labels=["pool"], samples={}),
    "app_uptime_seconds": dict(
        type="gauge", help="Seconds since start.", unit="", labels=[],
        samples=_scalar("", [({}, 4242.5)])),
    "app_latency_seconds": dict(
        type="histogram", help="Request latency.", unit="seconds", labels=["route"],
        bounds=DEFAULT_BOUNDS,
        samples={**_histogram({"route": "/home"}, DEFAULT_BOUNDS,
                              [1, 2, 2, 3, 3, 4, 5, 5, 6, 6, 7], 8, 42.666015625),
                 **_histogram({"route": '/api "v1"'}, DEFAULT_BOUNDS,
                              [0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1], 1, 0.25)}),
    "app_payload_bytes": dict(
        type="histogram", help="Payload sizes.", unit="bytes", labels=[],
        bounds=["100.0", "1000.0", "10000.0", "100000.0", "1e+06"],
        samples=_histogram({}, ["100.0", "1000.0", "10000.0", "100000.0", "1e+06"],
                           [1, 2, 3, 4, 4], 5, 2167360.0)),
    "app_clock_offset_seconds": dict(
        type="histogram", help="Clock offset.", unit="seconds", labels=[],
        bounds=["-1.0", "-0.5", "0.0", "0.5", "1.0"],
        samples=_histogram({}, ["-1.0", "-0.5", "0.0", "0.5", "1.0"], [0, 1, 1, 2, 2], 2, -0.5)),
}
LOGIN_USERS = {"ann", "bob", "cid", "dee", "eve", "fay"}

# Exemplars recorded by dump_exposition.c with explicit contexts: one trace id,
# span id n. {(family, sample suffix, sorted labels): (span id, value)}.
EXEMPLAR_TRACE = "0af7651916cd43dd8448eb211c80319c"


def _exemplars():
    out = {}
    for i, (m, p, c) in enumerate(REQUESTS):
        labels = (("code", c), ("method", m), ("path", p))
        out[("app_requests", "_total", labels)] = (i + 1, (i + 1) * 10.0)
    home = [0.001953125, 0.0078125, 0.03125, 0.125, 0.5, 2, 8, 32]
    les = ["0.005", "0.01", "0.05", "0.25", "0.5", "2.5", "10.0", "+Inf"]
    for i, (v, le) in enumerate(zip(home, les)):
        out[("app_latency_seconds", "_bucket", (("le", le), ("route", "/home")))] = (101 + i, v)
    out[("app_clock_offset_seconds", "_bucket", (("le", "-0.5"),))] = (201, -0.75)
    out[("app_clock_offset_seconds", "_bucket", (("le", "0.5"),))] = (202, 0.25)
    for i, u in enumerate(["ann", "bob", "cid"]):
        out[("app_logins", "_total", (("user", u),))] = (301 + i, 1.0)
    out[("app_logins", "_total", (("pm_overflow", "true"),))] = (306, 1.0)  # the latest of 3
    return out


EXPECTED_EXEMPLARS = _exemplars()


def same_value(a, b):
    if isinstance(a, float) and math.isnan(a):
        return isinstance(b, float) and math.isnan(b)
    return a == b


# ---------------------------------------------------------------- running


def dump(exe, fmt):
    return run_dump(exe, fmt)

def samples_of(family, drop=()):
    """{(suffix, sorted labels): value} of a parsed family."""
    out = {}
    for s in family.samples:
        suffix = s.name[len(family.name):]
        if suffix in drop:
            continue
        key = (suffix, tuple(sorted(s.labels.items())))
        check(key not in out, "%s: duplicate sample %r" % (family.name, key))
        out[key] = s.value
    return out


def compare_samples(fmt, name, got, want):
    check(set(got) == set(want), "%s %s: sample keys differ:\n    missing %r\n    extra %r"
          % (fmt, name, sorted(set(want) - set(got)), sorted(set(got) - set(want))))
    for key in set(got) & set(want):
        check(same_value(got[key], want[key]),
              "%s %s %r: got %r, want %r" % (fmt, name, key, got[key], want[key]))


def check_logins(fmt, samples, suffix):
    """The overflow family: real users plus one pm_overflow series, total 6."""
    total = 0
    overflow = 0
    for (sfx, labels), value in samples.items():
        if sfx != suffix:
            continue
        labels = dict(labels)
        if labels == {"pm_overflow": "true"}:
            overflow += 1
        else:
            check(set(labels) == {"user"} and labels["user"] in LOGIN_USERS,
                  "%s app_logins: unexpected labels %r" % (fmt, labels))
        total += value
    check(overflow == 1, "%s app_logins: %d overflow series, want 1" % (fmt, overflow))
    check(total == 6, "%s app_logins: total %r, want 6" % (fmt, total))


def check_prometheus(text):
    # Text format 0.0.4 has no exemplars.
    check(" # {" not in text and EXEMPLAR_TRACE not in text, "prometheus: output carries exemplars")
    families = {f.name: f for f in parse_prometheus(text)}
    check(len(families) > len(EXPECTED), "prometheus: only %d families" % len(families))
    for name, want in EXPECTED.items():
        f = families.get(name)
        if not check(f is not None, "prometheus: family %s missing" % name):
            continue
        check(f.type == want["type"], "prometheus %s: type %s" % (name, f.type))
        check(f.documentation == want["help"], "prometheus %s: help %r" % (name, f.documentation))
        compare_samples("prometheus", name, samples_of(f), want["samples"])
    f = families.get("app_logins")
    if check(f is not None, "prometheus: app_logins missing"):
        check_logins("prometheus", samples_of(f), "_total")
    return {n: f.type for n, f in families.items()}


def check_openmetrics(text):
    check(text.endswith("# EOF\n"), "openmetrics: does not end with '# EOF\\n'")
    try:
        families = {f.name: f for f in parse_openmetrics(text)}
    except ValueError as e:
        check(False, "openmetrics parser rejected the output: %s" % e)
        return {}
    for name, want in EXPECTED.items():
        f = families.get(name)
        if not check(f is not None, "openmetrics: family %s missing" % name):
            continue
        check(f.type == want["type"], "openmetrics %s: type %s" % (name, f.type))
        check(f.documentation == want["help"], "openmetrics %s: help %r" % (name, f.documentation))
        check(f.unit == want["unit"], "openmetrics %s: unit %r" % (name, f.unit))
        got = samples_of(f, drop=("_created",))
        expected = dict(want["samples"])
        if name == "app_clock_offset_seconds":
            # Negative bounds: OpenMetrics forbids _sum, and _count goes with it.
            expected = {k: v for k, v in expected.items() if k[0] == "_bucket"}
        compare_samples("openmetrics", name, got, expected)
        if want["type"] in ("counter", "histogram"):
            created = [s for s in f.samples if s.name == name + "_created"]
            series = {k[1] for k in expected if k[0] in ("_total", "_count", "_bucket")}
            series = {tuple(kv for kv in labels if kv[0] != "le") for labels in series}
            check(len(created) == len(series),
                  "openmetrics %s: %d _created samples for %d series" % (name, len(created), len(series)))
            for s in created:
                check(1e9 < s.value < 4.2e9, "openmetrics %s: implausible _created %r" % (name, s.value))
    f = families.get("app_logins")
    if check(f is not None, "openmetrics: app_logins missing"):
        check_logins("openmetrics", samples_of(f, drop=("_created",)), "_total")
    got = {}
    for f in families.values():
        for s in f.samples:
            if s.exemplar is None:
                continue
            key = (f.name, s.name[len(f.name):], tuple(sorted(s.labels.items())))
            e = s.exemplar
            got[key] = e
            check(set(e.labels) == {"trace_id", "span_id"} and re.fullmatch("[0-9a-f]{32}", e.labels.get("trace_id", ""))
                  and re.fullmatch("[0-9a-f]{16}", e.labels.get("span_id", "")),
                  "openmetrics %r: exemplar labels %r" % (key, e.labels))
            check(e.timestamp is not None and 1e9 < float(e.timestamp) < 4.2e9,
                  "openmetrics %r: exemplar timestamp %r" % (key, e.timestamp))
            if key[1] == "_bucket":
                check_in_bucket(f, s, e.value)
    compare_exemplars("openmetrics", {k: (e.labels.get("trace_id"), e.labels.get("span_id"), e.value)
                                      for k, e in got.items()})
    return {n: f.type for n, f in families.items()}


def check_in_bucket(family, sample, value):
    """OpenMetrics: a bucket's exemplar lies in (previous le, le]."""
    les = sorted({float(s.labels["le"]) for s in family.samples if s.name.endswith("_bucket")})
    le = float(sample.labels["le"])
    prev = max([x for x in les if x < le], default=-math.inf)
    check(prev < value <= le, "openmetrics %s %r: exemplar value %r outside (%r, %r]"
          % (family.name, sample.labels, value, prev, le))


def compare_exemplars(fmt, got):
    """got: {(family, suffix, sorted labels): (trace id hex, span id hex, value)}."""
    want = {k: (EXEMPLAR_TRACE, "%016x" % span, v) for k, (span, v) in EXPECTED_EXEMPLARS.items()}
    check(set(got) == set(want), "%s exemplars: keys differ:\n    missing %r\n    extra %r"
          % (fmt, sorted(set(want) - set(got)), sorted(set(got) - set(want))))
    for key in set(got) & set(want):
        check(got[key] == want[key], "%s exemplar %r: got %r, want %r" % (fmt, key, got[key], want[key]))


def check_promtool(raw):
    promtool = shutil.which("promtool")
    if promtool is None:
        if os.environ.get("PM_ALLOW_MISSING_TOOLS") == "1":
            print("  promtool not found; skipped (PM_ALLOW_MISSING_TOOLS=1)")
            return
        check(False, "promtool not found (install it, or set PM_ALLOW_MISSING_TOOLS=1)")
        return
    proc = subprocess.run([promtool, "check", "metrics"], input=raw, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, timeout=60)
    out = proc.stdout.decode(errors="replace").strip()
    # Exit 1 is a parse error, 3 a lint finding. Neither is tolerated: every
    # family here has HELP, counters end in _total and units are base units,
    # so a lint finding means the formatter (or a name) regressed.
    check(proc.returncode == 0, "promtool check metrics exited %d:\n%s" % (proc.returncode, out))


def with_timestamps(text, ts):
    """The OpenMetrics text with timestamp `ts` after every sample value (the
    backfiller needs one); label values are scanned with their escapes, so a
    hostile one cannot shift the insertion point."""
    out = []
    for line in text.split("\n"):
        if not line or line.startswith("#"):
            out.append(line)
            continue
        i = line.find("{")
        j = line.find(" ")
        if i != -1 and i < j:
            quoted = False
            k = i + 1
            while k < len(line):
                ch = line[k]
                if quoted and ch == "\\":
                    k += 2
                    continue
                if ch == '"':
                    quoted = not quoted
                elif ch == "}" and not quoted:
                    break
                k += 1
            j = k + 1  # the space after the labels
        value_end = line.find(" ", j + 1)
        if value_end == -1:
            out.append(line + " " + ts)
        else:
            out.append(line[:value_end] + " " + ts + line[value_end:])
    return "\n".join(out)


def check_promtool_openmetrics(text):
    """Prometheus's own OpenMetrics parser (the scraper's, via the backfiller)
    on the text with exemplars: `promtool check metrics` reads only the
    Prometheus 0.0.4 format and rejects exemplars by design."""
    promtool = shutil.which("promtool")
    if promtool is None:
        if os.environ.get("PM_ALLOW_MISSING_TOOLS") != "1":
            check(False, "promtool not found (install it, or set PM_ALLOW_MISSING_TOOLS=1)")
        return
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "om.txt")
        with open(src, "w", encoding="utf-8") as f:
            f.write(with_timestamps(text, str(int(time.time()) - 3600)))
        proc = subprocess.run([promtool, "tsdb", "create-blocks-from", "openmetrics", src,
                               os.path.join(tmp, "blocks")],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
        out = proc.stdout.decode(errors="replace").strip()
        check(proc.returncode == 0, "promtool tsdb create-blocks-from openmetrics exited %d:\n%s"
              % (proc.returncode, out))


def json_number_or_null(v):
    return v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))


def reject_constant(token):
    raise ValueError("non-standard JSON token %s" % token)


def json_value(v):
    """The JSON spelling of an expected value: non-finite numbers are null."""
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def check_json(text):
    try:
        doc = json.loads(text, parse_constant=reject_constant)
    except ValueError as e:
        check(False, "json: not valid JSON: %s" % e)
        return {}
    if not check(isinstance(doc, dict) and set(doc) == {"timestamp", "families"},
                 "json: top level keys %r" % (list(doc) if isinstance(doc, dict) else doc)):
        return {}
    check(isinstance(doc["timestamp"], (int, float)) and 1e9 < doc["timestamp"] < 4.2e9,
          "json: timestamp %r" % doc["timestamp"])
    check(isinstance(doc["families"], list), "json: families is not a list")
    names = [f.get("name") for f in doc["families"]]
    check(names == sorted(names), "json: families not sorted by name")
    types = {}
    exemplars = {}
    for fam in doc["families"]:
        fkeys = {"name", "help", "unit", "type", "labels", "series"}
        if not check(set(fam) == fkeys, "json: family keys %r" % sorted(fam)):
            continue
        name = fam["name"]
        types[name] = fam["type"]
        check(all(isinstance(fam[k], str) for k in ("name", "help", "unit", "type")),
              "json %s: name/help/unit/type not strings" % name)
        check(fam["type"] in ("counter", "gauge", "histogram"), "json %s: type %r" % (name, fam["type"]))
        check(isinstance(fam["labels"], list) and all(isinstance(x, str) for x in fam["labels"]),
              "json %s: labels %r" % (name, fam["labels"]))
        for s in fam["series"]:
            check_json_series(fam, s)
        want = EXPECTED.get(name)
        if want:
            check(fam["help"] == want["help"], "json %s: help %r" % (name, fam["help"]))
            check(fam["unit"] == want["unit"], "json %s: unit %r" % (name, fam["unit"]))
            check(fam["type"] == want["type"], "json %s: type %r" % (name, fam["type"]))
            check(fam["labels"] == want["labels"], "json %s: labels %r" % (name, fam["labels"]))
            compare_samples("json", name, json_samples(fam), {k: json_value(v) for k, v in want["samples"].items()})
        for s in fam["series"]:
            for e in s.get("exemplars", []) if isinstance(s, dict) else []:
                labels = {"pm_overflow": "true"} if s.get("overflow") else dict(s.get("labels", {}))
                suffix = "_total"
                if fam["type"] == "histogram":
                    suffix = "_bucket"
                    labels["le"] = "+Inf" if e.get("le") == "+Inf" else canonical(e.get("le"))
                exemplars[(name, suffix, tuple(sorted(labels.items())))] = (
                    e.get("trace_id"), e.get("span_id"), e.get("value"))
        if name == "app_logins":
            check_logins("json", json_samples(fam), "_total")
            check(sum(1 for s in fam["series"] if s.get("overflow") is True) == 1,
                  "json app_logins: want exactly one overflow series")
    compare_exemplars("json", exemplars)
    return types


def check_json_series(fam, s):
    name = fam["name"]
    common = {"labels", "overflow", "created"}
    extra = ({"count", "sum", "min", "max", "mean", "stddev", "quantiles", "buckets"}
             if fam["type"] == "histogram" else {"value"})
    if not check(isinstance(s, dict) and set(s) - {"exemplars"} == common | extra,
                 "json %s: series keys %r" % (name, s)):
        return
    if "exemplars" in s:
        check_json_exemplars(fam, s)
    check(isinstance(s["overflow"], bool), "json %s: overflow %r" % (name, s["overflow"]))
    check(isinstance(s["labels"], dict) and all(isinstance(v, str) for v in s["labels"].values()),
          "json %s: labels %r" % (name, s["labels"]))
    if s["overflow"]:
        check(s["labels"] == {}, "json %s: overflow series with labels %r" % (name, s["labels"]))
    else:
        check(list(s["labels"]) == fam["labels"], "json %s: label keys %r" % (name, list(s["labels"])))
    check(json_number_or_null(s["created"]), "json %s: created %r" % (name, s["created"]))
    if fam["type"] != "histogram":
        check(json_number_or_null(s["value"]), "json %s: value %r" % (name, s["value"]))
        return
    check(isinstance(s["count"], int) and s["count"] >= 0, "json %s: count %r" % (name, s["count"]))
    for k in ("sum", "min", "max", "mean", "stddev"):
        check(json_number_or_null(s[k]), "json %s: %s %r" % (name, k, s[k]))
    q = s["quantiles"]
    check(isinstance(q, dict) and set(q) == {"0.5", "0.9", "0.99", "0.999"}
          and all(json_number_or_null(v) for v in q.values()), "json %s: quantiles %r" % (name, q))
    if s["count"] > 0 and s["min"] is not None:
        check(all(s["min"] * 0.99 - 1e-12 <= v <= s["max"] * 1.01 + 1e-12 for v in q.values() if v is not None)
              if s["min"] >= 0 else True, "json %s: quantiles %r outside [min, max]" % (name, q))
    b = s["buckets"]
    ok = isinstance(b, list) and len(b) >= 1 and all(isinstance(x, dict) and set(x) == {"le", "count"} for x in b)
    if not check(ok, "json %s: buckets %r" % (name, b)):
        return
    check(b[-1]["le"] == "+Inf" and b[-1]["count"] == s["count"], "json %s: last bucket %r" % (name, b[-1]))
    les = [x["le"] for x in b[:-1]]
    check(all(json_number_or_null(x) and x is not None for x in les) and les == sorted(les)
          and len(set(les)) == len(les), "json %s: bucket bounds %r" % (name, les))
    counts = [x["count"] for x in b]
    check(all(isinstance(c, int) for c in counts) and counts == sorted(counts),
          "json %s: bucket counts not cumulative %r" % (name, counts))


def check_json_exemplars(fam, s):
    name = fam["name"]
    ex = s["exemplars"]
    if not check(isinstance(ex, list) and len(ex) >= 1 and fam["type"] in ("counter", "histogram"),
                 "json %s: exemplars %r" % (name, ex)):
        return
    keys = {"value", "timestamp", "trace_id", "span_id"} | ({"le"} if fam["type"] == "histogram" else set())
    for e in ex:
        if not check(isinstance(e, dict) and set(e) == keys, "json %s: exemplar %r" % (name, e)):
            continue
        check(json_number_or_null(e["value"]) and isinstance(e["timestamp"], (int, float))
              and 1e9 < e["timestamp"] < 4.2e9, "json %s: exemplar value/timestamp %r" % (name, e))
        check(isinstance(e["trace_id"], str) and re.fullmatch("[0-9a-f]{32}", e["trace_id"])
              and isinstance(e["span_id"], str) and re.fullmatch("[0-9a-f]{16}", e["span_id"]),
              "json %s: exemplar ids %r" % (name, e))
    if fam["type"] == "histogram":
        les = [b["le"] for b in s["buckets"]]
        check(all(e.get("le") in les for e in ex if isinstance(e, dict))
              and len({str(e.get("le")) for e in ex if isinstance(e, dict)}) == len(ex),
              "json %s: exemplar le values %r not distinct buckets" % (name, ex))


def canonical(le):
    """The OpenMetrics canonical text of a JSON bucket bound."""
    f = float(le)
    for fam in EXPECTED.values():
        for text in fam.get("bounds", []):
            if float(text) == f:
                return text
    return repr(f)


def json_samples(fam):
    """A JSON family in the {(suffix, labels): value} form of the text parsers."""
    out = {}
    for s in fam["series"]:
        labels = {"pm_overflow": "true"} if s["overflow"] else dict(s["labels"])
        key_labels = tuple(sorted(labels.items()))
        if fam["type"] == "counter":
            out[("_total", key_labels)] = s["value"]
        elif fam["type"] == "gauge":
            out[("", key_labels)] = s["value"]
        else:
            for b in s["buckets"]:
                le = "+Inf" if b["le"] == "+Inf" else canonical(b["le"])
                out[("_bucket", tuple(sorted(dict(labels, le=le).items())))] = b["count"]
            out[("_count", key_labels)] = s["count"]
            out[("_sum", key_labels)] = s["sum"]
    return out


def main():
    exe = built_program("dump_exposition")
    if not exe:
        return summary("validate_exposition")
    print("using " + exe)
    prom_text, prom_raw = dump(exe, "prometheus")
    om_text, _ = dump(exe, "openmetrics")
    json_text, _ = dump(exe, "json")

    prom_types = check_prometheus(prom_text)
    check_promtool(prom_raw)
    om_types = check_openmetrics(om_text)
    check_promtool_openmetrics(om_text)
    json_types = check_json(json_text)
    # The same families with the same types in all three formats (the
    # library's own metrics included, whose values may differ between runs).
    check(prom_types == om_types == json_types,
          "family names/types differ between formats:\n    prometheus %r\n    openmetrics %r\n    json %r"
          % (sorted(prom_types.items()), sorted(om_types.items()), sorted(json_types.items())))

    return summary("validate_exposition")


if __name__ == "__main__":
    sys.exit(main())
