'use strict';
// The package as a user gets it: library discovery (each branch and the
// error), the ESM entry, the type declarations, exit with library threads
// running, and the example in examples/node.

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const pm = require('..');

const pkg = path.join(__dirname, '..');
const lib = pm.library.path;

function node(args, env, cwd) {
  const e = { ...process.env, ...env };
  for (const k of Object.keys(e)) if (e[k] === undefined) delete e[k];
  return spawnSync(process.execPath, args, { env: e, cwd: cwd || pkg, encoding: 'utf8', timeout: 60000 });
}

const PRINT = "console.log(require(process.argv[1]).library.path)";

test('discovery: PERFMETRICS_LIBRARY is used, and only it when set', () => {
  const ok = node(['-e', PRINT, pkg], { PERFMETRICS_LIBRARY: lib });
  assert.equal(ok.stdout.trim(), lib);
  const bad = node(['-e', PRINT, pkg], { PERFMETRICS_LIBRARY: '/nonexistent/libperfmetrics.so.1' });
  assert.notEqual(bad.status, 0);
  assert.match(bad.stderr, /cannot load libperfmetrics\.so\.1; tried:\n {2}PERFMETRICS_LIBRARY: \/nonexistent\/libperfmetrics\.so\.1 \(no such file\)/);
  const notlib = node(['-e', PRINT, pkg], { PERFMETRICS_LIBRARY: __filename });
  assert.match(notlib.stderr, /PERFMETRICS_LIBRARY: .*package\.test\.js \(.+\)/);
});

