#!/usr/bin/python3
"""Validates the two span formats of pm_span_batch_format with a parser we did not write.

Runs tests/dump_spans (found at $PM_BUILD_ROOT/tests/dump_spans, or the newest
build*/tests/dump_spans of the source tree), which prints the hand-made batch
of tests/span_fixture.h, and:
  - OTLP JSON: loads it with json.loads (rejecting the NaN/Infinity tokens),
    then checks every object against the ExportTraceServiceRequest messages of
    opentelemetry-proto (trace.proto, common.proto, resource.proto) under the
    OTLP/JSON rules: lowerCamelCase field names only, trace/span ids as hex
    (32/16 digits, lower case, not all zero; parentSpanId absent for a root),
    int64/fixed64 as decimal strings, uint32/fixed32 as numbers, enums as
    integers (kind 1..5, status code 0..2), AnyValue with exactly one value,
    doubleValue a number or "NaN"/"Infinity"/"-Infinity"; then that the
    values are the fixture's (EXPECTED), hostile strings byte for byte;
  - the empty batch: a request without ResourceSpans;
  - JSONL: every line is one JSON object with exactly the fields of the schema
    in doc/span-formats.md, of the documented types, with the same values.
Prints "validate_spans: N passed, N failed"; exit status 0 only if all passed.
"""

import json
import math
import re
import sys

from pmcheck import built_program, check, run_dump, summary


# ---------------------------------------------------------------- expectations
# Keep in step with sf_fixture_build() in tests/span_fixture.h.

T0 = 1700000000000000000
QUOTES = 'say "hi"'
BACKSLASH = "C:\\dir\\"
NEWLINES = "multi\nline\r\n"
CONTROL = "ctl\x01\x1f\x7f\b\f\t end"
UTF8 = "é✓ üñí 😀"
FAKE_ESCAPE = "\\n is not a newline, \\u0041 not an A"
SERVICE = "svc " + QUOTES
VERSION_RE = re.compile(r"^\d+\.\d+\.\d+$")


def hex_id(base, n):
    return "".join("%02x" % ((base + i) & 0xFF) for i in range(n))


# attrs: (key, type, value) with type s(tring), i(nt), d(ouble), b(ool);
# events: (name, time, (key, value) or None).
EXPECTED = [
    dict(trace=hex_id(0x01, 16), span=hex_id(0xA0, 8), parent=None, remote=False,
         name="GET /items", kind=2, start=T0, end=T0 + 250000000, flags=1, code=1, message="",
         attrs=[("http.method", "s", "GET"), ("http.status_code", "i", 200), ("ratio", "d", 0.25),
                ("cached", "b", True), ("whole", "d", 2.0)],
         events=[("cache miss", T0 + 1000, ("key", "items:42")), ("done", T0 + 249000000, None)],
         dropped_attrs=0, dropped_events=0),
    dict(trace=hex_id(0x01, 16), span=hex_id(0xB0, 8), parent=hex_id(0xA0, 8), remote=False,
         name="db " + QUOTES, kind=3, start=T0 + 10000000, end=T0 + 200000000, flags=1, code=2,
         message="timeout: " + NEWLINES + CONTROL,
         attrs=[("quotes", "s", QUOTES), ("backslash", "s", BACKSLASH), ('k"\\\n\x01', "s", UTF8),
                ("fake", "s", FAKE_ESCAPE), ("min", "i", -(2 ** 63)), ("max", "i", 2 ** 63 - 1),
                ("nan", "d", float("nan")), ("inf", "d", float("inf")), ("-inf", "d", float("-inf")),
                ("tiny", "d", 5e-324), ("big", "d", 1e300), ("neg", "d", -1.5), ("no", "b", False)],
         events=[(CONTROL, T0 + 20000000, (BACKSLASH, NEWLINES)), (UTF8, T0 + 30000000, ("", ""))],
         dropped_attrs=3, dropped_events=1),
    dict(trace=hex_id(0xF0, 16), span=hex_id(0xC0, 8), parent=hex_id(0x11, 8), remote=True,
         name=UTF8, kind=5, start=T0 + 300000000, end=T0 + 300000000, flags=1, code=0, message="",
         attrs=[("messaging.system", "s", "kafka")], events=[], dropped_attrs=0, dropped_events=0),
    dict(trace=hex_id(0xD0, 16), span=hex_id(0xE0, 8), parent=None, remote=False,
         name="", kind=1, start=T0, end=T0 + 1, flags=0, code=0, message="",
         attrs=[], events=[], dropped_attrs=0, dropped_events=0),
]

