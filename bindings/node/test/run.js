'use strict';
// Runs every test/*.test.js with node's built-in runner and ends with the
// line meson's log is summed from: "node: N passed, N failed" (", N
// skipped" when some were). The TAP
// reporter's "# pass" and "# fail" totals are read from its output (node 18
// and 20 both print them), which is passed through as it comes.

const { spawn } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const dir = __dirname;
const files = fs.readdirSync(dir).filter((f) => f.endsWith('.test.js')).sort().map((f) => path.join(dir, f));
const child = spawn(process.execPath, ['--test', '--test-reporter=tap', ...files], {
  stdio: ['ignore', 'pipe', 'inherit'],
});
let tail = '';
child.stdout.on('data', (chunk) => {
  process.stdout.write(chunk);
  tail = (tail + chunk.toString()).slice(-4096);
});
child.on('close', (code, signal) => {
  const count = (what) => {
    const m = new RegExp(`^# ${what} (\\d+)$`, 'm').exec(tail);
    return m ? Number(m[1]) : 0;
  };
  const passed = count('pass');
  let failed = count('fail') + count('cancelled');
  // A runner that died without totals is one failure, never zero.
  if ((code !== 0 || signal) && failed === 0) failed = 1;
  const skipped = count('skipped');
  process.stdout.write(`node: ${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}\n`);
  process.exitCode = failed === 0 && passed > 0 ? 0 : 1;
});