test('discovery: a copy next to the package, then the system path, then an error listing both', () => {
  // A copy of the package with the library beside it.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pm-node-'));
  try {
    fs.cpSync(path.join(pkg, 'lib'), path.join(dir, 'lib'), { recursive: true });
    fs.copyFileSync(path.join(pkg, 'package.json'), path.join(dir, 'package.json'));
    fs.symlinkSync(path.join(pkg, 'node_modules'), path.join(dir, 'node_modules'));
    const none = node(['-e', PRINT, dir], { PERFMETRICS_LIBRARY: undefined, LD_LIBRARY_PATH: undefined });
    if (none.status === 0) {
      // An installed library answered from the system path: that branch works.
      assert.doesNotMatch(none.stdout, new RegExp(dir));
    } else {
      assert.match(none.stderr, /tried:\n {2}next to the package: .*libperfmetrics\.so\.1 \(no such file\)\n {2}system search path: libperfmetrics\.so\.1 \(.+\)\nSet PERFMETRICS_LIBRARY/);
    }
    const viaPath = node(['-e', PRINT, dir], { PERFMETRICS_LIBRARY: undefined, LD_LIBRARY_PATH: path.dirname(lib) });
    assert.equal(viaPath.status, 0, viaPath.stderr);
    assert.equal(viaPath.stdout.trim(), 'libperfmetrics.so.1');
    fs.copyFileSync(lib, path.join(dir, 'libperfmetrics.so.1'));
    const beside = node(['-e', PRINT, dir], { PERFMETRICS_LIBRARY: undefined });
    assert.equal(beside.stdout.trim(), path.join(dir, 'libperfmetrics.so.1'));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('ESM entry: named and default exports are the CommonJS module\'s', () => {
  const code = `
    import pm, { Counter, register, library } from ${JSON.stringify(path.join(pkg, 'lib', 'index.mjs'))};
    import { createRequire } from 'node:module';
    const cjs = createRequire(import.meta.url)(${JSON.stringify(pkg)});
    if (pm !== cjs || Counter !== cjs.Counter || register !== cjs.register) throw new Error('two instances');
    new Counter({ name: 'esm_total', help: 'h' }).inc(2);
    console.log(library.version, (await register.metrics()).includes('esm_total 2'));`;
  const r = node(['--input-type=module', '-e', code]);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout.trim(), `${pm.library.version} true`);
  const viaName = node(['--input-type=module', '-e', "import { Counter } from 'perfmetrics'; console.log(typeof Counter)"], {},
    path.join(pkg, 'test'));
  // Self-reference by package name resolves through package.json "exports".
  assert.equal(viaName.stdout.trim(), 'function', viaName.stderr);
});

test('types: index.d.ts declares every export and package.json points at it', () => {
  const dts = fs.readFileSync(path.join(pkg, 'index.d.ts'), 'utf8');
  for (const name of Object.keys(pm)) {
    assert.match(dts, new RegExp(`export (declare )?(class|function|const|type|interface) ${name}\\b`), name);
  }
  const pj = JSON.parse(fs.readFileSync(path.join(pkg, 'package.json'), 'utf8'));
  assert.equal(pj.exports['.'].types, './index.d.ts');
  assert.equal(pj.dependencies.koffi !== undefined, true);
  assert.equal(pj.devDependencies['prom-client'] !== undefined, true);
});

test('exit with a server, alert engine and tracer threads, an exporter timer and workers alive: clean', () => {
  const code = `
    const pm = require(${JSON.stringify(pkg)});
    const { Worker } = require('node:worker_threads');
    const t = new pm.Tracer({ registry: pm.register, flushSeconds: 0.01 });
    t.start();
    const e = new pm.AlertEngine({ interval: 0.01, rules: 'alert A {\\n  expr: up_total > 0\\n}\\n' });
    e.start();
    const s = pm.startServer({ port: 0, tracer: t, alertEngine: e });
    const c = new pm.Counter({ name: 'up', help: 'h' });
    c.inc();
    pm.register.addExporter('push', (snap) => snap.format());
    pm.register.startExporting(0.001);
    t.startSpan('open'); // never ended
    const w = new Worker('setInterval(() => {}, 1000)', { eval: true });
    w.on('online', async () => {
      await (await fetch(s.url + 'metrics')).text();
      console.log('exiting');
      process.exit(0);
    });`;
  const r = node(['-e', code]);
  assert.equal(r.signal, null, r.stderr);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, 'exiting\n');
});

test('examples/node/quickstart.js runs and prints what it scraped', () => {
  const example = path.join(pkg, '..', '..', 'examples', 'node', 'quickstart.js');
  const r = node([example]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^scraped http:\/\/127\.0\.0\.1:\d+\/metrics:$/m);
  assert.match(r.stdout, /http_requests_total\{route="\/orders",code="500"\} 2/);
  assert.match(r.stdout, /^alert ManyErrors is firing: 4 requests failed$/m);
});

test('types: prom-client-style TypeScript compiles against index.d.ts with --strict, misuse does not', () => {
  const tsc = path.join(pkg, 'node_modules', 'typescript', 'bin', 'tsc');
  const r = spawnSync(process.execPath, [tsc, '-p', path.join(__dirname, 'types')], { encoding: 'utf8', timeout: 120000 });
  // usage.ts marks its misuse with @ts-expect-error: tsc fails if one compiles.
  assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
});

test('doc/node.md names every export of the package', () => {
  const doc = fs.readFileSync(path.join(pkg, '..', '..', 'doc', 'node.md'), 'utf8');
  for (const name of Object.keys(pm)) assert.match(doc, new RegExp(`\\b${name}\\b`), name);
});

test('the FFI forms (a library without cells, or PERFMETRICS_NO_CELLS=1) pass the metric and worker tests', () => {
  const files = ['metrics.test.js', 'workers.test.js', 'exposition.test.js'].map((f) => path.join(__dirname, f));
  // A runner of its own (not a child reporting to this one).
  const r = node(['--test', '--test-reporter=tap', ...files], { PERFMETRICS_NO_CELLS: '1', NODE_TEST_CONTEXT: undefined });
  assert.equal(r.status, 0, r.stdout.split('\n').filter((l) => /^not ok|error:/.test(l.trim())).join('\n'));
  assert.match(r.stdout, /^# fail 0$/m);
  const probe = node(['-e', PRINT.replace('library.path', 'library.cells'), pkg], { PERFMETRICS_NO_CELLS: '1' });
  assert.equal(probe.stdout.trim(), 'false');
});

test('bench/bench_node.js runs (shortened) and prints its rows in bench/run\'s table format', () => {
  const bench = path.join(pkg, '..', '..', 'bench', 'bench_node.js');
  const r = node([bench], { BENCH_REPS: '7', BENCH_REP_MS: '1' });
  // Exit 1 only says a target was missed, which short repetitions may do.
  assert.ok(r.status === 0 || r.status === 1, r.stderr);
  const rows = r.stdout.trim().split('\n');
  // The cluster row needs shared cell blocks (1.7).
  assert.equal(rows.length, pm.library.cluster ? 10 : 9, r.stdout);
  for (const row of rows) {
    assert.match(row, /^\| node: .{34,} \| +1 \| +[\d.]+ \| .+ \(\d[\d.]*\) *\| +\d+\.\d\dx \| .+ \|$/, row);
  }
  assert.match(r.stdout, /10k series .*target >= 5x faster: (MET|MISSED)/);
  assert.match(r.stdout, /koffi call, pm_version\(\)/);
  if (pm.library.cluster) assert.match(r.stdout, /clusterMetrics\(\), 2 x 1k series .*target <= 1\.0: (MET|MISSED)/);
});

test('npm pack, then npm install --offline of the tarball into an app: require, import, and a library copy beside it', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pm-node-app-'));
  const npm = (args) => spawnSync('npm', args, { cwd: dir, encoding: 'utf8', timeout: 120000, env: { ...process.env, npm_config_update_notifier: 'false' } });
  try {
    const packed = npm(['pack', pkg, '--pack-destination', dir]);
    assert.equal(packed.status, 0, packed.stderr);
    const tgz = fs.readdirSync(dir).find((f) => f.startsWith('perfmetrics-') && f.endsWith('.tgz'));
    fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', private: true }));
    // koffi is packed from the binding's own node_modules (tests/run's npm
    // ci) and installed beside it: no network, and no dependence on npm's
    // cache holding koffi's registry metadata, which npm ci does not fetch.
    const koffiPacked = npm(['pack', path.join(pkg, 'node_modules', 'koffi'), '--pack-destination', dir]);
    assert.equal(koffiPacked.status, 0, koffiPacked.stderr);
    const koffiTgz = fs.readdirSync(dir).find((f) => f.startsWith('koffi-') && f.endsWith('.tgz'));
    const installed = npm(['install', '--offline', '--no-audit', '--no-fund', `./${koffiTgz}`, `./${tgz}`]);
    assert.equal(installed.status, 0, installed.stderr);
    const cjs = node(['-e', "const pm = require('perfmetrics'); new pm.Counter({ name: 'a', help: 'h' }).inc(); pm.register.metrics().then((t) => console.log(t.includes('a_total 1')))"], {}, dir);
    assert.equal(cjs.stdout.trim(), 'true', cjs.stderr);
    const esm = node(['--input-type=module', '-e', "import { library } from 'perfmetrics'; console.log(library.version)"], {}, dir);
    assert.equal(esm.stdout.trim(), pm.library.version, esm.stderr);
    const beside = path.join(dir, 'node_modules', 'perfmetrics', 'libperfmetrics.so.1');
    fs.copyFileSync(lib, beside);
    const own = node(['-e', "console.log(require('perfmetrics').library.path)"], { PERFMETRICS_LIBRARY: undefined }, dir);
    assert.equal(own.stdout.trim(), beside, own.stderr);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
