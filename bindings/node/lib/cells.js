'use strict';
// The hot path. Each JS thread (the main thread, each worker) records into
// its own cell block per registry (include/perfmetrics/cells.h): memory the
// C library owns and adds into the series at snapshot time. A counter
// child's inc() stores its new sum into a Float64Array over a page of the
// block and a histogram's observe() finds its bucket in JS with the
// library's formula: no FFI call per record. This module's state is per thread because every
// worker loads its own copy of the module.
//
// Libraries without cells (before 1.4) get the same classes' FFI forms: one
// call per record, chosen once per process so every call site stays
// monomorphic.
//
// In a `cluster` worker (PERFMETRICS_CLUSTER_DIR set by the primary's
// AggregatorRegistry, lib/cluster.js) the default registry's shards are
// shared blocks (pm_cells_new_shared): the same pages, but files the primary
// maps too, so its snapshots add them without asking the worker. The record
// paths do not change; gauges then bind a cell of the shard as well
// (SharedGauge), because the primary can only see what is in a block.

const fs = require('node:fs');
const { koffi, C, check, outPtr, hasCells, hasSharedCells } = require('./native');

const PAGE_DOUBLES = 8192; // PM_CELLS_PAGE_DOUBLES
const PAGE_BYTES = PAGE_DOUBLES * 8;
const H_SUM = 0;
const H_MIN = 1;
const H_MAX = 2;
const H_CAP = 3;
const H_USED = 4;
const H_LOWEST = 5;
const H_HIGHEST = 6;
const H_NBOUNDS = 7;
const H_BOUNDS = 8;
const PM_ERANGE = -10;

// A double's IEEE-754 bits, read through two views of one 8-byte buffer.
const bitsF64 = new Float64Array(1);
const bitsU32 = new Uint32Array(bitsF64.buffer);
const HI = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1 ? 1 : 0;
// bits(v) >> 46 for a non-negative double: the high word shifted by 14.
function fineBits(v) {
  bitsF64[0] = v;
  return bitsU32[HI] >>> 14;
}

// Written into by children whose block was freed (a registry closed, the
// thread closing): their records are dropped instead of landing in freed
// memory.
function orphanPage() {
  return new Float64Array(16);
}

// The default registry is the only one a cluster shares: it is the one
// every process of a program has (a Registry made with new is private to the
// code that made it).
const DEFAULT_REGISTRY = C.pm_registry_default();

// Whether this process writes into a cluster directory, and which: read
// once per thread. The primary sets PERFMETRICS_CLUSTER_PRIMARY to its own
// pid beside the directory: its own threads (which inherit its environment
// as forked workers do) then stay out of the aggregate, as in prom-client,
// whose aggregate holds the workers' metrics only.
let clusterDirRead = false;
let clusterDirValue = null;
function clusterDir() {
  if (!clusterDirRead) {
    clusterDirRead = true;
    clusterDirValue = readClusterDir();
  }
  return clusterDirValue;
}

function readClusterDir() {
  const dir = process.env.PERFMETRICS_CLUSTER_DIR;
  if (!dir || process.env.PERFMETRICS_CLUSTER_PRIMARY === String(process.pid)) return null;
  if (!hasSharedCells) {
    process.emitWarning(`perfmetrics: PERFMETRICS_CLUSTER_DIR is set, but ${hasCells ?
      'the loaded library has no shared cell blocks (1.7)' : 'cells are off'}: this process's records stay in it, out of the cluster aggregate`);
    return null;
  }
  return dir;
}

// Whether metrics of this registry are summed by a cluster primary.
function clusterShared(registryPtr) {
  return registryPtr === DEFAULT_REGISTRY && clusterDir() !== null;
}

// A shared block in dir, or null (with a warning) when there cannot be one:
// recording then goes on into a private block, and only the aggregate misses it.
function sharedBlock(registryPtr, dir) {
  // The primary removes its directory when it closes; pm_cells_new_shared
  // would make it again, where nobody attaches.
  if (!fs.existsSync(dir)) {
    process.emitWarning(`perfmetrics: cluster directory ${dir} is gone (the primary closed its AggregatorRegistry): this thread's records stay in this process`);
    return null;
  }
  const out = [null];
  const rc = C.pm_cells_new_shared(registryPtr, dir, out);
  if (rc === 0) return out[0];
  process.emitWarning(`perfmetrics: pm_cells_new_shared(${dir}): ${C.pm_strerror(rc)}: this thread's records stay in this process, out of the cluster aggregate`);
  return null;
}

