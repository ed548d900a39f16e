'use strict';
// The `cluster` aggregate: prom-client's AggregatorRegistry, without IPC.
//
// The primary's AggregatorRegistry makes a private directory and attaches a
// registry of its own to it (pm_cells_attach); it puts the directory in
// PERFMETRICS_CLUSTER_DIR, which cluster.fork() passes to every worker, and
// in each worker the default registry's cell blocks are files there
// (lib/cells.js). Every snapshot of the attached registry (clusterMetrics(),
// metrics(), the embedded server's /metrics) reads the workers' cells from
// those files: no message goes to a worker at scrape time, and a worker that
// is busy, stuck or gone does not delay or fail a scrape. A worker that ends,
// in any way, has its counters and histograms folded into the aggregate for
// good and its gauges dropped (include/perfmetrics/cells.h, "shared blocks").

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { C, STATUS, PerfmetricsError, check, outPtr, hasAttach, libraryPath, optionsObject } = require('./native');
const { Registry, PROMETHEUS_CONTENT_TYPE } = require('./registry');

const DIR_ENV = 'PERFMETRICS_CLUSTER_DIR';
const PRIMARY_ENV = 'PERFMETRICS_CLUSTER_PRIMARY';
const PREFIX = 'perfmetrics-cluster-';

// pm_cells_attach_stat's counters by name.
const STATS = { blocks: 0, folded: 1, bindings: 2, rejected: 3, retries: 4 };

// Where the private directory goes: tmpfs when there is one we may write
// (the workers' pages then never reach a disk), else the system's temp dir.
function baseDir() {
  try {
    fs.accessSync('/dev/shm', fs.constants.W_OK | fs.constants.X_OK);
    if (fs.statSync('/dev/shm').isDirectory()) return '/dev/shm';
  } catch {
    // no usable /dev/shm
  }
  return os.tmpdir();
}

class AggregatorRegistry extends Registry {
  // new AggregatorRegistry(contentType?, {dir, selfMetrics}): in the primary,
  // before cluster.fork(). `dir` names the directory to use (created if
  // missing, kept at close: it is the caller's); by default a fresh one under
  // /dev/shm is made and removed at close. selfMetrics (default false) adds
  // this registry's own perfmetrics_* families to the aggregate.
  constructor(contentType = PROMETHEUS_CONTENT_TYPE, options = {}) {
    optionsObject(options, 'AggregatorRegistry');
    if (!hasAttach) {
      throw new Error(`perfmetrics: AggregatorRegistry needs shared cell blocks (libperfmetrics 1.7); ${libraryPath} is ${C.pm_version_string()}`);
    }
    if (options.dir !== undefined && (typeof options.dir !== 'string' || options.dir === '')) {
      throw new TypeError('perfmetrics: AggregatorRegistry: dir must be a non-empty string');
    }
    super(contentType, { selfMetrics: options.selfMetrics === true });
    this._attach = null;
    this._ownDir = options.dir === undefined;
    this.dir = this._ownDir ? fs.mkdtempSync(path.join(baseDir(), PREFIX)) : path.resolve(options.dir);
    const out = [null];
    const rc = C.pm_cells_attach(this.ptr, this.dir, out);
    if (rc !== 0) {
      const dir = this.dir;
      this._removeDir();
      Registry.prototype.close.call(this);
      if (rc === STATUS.EEXIST) {
        throw new PerfmetricsError(rc, `AggregatorRegistry: ${dir}`,
          'another AggregatorRegistry, in this process or another, is attached to this directory; each cluster needs its own');
      }
      check(rc, `AggregatorRegistry: pm_cells_attach(${dir})`);
    }
    this._attach = out[0];
    // Workers forked from now on write into this directory; the primary's
    // own threads do not (lib/cells.js).
    process.env[DIR_ENV] = this.dir;
    process.env[PRIMARY_ENV] = String(process.pid);
  }

  // prom-client: the workers' metrics, aggregated. Here it is one snapshot
  // of this registry, which reads every worker's cells: the same as metrics().
  clusterMetrics() {
    return this.metrics();
  }

  _attached() {
    if (this._attach === null) throw new Error('perfmetrics: this AggregatorRegistry is closed');
    return this._attach;
  }

  // Looks at the directory now (new workers, new series, ended workers),
  // as the next snapshot would first.
  refresh() {
    check(C.pm_cells_attach_refresh(this._attached()), 'AggregatorRegistry.refresh');
  }

  // After a refresh: blocks (live worker threads' blocks), folded (blocks of
  // ended workers added for good), bindings (series being added), rejected
  // (series whose family has another definition here, or malformed
  // records), retries (reads repeated because a worker was growing a
  // histogram meanwhile).
  stats() {
    this.refresh();
    const out = {};
    const v = [0];
    for (const [name, which] of Object.entries(STATS)) {
      check(C.pm_cells_attach_stat(this._attach, which, v), 'pm_cells_attach_stat');
      out[name] = Number(v[0]);
    }
    return out;
  }

  // Detaches, frees the registry and removes the directory it made; workers
  // still running keep recording into their (now unlinked) files, seen by
  // nobody. Forks after close() are not cluster workers. A second close()
  // does nothing.
  close() {
    if (this._attach === null) return;
    if (this._readers.size) throw new Error('perfmetrics: close the tracers, alert engines and servers reading this registry first');
    C.pm_cells_detach(this._attach);
    this._attach = null;
    super.close();
    if (process.env[DIR_ENV] === this.dir) {
      delete process.env[DIR_ENV];
      delete process.env[PRIMARY_ENV];
    }
    this._removeDir();
  }

  _removeDir() {
    if (!this._ownDir) return;
    try {
      fs.rmSync(this.dir, { recursive: true, force: true });
    } catch (e) {
      process.emitWarning(`perfmetrics: cannot remove ${this.dir}: ${e.message}`);
    }
  }
}

module.exports = { AggregatorRegistry, DIR_ENV, PRIMARY_ENV };