KIND_NAMES = {1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}
STATUS_NAMES = {0: "unset", 1: "ok", 2: "error"}


def same(a, b):
    """Equal, with NaN equal to NaN and a float never equal to an int or bool."""
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or a == b
    return type(a) is type(b) and a == b


# ---------------------------------------------------------------- running


def dump(exe, fmt):
    return run_dump(exe, fmt)[0]

def reject_constant(token):
    raise ValueError("non-standard JSON token %s" % token)


def load(text, what):
    try:
        return json.loads(text, parse_constant=reject_constant)
    except ValueError as e:
        check(False, "%s is not strict JSON: %s" % (what, e))
        return None


# ------------------------------------------------- OTLP/JSON schema (the proto)
# Field kinds: "string", "bool", "double", "uint32"/"fixed32" (JSON numbers),
# "int64"/"fixed64" (decimal strings), "trace_id"/"span_id" (hex), ("enum", lo, hi),
# a message name, or ("repeated", kind). Only fields of the proto are allowed.

MESSAGES = {
    "ExportTraceServiceRequest": {"resourceSpans": ("repeated", "ResourceSpans")},
    "ResourceSpans": {"resource": "Resource", "scopeSpans": ("repeated", "ScopeSpans"),
                      "schemaUrl": "string"},
    "Resource": {"attributes": ("repeated", "KeyValue"), "droppedAttributesCount": "uint32"},
    "ScopeSpans": {"scope": "InstrumentationScope", "spans": ("repeated", "Span"),
                   "schemaUrl": "string"},
    "InstrumentationScope": {"name": "string", "version": "string",
                             "attributes": ("repeated", "KeyValue"),
                             "droppedAttributesCount": "uint32"},
    "Span": {"traceId": "trace_id", "spanId": "span_id", "traceState": "string",
             "parentSpanId": "span_id", "flags": "fixed32", "name": "string",
             "kind": ("enum", 1, 5),  # SPAN_KIND_INTERNAL..CONSUMER (0 is "do not use")
             "startTimeUnixNano": "fixed64", "endTimeUnixNano": "fixed64",
             "attributes": ("repeated", "KeyValue"), "droppedAttributesCount": "uint32",
             "events": ("repeated", "Event"), "droppedEventsCount": "uint32",
             "links": ("repeated", "Link"), "droppedLinksCount": "uint32", "status": "Status"},
    "Event": {"timeUnixNano": "fixed64", "name": "string", "attributes": ("repeated", "KeyValue"),
              "droppedAttributesCount": "uint32"},
    "Link": {"traceId": "trace_id", "spanId": "span_id", "traceState": "string",
             "attributes": ("repeated", "KeyValue"), "droppedAttributesCount": "uint32",
             "flags": "fixed32"},
    "Status": {"message": "string", "code": ("enum", 0, 2)},
    "KeyValue": {"key": "string", "value": "AnyValue"},
    "AnyValue": {"stringValue": "string", "boolValue": "bool", "intValue": "int64",
                 "doubleValue": "double", "arrayValue": "ArrayValue",
                 "kvlistValue": "KeyValueList", "bytesValue": "string"},
    "ArrayValue": {"values": ("repeated", "AnyValue")},
    "KeyValueList": {"values": ("repeated", "KeyValue")},
}