class Shard {
  constructor(registryPtr) {
    const dir = clusterShared(registryPtr) ? clusterDir() : null;
    this.block = dir !== null ? sharedBlock(registryPtr, dir) : null;
    // Whether the primary of a cluster sums this block.
    this.shared = this.block !== null;
    if (this.block === null) this.block = outPtr((o) => C.pm_cells_new(registryPtr, o), 'pm_cells_new');
    this.f64 = [];
    this.u32 = [];
    this.children = new Set();
    this.counters = new Map(); // cell index -> CellCounter
    this.histograms = new Map(); // current region index -> CellHistogram
  }

  // Makes views for pages added by the last bind or grow: one view per page,
  // made once (pages never move before pm_cells_free).
  syncPages() {
    const n = C.pm_cells_page_count(this.block);
    while (this.f64.length < n) {
      const ab = koffi.view(C.pm_cells_page(this.block, this.f64.length), PAGE_BYTES);
      this.f64.push(new Float64Array(ab));
      this.u32.push(new Uint32Array(ab));
    }
  }

  bind(fn, handle, what) {
    const index = [0];
    check(fn(this.block, handle, index), what);
    this.syncPages();
    return index[0];
  }

  // Folds every cell into its series (pm_cells_free), then points every
  // child at an orphan page.
  close() {
    if (this.block === null) return;
    for (const child of this.children) child.orphan();
    this.children.clear();
    this.counters.clear();
    this.histograms.clear();
    C.pm_cells_free(this.block);
    this.block = null;
    this.f64 = [];
    this.u32 = [];
  }
}

// Counter series: cells form. The cell only ever grows, and this object is
// its only writer (one per bound index: label sets that share a series,
// such as every label set past a cardinality limit, share it), so it keeps
// the value in a JS field too and each add is a plain store of the new sum:
// no load of the cell, whose store-to-load round trip would cost about 3 ns
// per inc in a tight loop, where V8 keeps the field in a register.
class CellCounter {
  constructor(page, off) {
    this.page = page;
    this.off = off;
    // A fresh cell's 0 is written as the literal: V8 then keeps the field a
    // small integer while the counter counts in integers (as prom-client's
    // value field is), where a double read from the page would make it a
    // boxed double and each add a load and store through memory again.
    const cur = this.page[this.off];
    this.v = cur === 0 ? 0 : cur;
  }

  // The cell of counter handle's series in this shard (bound once).
  static of(shard, handle) {
    const index = shard.bind(C.pm_cells_counter, handle, 'pm_cells_counter');
    let cell = shard.counters.get(index);
    if (cell === undefined) {
      cell = new CellCounter(shard.f64[Math.floor(index / PAGE_DOUBLES)], index % PAGE_DOUBLES);
      shard.counters.set(index, cell);
      shard.children.add(cell);
    }
    return cell;
  }

  add(v) {
    const n = this.v + v;
    this.v = n;
    this.page[this.off] = n;
  }

  orphan() {
    this.page = orphanPage();
    this.off = 0;
  }
}

// Counter series: FFI form (no cells in the loaded library).
class FfiCounter {
  constructor(handle) {
    this.handle = handle;
  }

  static of(shard, handle) {
    return new FfiCounter(handle);
  }

  add(v) {
    C.pm_counter_add(this.handle, v);
  }

  orphan() {
    this.handle = null; // pm_counter_add ignores NULL
  }
}

// What the binding region says about its family's buckets, computed once per
// family (bounds and range are the family's, read-only in every region).
function histogramLayout(f, o) {
  const lowest = f[o + H_LOWEST];
  const nbounds = f[o + H_NBOUNDS];
  const lowBits = fineBits(lowest);
  const nb = fineBits(f[o + H_HIGHEST]) - lowBits + 1;
  const bounds = new Float64Array(nbounds);
  const fine = new Int32Array(nbounds);
  // first[idx]: the first bound whose fine index is idx, or -1.
  const first = new Int32Array(nb + 2).fill(-1);
  for (let k = 0; k < nbounds; k++) {
    bounds[k] = f[o + H_BOUNDS + k];
    fine[k] = f[o + H_BOUNDS + nbounds + k];
    if (first[fine[k]] < 0) first[fine[k]] = k;
  }
  return { lowest, lowBits, nb, nbounds, bounds, fine, first };
}

