'use strict';
// Shared by the tests: a reader of exposition text for checking values, and
// promtool, the Prometheus project's own checker of the format.

const { spawnSync } = require('node:child_process');

// Samples of Prometheus or OpenMetrics text as a Map from
// 'name{label="value",...}' (labels as printed) to the number.
function samples(text) {
  const out = new Map();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    // name{labels} value [timestamp] [# exemplar]
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{.*?\})?) (\S+)/.exec(line);
    if (!m) throw new Error(`not a sample line: ${JSON.stringify(line)}`);
    const v = m[2] === '+Inf' ? Infinity : m[2] === '-Inf' ? -Infinity : Number(m[2]);
    out.set(m[1], v);
  }
  return out;
}

// Whether promtool can run here; when CI=true its absence is a failure.
function havePromtool() {
  const r = spawnSync('promtool', ['--version'], { encoding: 'utf8' });
  if (r.error && process.env.CI === 'true') throw new Error('promtool is required when CI=true (apt-get install prometheus)');
  return !r.error;
}

// promtool check metrics on the text: returns its exit status and output.
function promtool(text) {
  const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

// Polls fn() until it returns a truthy value or the deadline passes.
async function until(fn, ms = 10000) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`condition not met within ${ms} ms`);
    await new Promise((r) => setImmediate(r));
  }
}

module.exports = { samples, havePromtool, promtool, until };