# Fields the library always writes (proto3 lets a writer omit defaults; we
# promise these). parentSpanId is checked separately: present iff not a root.
REQUIRED = {
    "ExportTraceServiceRequest": ["resourceSpans"],
    "ResourceSpans": ["resource", "scopeSpans"],
    "Resource": ["attributes"],
    "ScopeSpans": ["scope", "spans"],
    "InstrumentationScope": ["name", "version"],
    "Span": ["traceId", "spanId", "flags", "name", "kind", "startTimeUnixNano", "endTimeUnixNano",
             "attributes", "droppedAttributesCount", "events", "droppedEventsCount", "status"],
    "Event": ["timeUnixNano", "name", "attributes"],
    "Status": ["code", "message"],
    "KeyValue": ["key", "value"],
}

HEX_RE = re.compile(r"^[0-9a-f]*$")
U64_RE = re.compile(r"^(0|[1-9][0-9]*)$")
I64_RE = re.compile(r"^(0|-?[1-9][0-9]*)$")


def is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def check_field(kind, v, where):
    if isinstance(kind, tuple) and kind[0] == "repeated":
        if check(isinstance(v, list), "%s: not an array" % where):
            for i, item in enumerate(v):
                check_field(kind[1], item, "%s[%d]" % (where, i))
        return
    if isinstance(kind, tuple) and kind[0] == "enum":
        check(is_int(v) and kind[1] <= v <= kind[2],
              "%s: %r is not an integer enum value in %d..%d" % (where, v, kind[1], kind[2]))
        return
    if kind in MESSAGES:
        check_message(kind, v, where)
    elif kind == "string":
        check(isinstance(v, str), "%s: %r is not a string" % (where, v))
    elif kind == "bool":
        check(isinstance(v, bool), "%s: %r is not a bool" % (where, v))
    elif kind == "double":
        check((isinstance(v, (int, float)) and not isinstance(v, bool))
              or v in ("NaN", "Infinity", "-Infinity"),
              "%s: %r is not a proto3 JSON double" % (where, v))
    elif kind in ("uint32", "fixed32"):
        check(is_int(v) and 0 <= v < 2 ** 32, "%s: %r is not a %s number" % (where, v, kind))
    elif kind == "fixed64":
        check(isinstance(v, str) and U64_RE.match(v) is not None and int(v) < 2 ** 64,
              "%s: %r is not a fixed64 decimal string" % (where, v))
    elif kind == "int64":
        check(isinstance(v, str) and I64_RE.match(v) is not None
              and -(2 ** 63) <= int(v) < 2 ** 63,
              "%s: %r is not an int64 decimal string" % (where, v))
    elif kind in ("trace_id", "span_id"):
        n = 32 if kind == "trace_id" else 16
        check(isinstance(v, str) and len(v) == n and HEX_RE.match(v) is not None
              and v != "0" * n, "%s: %r is not a non-zero %d-digit lower-case hex id"
              % (where, v, n))
    else:
        check(False, "%s: unknown schema kind %r" % (where, kind))


def check_message(name, obj, where):
    if not check(isinstance(obj, dict), "%s: %s is not an object" % (where, name)):
        return
    fields = MESSAGES[name]
    for key, v in obj.items():
        if check(key in fields, "%s: %s has no field %r" % (where, name, key)):
            check_field(fields[key], v, "%s.%s" % (where, key))
    for key in REQUIRED.get(name, []):
        check(key in obj, "%s: %s lacks %r" % (where, name, key))
    if name == "AnyValue":
        check(len(obj) == 1, "%s: AnyValue with %d values" % (where, len(obj)))


def any_value(v):
    """(type letter, Python value) of an OTLP AnyValue."""
    if "stringValue" in v:
        return "s", v["stringValue"]
    if "intValue" in v:
        return "i", int(v["intValue"])
    if "boolValue" in v:
        return "b", v["boolValue"]
    if "doubleValue" in v:
        d = v["doubleValue"]
        return "d", float(d) if isinstance(d, str) else float(d)
    return "?", None


