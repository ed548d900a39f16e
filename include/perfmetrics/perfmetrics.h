/* libperfmetrics — umbrella header. Include this one.
 * API reference: the comments in each header; guides in doc/. */
#ifndef PERFMETRICS_H
#define PERFMETRICS_H

#include <perfmetrics/base.h>
#include <perfmetrics/metrics.h>
#include <perfmetrics/timer.h>
#include <perfmetrics/snapshot.h>
#include <perfmetrics/format.h>
#include <perfmetrics/export.h>
#include <perfmetrics/collector.h>
#include <perfmetrics/spans.h>
#include <perfmetrics/alerts.h>
#include <perfmetrics/server.h>
#include <perfmetrics/cells.h>
#include <perfmetrics/history.h>

#endif
