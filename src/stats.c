/* Counters kept with atomics (workers update them without a lock) and the
 * status page, in PHP-FPM's spirit: plain text by default, JSON and
 * OpenMetrics on request. */
#include "config.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "activity.h"
#include "clock.h"
#include "escape.h"
#include "script_classes.h"
#include "script_metrics.h"
#include "stats.h"

const int stats_status_codes[STATS_STATUSES] = { 200, 204, 301, 302, 304, 400, 403, 404, 500, 502, 503, 504 };

struct stats stats;

void stats_init(void)
{
	stats.start_ms = monotonic_ms();
	stats.start_unix = (long long)time(NULL);
}

void stats_count_status(int status)
{
	for (int i = 0; i < STATS_STATUSES; i++) {
		if (stats_status_codes[i] == status) {
			atomic_fetch_add(&stats.status[i], 1);
			return;
		}
	}
	atomic_fetch_add(&stats.status_other, 1);
}

/* One figure: its name in each format, and its value. */
struct figure {
	const char *name;   /* text and JSON */
	const char *metric; /* OpenMetrics, without the fcgiwrap_ prefix */
	const char *type;   /* "counter" or "gauge" */
	const char *help;
	unsigned long long value;
};

static unsigned long long status_count(int i)
{
	return i < 0 ? atomic_load(&stats.status_other) : atomic_load(&stats.status[i]);
}

static void render_json(FILE *m, const struct figure *f, size_t nf, const struct status_inputs *in)
{
	fprintf(m, "{\"start time\":%lld,\"containment\":", stats.start_unix);
	escape_json_string(m, in->containment);
	fputs(",\"sandbox\":", m);
	escape_json_string(m, in->sandbox);
	for (size_t i = 0; i < nf; i++)
		fprintf(m, ",\"%s\":%llu", f[i].name, f[i].value);
	fprintf(m, ",\"responses\":{");
	for (int i = 0; i < STATS_STATUSES; i++)
		fprintf(m, "%s\"%d\":%llu", i ? "," : "", stats_status_codes[i], status_count(i));
	fprintf(m, ",\"other\":%llu}", status_count(-1));
	fputs(",\"classes\":[", m);
	script_classes_render(m, "json");
	fputs("]", m);
	if (in->full) {
		fputs(",\"processes\":", m);
		activity_render(m, "json");
	}
	fputs("}\n", m);
}

static void render_openmetrics(FILE *m, const struct figure *f, size_t nf, const struct status_inputs *in)
{
	fprintf(m, "# TYPE fcgiwrap_containment info\n# HELP fcgiwrap_containment How scripts are contained.\n"
		   "fcgiwrap_containment_info{cgroups=\"%s\",sandbox=\"%s\"} 1\n",
		in->cgroups ? "yes" : "no", in->sandboxed ? "yes" : "no");
	for (size_t i = 0; i < nf; i++) {
		bool counter = strcmp(f[i].type, "counter") == 0;
		fprintf(m, "# TYPE fcgiwrap_%s %s\n# HELP fcgiwrap_%s %s.\nfcgiwrap_%s%s %llu\n", f[i].metric, f[i].type,
			f[i].metric, f[i].help, f[i].metric, counter ? "_total" : "", f[i].value);
	}
	fprintf(m, "# TYPE fcgiwrap_responses counter\n# HELP fcgiwrap_responses Responses by HTTP status.\n");
	for (int i = 0; i < STATS_STATUSES; i++)
		fprintf(m, "fcgiwrap_responses_total{status=\"%d\"} %llu\n", stats_status_codes[i], status_count(i));
	fprintf(m, "fcgiwrap_responses_total{status=\"other\"} %llu\n", status_count(-1));
	script_classes_render(m, "openmetrics");
	script_metrics_render(m);
	fputs("# EOF\n", m);
}

