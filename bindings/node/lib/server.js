'use strict';
// The embedded HTTP endpoint (pm_server_t): /metrics, /health, the JSON
// APIs and the dashboard, served by the library's own threads. They read
// only C snapshots, alert lists and trace lists, never JS state, so serving
// does not wait on the event loop and no JS runs per scrape.

const { C, check, outPtr, instanceOf, optionsObject } = require('./native');
const { Registry, register, onExit, forgetAtExit } = require('./registry');
const { Tracer } = require('./tracing');
const { AlertEngine } = require('./alerts');

// One of server.h's counters by name.
const STATS = {
  connections: 1, open: 2, rejected: 3, requests: 4, responses2xx: 5, responses4xx: 6,
  responses5xx: 7, timeouts: 8, bytesIn: 9, bytesOut: 10, scrapes: 11, unauthorized: 12,
};

class Server {
  // options: registry (default: the default registry), host ('127.0.0.1'),
  // port (9464; 0 lets the kernel choose), token (Bearer token required on
  // the data endpoints), threads, title, tracer (a Tracer for
  // /api/v1/traces), alertEngine (an AlertEngine for /api/v1/alerts and
  // /health).
  constructor(options = {}) {
    optionsObject(options, 'Server');
    const registry = options.registry === undefined ? register : instanceOf(options.registry, Registry, 'registry');
    this._reads = [registry];
    const opts = outPtr((o) => C.pm_server_opts_new(o), 'pm_server_opts_new');
    try {
      const host = options.host === undefined ? '127.0.0.1' : options.host;
      const port = options.port === undefined ? 9464 : options.port;
      if (typeof host !== 'string') throw new TypeError('perfmetrics: host must be a string');
      if (!Number.isInteger(port)) throw new TypeError('perfmetrics: port must be an integer');
      check(C.pm_server_opts_set_address(opts, host, port), 'server address', `${host}:${port}`);
      if (options.token !== undefined) check(C.pm_server_opts_set_token(opts, String(options.token)), 'server token');
      if (options.threads !== undefined) {
        if (!Number.isInteger(options.threads)) throw new TypeError('perfmetrics: threads must be an integer');
        check(C.pm_server_opts_set_threads(opts, options.threads), 'server threads', `${options.threads}`);
      }
      if (options.title !== undefined) check(C.pm_server_opts_set_title(opts, String(options.title)), 'server title');
      if (options.tracer !== undefined) {
        check(C.pm_server_opts_set_tracer(opts, instanceOf(options.tracer, Tracer, 'tracer')._live()), 'server tracer');
        this._reads.push(options.tracer);
      }
      if (options.alertEngine !== undefined) {
        check(C.pm_server_opts_set_alert_engine(opts, instanceOf(options.alertEngine, AlertEngine, 'alertEngine')._live()),
          'server alertEngine');
        this._reads.push(options.alertEngine);
      }
      this.ptr = outPtr((o) => C.pm_server_new(registry._live(), opts, o), 'pm_server_new', `${host}:${port}`);
    } finally {
      C.pm_server_opts_free(opts);
    }
    for (const r of this._reads) r._readers.add(this);
    this.port = C.pm_server_port(this.ptr);
    const buf = Buffer.alloc(128);
    check(C.pm_server_url(this.ptr, buf, buf.length), 'pm_server_url');
    this.url = buf.toString('latin1', 0, buf.indexOf(0));
    onExit(this);
  }

  stats() {
    if (this.ptr === null) throw new Error('perfmetrics: this server is closed');
    const out = {};
    for (const [name, code] of Object.entries(STATS)) out[name] = C.pm_server_stat(this.ptr, code);
    return out;
  }

  // Stops accepting, closes connections and joins the server's threads.
  close() {
    if (this.ptr === null) return;
    C.pm_server_free(this.ptr);
    this.ptr = null;
    for (const r of this._reads) r._readers.delete(this);
    forgetAtExit(this);
  }
}

function startServer(options) {
  return new Server(options);
}

module.exports = { Server, startServer };