// Histogram series: cells form. observe() computes the key exactly as
// cells.h specifies, finds its count cell by open addressing and grows the
// region at 3/4 full; at the largest size, values whose key finds no room go
// through pm_histogram_observe.
// One object per bound series in a shard, as for counters: label sets that
// share a series (past a cardinality limit) must share it, or one object's
// grow would leave the other writing into the region it moved from.
class CellHistogram {
  constructor(shard, handle, family, index) {
    this.shard = shard;
    this.handle = handle;
    this.family = family;
    this.full = false;
    this.index = -1;
    this.load(index);
  }

  static of(shard, handle, family) {
    // Binding a series again gives its current index, the key it is kept under.
    const index = shard.bind(C.pm_cells_histogram, handle, 'pm_cells_histogram');
    let cell = shard.histograms.get(index);
    if (cell === undefined) {
      cell = new CellHistogram(shard, handle, family, index);
      shard.children.add(cell);
    }
    return cell;
  }

  load(index) {
    this.shard.histograms.delete(this.index);
    this.shard.histograms.set(index, this);
    const page = Math.floor(index / PAGE_DOUBLES);
    const f = this.shard.f64[page];
    const o = index % PAGE_DOUBLES;
    if (this.family.layout === null) this.family.layout = histogramLayout(f, o);
    const L = this.family.layout;
    this.L = L;
    this.index = index;
    this.f = f;
    this.u = this.shard.u32[page];
    this.o = o;
    const cap = f[o + H_CAP];
    this.mask = cap - 1;
    this.shift = 32 - Math.log2(cap);
    this.limit = (cap * 3) / 4;
    this.counts = o + H_BOUNDS + 2 * L.nbounds;
    this.keys = (this.counts + cap) * 2;
  }

  key(v) {
    const L = this.L;
    let idx = 0;
    if (v >= L.lowest) {
      idx = fineBits(v) - L.lowBits;
      if (idx > L.nb) idx = L.nb;
      idx += 1;
    }
    let k = L.first[idx];
    if (k >= 0) {
      for (; k < L.nbounds && L.fine[k] === idx; k++) {
        if (v <= L.bounds[k]) return L.nb + 2 + k;
      }
    }
    return idx;
  }

  observe(v) {
    const key = this.key(v);
    const u = this.u;
    const want = key + 1;
    let h = Math.imul(key, 0x9e3779b1) >>> this.shift;
    for (;;) {
      const kc = u[this.keys + h];
      if (kc === want) break;
      if (kc === 0) {
        if (!this.insert(key, h, v)) return;
        break;
      }
      h = (h + 1) & this.mask;
    }
    const f = this.f;
    const o = this.o;
    f[this.counts + h] += 1;
    f[o + H_SUM] += v;
    if (v < f[o + H_MIN]) f[o + H_MIN] = v;
    if (v > f[o + H_MAX]) f[o + H_MAX] = v;
  }

  // Claims the free key cell h for key; grows first when the region is 3/4
  // full. Returns false when v was recorded some other way (after a grow,
  // through a fresh observe; at the largest size, through the FFI).
  insert(key, h, v) {
    const f = this.f;
    if (f[this.o + H_USED] >= this.limit) {
      if (!this.full) {
        const out = [0];
        const rc = C.pm_cells_histogram_grow(this.shard.block, this.index, out);
        if (rc === 0) {
          this.shard.syncPages();
          this.load(out[0]);
          this.observe(v);
          return false;
        }
        if (rc !== PM_ERANGE) check(rc, 'pm_cells_histogram_grow');
        this.full = true;
      }
      C.pm_histogram_observe(this.handle, v);
      return false;
    }
    this.u[this.keys + h] = key + 1;
    f[this.o + H_USED] += 1;
    return true;
  }

  orphan() {
    this.shard = null;
    this.handle = null;
    this.f = orphanPage();
    this.u = new Uint32Array(this.f.buffer);
    this.o = 0;
    this.full = true;
    // Every key then looks absent and full: observe() ends in the FFI call,
    // which ignores the NULL handle.
    this.limit = -1;
    this.mask = 0;
    this.shift = 31;
    this.keys = 16;
    this.counts = 0;
  }
}