def check_otlp(text):
    check(text.endswith("\n"), "otlp: no final newline")
    doc = load(text, "otlp")
    if doc is None:
        return
    check_message("ExportTraceServiceRequest", doc, "otlp")
    try:
        rs = doc["resourceSpans"]
        check(len(rs) == 1, "otlp: %d ResourceSpans, want 1" % len(rs))
        attrs = rs[0]["resource"]["attributes"]
        check([(a["key"], any_value(a["value"])) for a in attrs] == [("service.name", ("s", SERVICE))],
              "otlp: resource attributes %r" % attrs)
        ss = rs[0]["scopeSpans"]
        check(len(ss) == 1, "otlp: %d ScopeSpans, want 1" % len(ss))
        scope = ss[0]["scope"]
        check(scope.get("name") == "libperfmetrics" and VERSION_RE.match(scope.get("version", "")),
              "otlp: scope %r" % scope)
        spans = ss[0]["spans"]
    except (KeyError, IndexError, TypeError) as e:
        check(False, "otlp: envelope: %r" % e)
        return
    if not check(len(spans) == len(EXPECTED), "otlp: %d spans, want %d" % (len(spans), len(EXPECTED))):
        return
    for i, (s, e) in enumerate(zip(spans, EXPECTED)):
        w = "otlp span %d" % i
        try:
            check(s["traceId"] == e["trace"], "%s traceId %r" % (w, s["traceId"]))
            check(s["spanId"] == e["span"], "%s spanId %r" % (w, s["spanId"]))
            check(s.get("parentSpanId") == e["parent"],
                  "%s parentSpanId %r, want %r" % (w, s.get("parentSpanId"), e["parent"]))
            # W3C flags | CONTEXT_HAS_IS_REMOTE (0x100) | CONTEXT_IS_REMOTE (0x200)
            want_flags = e["flags"] | 0x100 | (0x200 if e["remote"] else 0)
            check(s["flags"] == want_flags, "%s flags %r, want %r" % (w, s["flags"], want_flags))
            check(s["name"] == e["name"], "%s name %r, want %r" % (w, s["name"], e["name"]))
            check(s["kind"] == e["kind"], "%s kind %r" % (w, s["kind"]))
            check(int(s["startTimeUnixNano"]) == e["start"], "%s start %r" % (w, s["startTimeUnixNano"]))
            check(int(s["endTimeUnixNano"]) == e["end"], "%s end %r" % (w, s["endTimeUnixNano"]))
            got = [(a["key"],) + any_value(a["value"]) for a in s["attributes"]]
            check(len(got) == len(e["attrs"]) and all(
                g[0] == x[0] and g[1] == x[1] and same(g[2], x[2]) for g, x in zip(got, e["attrs"])),
                "%s attributes %r, want %r" % (w, got, e["attrs"]))
            # Finite doubles stay JSON floats ("2.0"), so a reader keeps the type.
            for a in s["attributes"]:
                d = a["value"].get("doubleValue")
                if d is not None and not isinstance(d, str):
                    check(isinstance(d, float), "%s %s: doubleValue %r parsed as int" % (w, a["key"], d))
            check(s["droppedAttributesCount"] == e["dropped_attrs"], "%s droppedAttributesCount" % w)
            check(s["droppedEventsCount"] == e["dropped_events"], "%s droppedEventsCount" % w)
            got_ev = []
            for ev in s["events"]:
                kv = [(a["key"],) + any_value(a["value"]) for a in ev["attributes"]]
                got_ev.append((ev["name"], int(ev["timeUnixNano"]),
                               (kv[0][0], kv[0][2]) if kv else None))
                check(all(k[1] == "s" for k in kv) and len(kv) <= 1, "%s event attributes %r" % (w, kv))
            check(got_ev == e["events"], "%s events %r, want %r" % (w, got_ev, e["events"]))
            check(s["status"] == {"code": e["code"], "message": e["message"]},
                  "%s status %r" % (w, s["status"]))
        except (KeyError, TypeError, ValueError) as ex:
            check(False, "%s: %r" % (w, ex))


