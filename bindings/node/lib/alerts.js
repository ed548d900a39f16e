'use strict';
// The alert engine (pm_alert_engine_t) with rules loaded from rule-file
// text (doc/alerting.md). Notifications are not delivered to JS callbacks:
// a C thread calling into JS would have to wait on the event loop, which is
// gone at exit. Hosts read active() / history(), or the server's
// /api/v1/alerts, and tick() from a timer or start() the engine's own thread.

const { C, PerfmetricsError, check, outPtr, instanceOf, optionsObject } = require('./native');
const { Registry, register, onExit, forgetAtExit } = require('./registry');
const { Owned } = require('./tracing');

// A rule-file error with where it was found.
function parseFailure(rc, errp, what) {
  if (errp === null) return new PerfmetricsError(rc, what);
  const e = new PerfmetricsError(rc, what, C.pm_parse_error_message(errp));
  e.line = C.pm_parse_error_line(errp);
  e.column = C.pm_parse_error_column(errp);
  C.pm_parse_error_free(errp);
  return e;
}

function requireText(text) {
  if (typeof text !== 'string') throw new TypeError('perfmetrics: rules must be rule-file text (a string)');
  return Buffer.from(text, 'utf8');
}

function eventObject(ev) {
  const labels = {};
  for (let i = 0; i < C.pm_alert_event_label_count(ev); i++) {
    labels[C.pm_alert_event_label_name(ev, i)] = C.pm_alert_event_label_value(ev, i);
  }
  const annotations = {};
  for (let i = 0; i < C.pm_alert_event_annotation_count(ev); i++) {
    annotations[C.pm_alert_event_annotation_name(ev, i)] = C.pm_alert_event_annotation_value(ev, i);
  }
  return {
    rule: C.pm_alert_event_rule(ev),
    state: C.pm_alert_state_name(C.pm_alert_event_state(ev)),
    severity: C.pm_severity_name(C.pm_alert_event_severity(ev)),
    value: C.pm_alert_event_value(ev),
    time: C.pm_alert_event_time(ev),
    labels,
    annotations,
  };
}

class AlertEngine extends Owned {
  // options: registry (default: the default registry), interval (seconds
  // between evaluations of the engine's own thread and the expected spacing
  // of tick() calls; default 15), rules (rule-file text to load).
  constructor(options = {}) {
    super();
    optionsObject(options, 'AlertEngine');
    this._registry = options.registry === undefined ? register : instanceOf(options.registry, Registry, 'registry');
    const opts = outPtr((o) => C.pm_alert_engine_opts_new(o), 'pm_alert_engine_opts_new');
    try {
      check(C.pm_alert_engine_opts_set_dispatch_thread(opts, 0), 'alert engine options');
      if (options.interval !== undefined) {
        if (typeof options.interval !== 'number') throw new TypeError('perfmetrics: interval must be a number of seconds');
        check(C.pm_alert_engine_opts_set_interval(opts, options.interval), 'alert engine interval', `${options.interval}`);
      }
      this.ptr = outPtr((o) => C.pm_alert_engine_new(this._registry._live(), opts, o), 'pm_alert_engine_new');
    } finally {
      C.pm_alert_engine_opts_free(opts);
    }
    this._registry._readers.add(this);
    onExit(this);
    if (options.rules !== undefined) {
      try {
        this.loadRules(options.rules);
      } catch (e) {
        this.close();
        throw e;
      }
    }
  }

  // Checks rule-file text without loading it; returns the number of rules.
  static checkRules(text) {
    const b = requireText(text);
    const n = [0];
    const err = [null];
    const rc = C.pm_alert_rules_check(b, b.length, n, err);
    if (rc !== 0) throw parseFailure(rc, err[0], 'alert rules');
    return n[0];
  }

  _live() {
    if (this.ptr === null) throw new Error('perfmetrics: this alert engine is closed');
    return this.ptr;
  }

  // Loads every rule of the text, all or nothing.
  loadRules(text) {
    const b = requireText(text);
    const err = [null];
    const rc = C.pm_alert_engine_load_string(this._live(), b, b.length, err);
    if (rc !== 0) throw parseFailure(rc, err[0], 'alert rules');
  }

  removeRule(name) {
    check(C.pm_alert_engine_remove_rule(this._live(), String(name)), `remove rule ${name}`);
  }

  get ruleCount() {
    return C.pm_alert_engine_rule_count(this._live());
  }

  // Evaluates every rule once at `nowMs` (Unix milliseconds, default now).
  tick(nowMs = Date.now()) {
    if (!Number.isFinite(nowMs)) throw new TypeError('perfmetrics: tick(nowMs) needs a finite time in ms');
    check(C.pm_alert_engine_tick(this._live(), BigInt(Math.round(nowMs * 1e6))), 'alert tick');
  }

  start() {
    check(C.pm_alert_engine_start(this._live()), 'alert engine start');
  }

  stop() {
    check(C.pm_alert_engine_stop(this._live()), 'alert engine stop');
  }

  // 0..100 from the active instances (alerts.h has the weights).
  get health() {
    return C.pm_alert_engine_health(this._live());
  }

  _list(fn, what) {
    const l = outPtr((o) => fn(this._live(), o), what);
    try {
      const out = [];
      for (let i = 0; i < C.pm_alert_list_count(l); i++) out.push(eventObject(C.pm_alert_list_get(l, i)));
      return out;
    } finally {
      C.pm_alert_list_free(l);
    }
  }

  // Pending and firing instances: {rule, state, severity, value, time,
  // labels, annotations}.
  active() {
    return this._list(C.pm_alert_engine_active, 'alert list');
  }

  // Transitions, oldest first.
  history() {
    return this._list(C.pm_alert_engine_history, 'alert history');
  }

  close() {
    if (this.ptr === null) return;
    this._checkUnread('alert engine');
    C.pm_alert_engine_free(this.ptr);
    this.ptr = null;
    this._registry._readers.delete(this);
    forgetAtExit(this);
  }
}

module.exports = { AlertEngine };