class FfiHistogram {
  constructor(shard, handle) {
    this.handle = handle;
  }

  static of(shard, handle) {
    return new FfiHistogram(shard, handle);
  }

  observe(v) {
    C.pm_histogram_observe(this.handle, v);
  }

  orphan() {
    this.handle = null;
  }
}

// Gauge series: set() is a plain store into the series' own value cell
// (pm_gauge_cell); inc/dec are pm_gauge_add, atomic across threads.
class CellGauge {
  constructor(handle) {
    this.handle = handle;
    const cell = outPtr((o) => C.pm_gauge_cell(handle, o), 'pm_gauge_cell');
    this.cell = new Float64Array(koffi.view(cell, 8));
  }

  set(v) {
    this.cell[0] = v;
  }

  add(v) {
    C.pm_gauge_add(this.handle, v);
  }

  // The child's series was removed or reset: nothing to undo, the value
  // goes with the series.
  removed() {}

  orphan() {
    this.handle = null;
    this.cell = new Float64Array(1);
  }
}

// Gauge series in a shared shard (a cluster worker's default registry): a
// cell of the shard (pm_cells_gauge) holds this thread's contribution, and
// the series reports its own value plus every cell, in this process and in
// the primary's aggregate alike. The thread is the cell's only writer, so
// inc/dec are plain adds: no FFI, no atomics. Contributions are summed
// (prom-client's default cluster aggregator) and dropped when the block is
// freed: a gauge shows live threads and processes only.
class SharedGauge {
  constructor(page, off) {
    this.page = page;
    this.off = off;
  }

  static of(shard, handle) {
    const index = shard.bind(C.pm_cells_gauge, handle, 'pm_cells_gauge');
    // Stores go straight to the page (no value is kept here), so objects
    // over one cell (label sets sharing a series) need no sharing.
    const cell = new SharedGauge(shard.f64[Math.floor(index / PAGE_DOUBLES)], index % PAGE_DOUBLES);
    shard.children.add(cell);
    return cell;
  }

  set(v) {
    this.page[this.off] = v;
  }

  add(v) {
    this.page[this.off] += v;
  }

  // A removed series stays bound, and summed by the primary, until the
  // block is freed: its contribution goes to 0 now, as the series does here.
  removed() {
    this.page[this.off] = 0;
  }

  orphan() {
    this.page = orphanPage();
    this.off = 0;
  }
}

class FfiGauge {
  constructor(handle) {
    this.handle = handle;
  }

  set(v) {
    C.pm_gauge_set(this.handle, v);
  }

  add(v) {
    C.pm_gauge_add(this.handle, v);
  }

  removed() {}

  orphan() {
    this.handle = null;
  }
}

// This thread's shards, one per registry pointer (as a BigInt address).
const shards = new Map();
function shardFor(registryPtr) {
  if (!hasCells) return null;
  let s = shards.get(registryPtr);
  if (s === undefined) {
    s = new Shard(registryPtr);
    shards.set(registryPtr, s);
  }
  return s;
}

// Frees this thread's block for one registry (all of them when omitted).
function closeShards(registryPtr) {
  for (const [key, s] of shards) {
    if (registryPtr === undefined || key === registryPtr) {
      s.close();
      shards.delete(key);
    }
  }
}

const Counter = hasCells ? CellCounter : FfiCounter;
// A counter cell that records nowhere, of the same class as the real ones:
// a metric's root-cell field always holds one class of object, so V8 needs
// no check of what it holds on Counter.inc's path.
const NO_COUNTER = hasCells ? new CellCounter(orphanPage(), 0) : new FfiCounter(null);
const Histogram = hasCells ? CellHistogram : FfiHistogram;
const Gauge = hasCells ? CellGauge : FfiGauge;

// The cell object of a gauge series of registryPtr: in a cluster worker's
// default registry, a cell of this thread's shared shard; else the series'
// own value (or the FFI).
function gaugeCell(registryPtr, handle) {
  if (clusterShared(registryPtr)) {
    const shard = shardFor(registryPtr);
    if (shard.shared) return SharedGauge.of(shard, handle);
  }
  return new Gauge(handle);
}

module.exports = {
  shardFor, closeShards, Counter, Histogram, Gauge, FfiHistogram, hasCells, NO_COUNTER,
  gaugeCell, clusterShared,
  // for tests of the key formula
  histogramLayout, fineBits,
};