static void render_text(FILE *m, const struct figure *f, size_t nf, const struct status_inputs *in)
{
	char label[40];

	fprintf(m, "%-22s %lld\n", "start time:", stats.start_unix);
	fprintf(m, "%-22s %s\n%-22s %s\n", "containment:", in->containment, "sandbox:", in->sandbox);
	for (size_t i = 0; i < nf; i++) {
		snprintf(label, sizeof(label), "%s:", f[i].name);
		fprintf(m, "%-22s %llu\n", label, f[i].value);
	}
	for (int i = 0; i < STATS_STATUSES; i++) {
		snprintf(label, sizeof(label), "responses %d:", stats_status_codes[i]);
		fprintf(m, "%-22s %llu\n", label, status_count(i));
	}
	fprintf(m, "%-22s %llu\n", "responses other:", status_count(-1));
	script_classes_render(m, "text");
	if (in->full) {
		fputs("\nprocesses:\n", m);
		activity_render(m, "text");
	}
}

/* The page in format ("json", "openmetrics", anything else is text),
 * with its Content-Type in *type.  Returns a malloc'd string, or NULL. */
static char *render_page(const char *format, const struct figure *f, size_t nf, const struct status_inputs *in,
			 const char **type)
{
	char *out = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&out, &len);

	if (!m)
		return NULL;
	if (strcmp(format, "json") == 0) {
		*type = "application/json";
		render_json(m, f, nf, in);
	} else if (strcmp(format, "openmetrics") == 0) {
		*type = "application/openmetrics-text; version=1.0.0; charset=utf-8";
		render_openmetrics(m, f, nf, in);
	} else {
		*type = "text/plain";
		render_text(m, f, nf, in);
	}
	if (fclose(m) != 0) {
		free(out);
		return NULL;
	}
	return out;
}

char *stats_render(const char *format, const struct status_inputs *in, const char **type)
{
	struct figure f[] = {
		{ "uptime seconds", "uptime_seconds", "gauge", "Seconds since start",
		  (unsigned long long)((monotonic_ms() - stats.start_ms) / 1000) },
		{ "accepted connections", "connections_accepted", "counter", "Connections accepted",
		  atomic_load(&stats.accepted) },
		{ "requests", "requests", "counter", "Requests answered", atomic_load(&stats.requests) },
		{ "active connections", "connections_active", "gauge", "Connections open now",
		  atomic_load(&stats.connections) },
		{ "active scripts", "scripts_active", "gauge", "Scripts running now", atomic_load(&stats.scripts) },
		{ "queued requests", "requests_queued", "gauge", "Requests waiting for a script slot",
		  atomic_load(&stats.queued) },
		{ "max active scripts", "scripts_max_active", "gauge", "Most scripts running at once since start",
		  atomic_load(&stats.max_scripts) },
		{ "script slots", "script_slots", "gauge", "Scripts that may run at once (-c)", in->max_scripts },
		{ "timeouts", "timeouts", "counter", "Requests ended by -t or --inactivity-timeout",
		  atomic_load(&stats.timeouts) },
		{ "aborts", "aborts", "counter", "Requests the web server closed or aborted", atomic_load(&stats.aborts) },
		{ "spawn failures", "spawn_failures", "counter", "Scripts that could not be started",
		  atomic_load(&stats.spawn_failures) },
		{ "overloaded", "overloaded", "counter", "Requests answered 503 for want of a script slot",
		  atomic_load(&stats.overloaded) },
		{ "slow requests", "slow_requests", "counter", "Requests that ran past --slow-log",
		  atomic_load(&stats.slow) },
		{ "exit zero", "exits_zero", "counter", "Scripts that exited with status 0", atomic_load(&stats.exit_zero) },
		{ "exit nonzero", "exits_nonzero", "counter", "Scripts that exited with another status",
		  atomic_load(&stats.exit_nonzero) },
		{ "exit signal", "exits_signal", "counter", "Scripts killed by a signal", atomic_load(&stats.exit_signal) },
		{ "oom kills", "oom_kills", "counter", "Scripts ended by the OOM killer (--script-memory-max)",
		  atomic_load(&stats.oom_kills) },
		{ "leftover processes", "leftover_processes", "counter",
		  "Processes scripts left running after a normal end", atomic_load(&stats.leftover_processes) },
		{ "leftover cgroups", "leftover_cgroups", "gauge", "Cgroups kept for processes left running",
		  in->leftover_cgroups },
		{ "script cpu ms", "scripts_cpu_ms", "counter", "CPU time of all scripts, in milliseconds",
		  atomic_load(&stats.cpu_usec) / 1000 },
	};
	return render_page(format, f, sizeof(f) / sizeof(f[0]), in, type);
}