def check_otlp_empty(text):
    doc = load(text, "otlp-empty")
    if doc is None:
        return
    check_message("ExportTraceServiceRequest", doc, "otlp-empty")
    check(doc == {"resourceSpans": []}, "otlp-empty: %r" % doc)


# ---------------------------------------------------------------- JSONL

JSONL_FIELDS = ["trace_id", "span_id", "parent_span_id", "parent_remote", "name", "kind",
                "start_unix_nano", "end_unix_nano", "duration_ns", "status", "status_message",
                "attributes", "events", "dropped_attributes", "dropped_events", "service"]


def jsonl_value(kind, v):
    """The JSONL spelling of an expected attribute value."""
    if kind == "d" and not math.isfinite(v):
        return None
    return v


def check_jsonl(text):
    check(text.endswith("\n"), "jsonl: no final newline")
    lines = text.split("\n")[:-1]
    if not check(len(lines) == len(EXPECTED), "jsonl: %d lines, want %d" % (len(lines), len(EXPECTED))):
        return
    for i, (line, e) in enumerate(zip(lines, EXPECTED)):
        w = "jsonl line %d" % (i + 1)
        s = load(line, w)
        if not check(isinstance(s, dict), "%s: not an object" % w):
            continue
        check(list(s.keys()) == JSONL_FIELDS, "%s: fields %r" % (w, list(s.keys())))
        try:
            check(s["trace_id"] == e["trace"], "%s trace_id %r" % (w, s["trace_id"]))
            check(s["span_id"] == e["span"], "%s span_id %r" % (w, s["span_id"]))
            check(s["parent_span_id"] == e["parent"], "%s parent_span_id %r" % (w, s["parent_span_id"]))
            check(s["parent_remote"] is e["remote"], "%s parent_remote %r" % (w, s["parent_remote"]))
            check(s["name"] == e["name"], "%s name %r" % (w, s["name"]))
            check(s["kind"] == KIND_NAMES[e["kind"]], "%s kind %r" % (w, s["kind"]))
            for key, want in (("start_unix_nano", e["start"]), ("end_unix_nano", e["end"]),
                              ("duration_ns", e["end"] - e["start"]),
                              ("dropped_attributes", e["dropped_attrs"]),
                              ("dropped_events", e["dropped_events"])):
                check(is_int(s[key]) and s[key] == want, "%s %s %r, want %r" % (w, key, s[key], want))
            check(s["status"] == STATUS_NAMES[e["code"]], "%s status %r" % (w, s["status"]))
            check(s["status_message"] == e["message"], "%s status_message %r" % (w, s["status_message"]))
            got = list(s["attributes"].items())
            want = [(k, jsonl_value(t, v)) for k, t, v in e["attrs"]]
            check(len(got) == len(want) and all(g[0] == x[0] and same(g[1], x[1])
                                                for g, x in zip(got, want)),
                  "%s attributes %r, want %r" % (w, got, want))
            got_ev = []
            for ev in s["events"]:
                check(list(ev.keys()) == ["name", "time_unix_nano", "attributes"],
                      "%s event fields %r" % (w, list(ev.keys())))
                a = list(ev["attributes"].items())
                got_ev.append((ev["name"], ev["time_unix_nano"], a[0] if a else None))
            check(got_ev == e["events"], "%s events %r, want %r" % (w, got_ev, e["events"]))
            check(s["service"] == SERVICE, "%s service %r" % (w, s["service"]))
        except (KeyError, TypeError, AttributeError) as ex:
            check(False, "%s: %r" % (w, ex))


def main():
    exe = built_program("dump_spans")
    if not exe:
        return summary("validate_spans")
    print("using " + exe)
    check_otlp(dump(exe, "otlp"))
    check_otlp_empty(dump(exe, "otlp-empty"))
    check_jsonl(dump(exe, "jsonl"))
    return summary("validate_spans")


if __name__ == "__main__":
    sys.exit(main())
