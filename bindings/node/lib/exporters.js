'use strict';
// Exporters written in JS (pm_exporter_add): each gets the registry's
// snapshot and may format it in any of the library's formats, to push it
// somewhere. They run only inside registry.exportNow() on the calling
// thread, never on the library's export thread: a C thread calling into JS
// has to wait for the event loop, which is gone at exit (and would deadlock
// a thread that waits on it). registry.startExporting() drives exportNow()
// from an unref'd JS timer instead.

const { koffi, C, check, outPtr, bufString, scratchBuf } = require('./native');

const exportProto = koffi.proto('int pm_node_export_fn(void *snapshot, void *user)');
const PM_ECALLBACK = -13;
const FORMATS = { prometheus: 1, openmetrics: 2, json: 3 };

// What a callback is handed: the borrowed snapshot, usable during the call.
class ExportSnapshot {
  constructor(ptr) {
    this._ptr = ptr;
  }

  format(fmt = 'prometheus') {
    if (this._ptr === null) throw new Error('perfmetrics: an export snapshot is only valid during its callback');
    const code = FORMATS[fmt];
    if (code === undefined) throw new TypeError('perfmetrics: format is prometheus, openmetrics or json');
    const buf = scratchBuf();
    check(C.pm_format(this._ptr, code, buf), 'pm_format');
    return bufString(buf);
  }
}

class Exporter {
  constructor(registry, name, fn) {
    if (typeof name !== 'string') throw new TypeError('perfmetrics: an exporter name must be a string');
    if (typeof fn !== 'function') throw new TypeError('perfmetrics: an exporter needs a function');
    this.name = name;
    this._registry = registry;
    // The callback returns a status: a throw is the library's "failed"
    // (counted in perfmetrics_exporter_failures_total), and the error is
    // kept for exportNow() to throw.
    this._cb = koffi.register((snap) => {
      const view = new ExportSnapshot(snap);
      try {
        fn(view);
        return 0;
      } catch (e) {
        registry._exportErrors.push(e);
        return PM_ECALLBACK;
      } finally {
        view._ptr = null;
      }
    }, koffi.pointer(exportProto));
    try {
      this._ptr = outPtr((o) => C.pm_exporter_add(registry._live(), name, this._cb, null, null, o), `exporter ${name}`);
    } catch (e) {
      koffi.unregister(this._cb);
      throw e;
    }
  }

  // Unregisters the exporter (once; later calls do nothing).
  remove() {
    if (this._ptr === null) return;
    check(C.pm_exporter_remove(this._ptr), `remove exporter ${this.name}`);
    this._forget();
  }

  // The registry freed the exporter itself: only the JS side is left.
  _forget() {
    this._ptr = null;
    koffi.unregister(this._cb);
    this._registry._exporters.delete(this);
  }
}

module.exports = { Exporter };
