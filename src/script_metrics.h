/* Figures per script, for the status page's OpenMetrics: CPU time, and a
 * histogram of request durations. */
#ifndef FCGIWRAP_SCRIPT_METRICS_H
#define FCGIWRAP_SCRIPT_METRICS_H

#include <stdio.h>

/* Scripts told apart; past that many, the rest are counted as "other". */
#define SCRIPT_METRICS_MAX 1000

/* Counts one request of the script at path (a file that exists: the
 * number of names is bounded by the file system). */
void script_metrics_add(const char *path, long long duration_ms, long long cpu_usec);

/* Writes the OpenMetrics families (no # EOF). */
void script_metrics_render(FILE *m);

#endif
