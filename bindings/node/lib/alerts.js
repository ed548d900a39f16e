'use strict';
// The alert engine (pm_alert_engine_t) with rules loaded from rule-file
// text (doc/alerting.md). The engine has no dispatch thread: notifiers
// written in JS run inside deliver() on the calling thread, never on a C
// thread (which would have to wait on the event loop, gone at exit). Hosts
// tick() from a timer or start() the engine's own evaluation thread, and
// deliver() what it queued.

const { koffi, C, PerfmetricsError, check, outPtr, instanceOf, optionsObject } = require('./native');
const { Registry, register, onExit, forgetAtExit } = require('./registry');
const { Owned, pick } = require('./tracing');

const notifyProto = koffi.proto('int pm_node_notify_fn(void *event, void *user)');
const SEVERITIES = { info: 1, warning: 2, critical: 3 };

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
    this._notifiers = new Map(); // name -> registered callback
    this._notifyErrors = [];
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

  // Registers notifier fn(event) for the events that pass the filter
  // {minSeverity, rules, matchers: [[label, op, value]], sendResolved}; it
  // runs inside deliver(). A throw counts as a failed notification.
  addNotifier(name, fn, filter = {}) {
    if (typeof name !== 'string') throw new TypeError('perfmetrics: a notifier name must be a string');
    if (typeof fn !== 'function') throw new TypeError('perfmetrics: a notifier needs a function');
    optionsObject(filter, 'notifier filter');
    const f = outPtr((o) => C.pm_alert_filter_new(o), 'pm_alert_filter_new');
    let cb = null;
    try {
      if (filter.minSeverity !== undefined) {
        check(C.pm_alert_filter_set_min_severity(f, pick(SEVERITIES, filter.minSeverity, 'minSeverity')), 'minSeverity');
      }
      for (const rule of filter.rules || []) check(C.pm_alert_filter_add_rule(f, String(rule)), 'filter rule');
      for (const m of filter.matchers || []) {
        if (!Array.isArray(m) || m.length !== 3) throw new TypeError('perfmetrics: a matcher is [label, op, value]');
        check(C.pm_alert_filter_add_matcher(f, String(m[0]), String(m[1]), String(m[2])), 'filter matcher', m.join(' '));
      }
      if (filter.sendResolved !== undefined) {
        check(C.pm_alert_filter_set_send_resolved(f, filter.sendResolved ? 1 : 0), 'sendResolved');
      }
      cb = koffi.register((ev) => {
        try {
          fn(eventObject(ev));
          return 0;
        } catch (e) {
          this._notifyErrors.push(e);
          return 1;
        }
      }, koffi.pointer(notifyProto));
      check(C.pm_alert_engine_add_notifier(this._live(), name, f, cb, null, null), `notifier ${name}`);
    } catch (e) {
      if (cb !== null) koffi.unregister(cb);
      throw e;
    } finally {
      C.pm_alert_filter_free(f); // the engine keeps a copy
    }
    this._notifiers.set(name, cb);
  }

  removeNotifier(name) {
    check(C.pm_alert_engine_remove_notifier(this._live(), String(name)), `remove notifier ${name}`);
    koffi.unregister(this._notifiers.get(name));
    this._notifiers.delete(name);
  }

  // Runs the notifiers on what the engine queued (at most `max`, 0: all);
  // returns how many events were handed to the filters, and throws the first
  // error a notifier threw, after every event was delivered.
  deliver(max = 0) {
    if (!Number.isInteger(max) || max < 0) throw new TypeError('perfmetrics: deliver(max) needs an integer >= 0');
    this._notifyErrors = [];
    const n = [0];
    check(C.pm_alert_engine_deliver(this._live(), max, n), 'alert deliver');
    const errors = this._notifyErrors;
    this._notifyErrors = [];
    if (errors.length) throw errors[0];
    return n[0];
  }

  // Frees the engine; what is still queued is delivered to the notifiers
  // first (on this thread).
  close() {
    if (this.ptr === null) return;
    this._checkUnread('alert engine');
    C.pm_alert_engine_free(this.ptr);
    for (const cb of this._notifiers.values()) koffi.unregister(cb);
    this._notifiers.clear();
    this.ptr = null;
    this._registry._readers.delete(this);
    forgetAtExit(this);
  }
}

module.exports = { AlertEngine };
