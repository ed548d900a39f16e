// Decodes an OTLP/HTTP JSON body with OpenTelemetry's own message
// definitions (the protobufjs code generated from opentelemetry-proto that
// @opentelemetry/otlp-transformer ships) and prints what they make of it.
//
//   node check_otlp.js metrics|traces BODY.json
//
// The body is read as the OTLP JSON mapping says (ids in hex, 64-bit
// integers as strings, enums as numbers), turned into a message with
// fromObject, checked with verify, encoded to protobuf bytes and decoded
// again, and printed as JSON (toObject with longs as strings, ids as hex,
// defaults left out): tests/validate_otlp.py compares it field by field with
// the body. A field the definitions do not know is lost on the way, so the
// comparison finds it. Exit 0, or 1 with a message on stderr.
"use strict";

const fs = require("fs");
const path = require("path");

const generated = path.join(__dirname, "node_modules", "@opentelemetry", "otlp-transformer",
                            "build", "src", "generated", "root.js");
const root = require(generated);
const v1 = root.opentelemetry.proto.collector;

const [kind, file] = process.argv.slice(2);
const Type = kind === "metrics" ? v1.metrics.v1.ExportMetricsServiceRequest
           : kind === "traces" ? v1.trace.v1.ExportTraceServiceRequest : null;
if (!Type || !file) {
    process.stderr.write("usage: node check_otlp.js metrics|traces BODY.json\n");
    process.exit(2);
}

const ID_KEYS = new Set(["traceId", "spanId", "parentSpanId"]);

// OTLP JSON ids are hex; protobufjs reads a string for bytes as base64.
function idsFromHex(v) {
    if (Array.isArray(v)) return v.map(idsFromHex);
    if (v && typeof v === "object") {
        const out = {};
        for (const [k, x] of Object.entries(v)) {
            if (ID_KEYS.has(k)) {
                if (typeof x !== "string" || !/^([0-9a-f]{2})*$/.test(x))
                    throw new Error(k + " is not lower-case hex: " + JSON.stringify(x));
                out[k] = Buffer.from(x, "hex");
            } else {
                out[k] = idsFromHex(x);
            }
        }
        return out;
    }
    return v;
}

function idsToHex(v) {
    if (Array.isArray(v)) return v.map(idsToHex);
    if (v && typeof v === "object") {
        const out = {};
        for (const [k, x] of Object.entries(v))
            out[k] = ID_KEYS.has(k) ? Buffer.from(x, "base64").toString("hex") : idsToHex(x);
        return out;
    }
    return v;
}

try {
    const body = JSON.parse(fs.readFileSync(file, "utf8"));
    const msg = Type.fromObject(idsFromHex(body));
    const err = Type.verify(msg);
    if (err) throw new Error("verify: " + err);
    const bytes = Type.encode(msg).finish();
    const back = Type.decode(bytes);
    const obj = Type.toObject(back, {longs: String, enums: Number, bytes: String, json: true});
    process.stdout.write(JSON.stringify({bytes: bytes.length, message: idsToHex(obj)}) + "\n");
} catch (e) {
    process.stderr.write("check_otlp: " + e.message + "\n");
    process.exit(1);
}
