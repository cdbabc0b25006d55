/* Figures per script (see script_metrics.h): a table of at most
 * SCRIPT_METRICS_MAX names, under a lock taken once per request. */
#include "config.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "escape.h"
#include "script_metrics.h"

/* Upper bounds of the duration buckets, in milliseconds; +Inf is last. */
static const long long bucket_ms[] = { 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000 };
#define N_BUCKETS (sizeof(bucket_ms) / sizeof(bucket_ms[0]))

struct script_figures {
	char *path;
	unsigned long long requests;
	unsigned long long buckets[N_BUCKETS]; /* requests up to each bound */
	long long duration_ms, cpu_usec;       /* sums */
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct script_figures table[SCRIPT_METRICS_MAX + 1]; /* the last: "other" */
static size_t n_scripts;

static struct script_figures *find(const char *path)
{
	for (size_t i = 0; i < n_scripts; i++) {
		if (strcmp(table[i].path, path) == 0)
			return &table[i];
	}
	if (n_scripts < SCRIPT_METRICS_MAX && (table[n_scripts].path = strdup(path)) != NULL)
		return &table[n_scripts++];
	return &table[SCRIPT_METRICS_MAX];
}

void script_metrics_add(const char *path, long long duration_ms, long long cpu_usec)
{
	struct script_figures *f;

	pthread_mutex_lock(&lock);
	f = find(path);
	f->requests++;
	for (size_t b = 0; b < N_BUCKETS; b++) {
		if (duration_ms <= bucket_ms[b])
			f->buckets[b]++;
	}
	f->duration_ms += duration_ms;
	f->cpu_usec += cpu_usec;
	pthread_mutex_unlock(&lock);
}

static const char *name_of(const struct script_figures *f)
{
	return f == &table[SCRIPT_METRICS_MAX] ? "other" : f->path;
}

void script_metrics_render(FILE *m)
{
	size_t n;

	pthread_mutex_lock(&lock);
	n = n_scripts;
	fputs("# TYPE fcgiwrap_script_cpu_seconds counter\n"
	      "# HELP fcgiwrap_script_cpu_seconds CPU time of each script's processes.\n", m);
	for (size_t i = 0; i <= SCRIPT_METRICS_MAX; i++) {
		const struct script_figures *f = &table[i];
		if (i >= n && i != SCRIPT_METRICS_MAX)
			continue;
		if (!f->requests)
			continue;
		fputs("fcgiwrap_script_cpu_seconds_total{script=\"", m);
		escape_metric_label(m, name_of(f));
		fprintf(m, "\"} %.6f\n", f->cpu_usec / 1e6);
	}
	fputs("# TYPE fcgiwrap_script_duration_seconds histogram\n"
	      "# HELP fcgiwrap_script_duration_seconds Durations of each script's requests.\n", m);
	for (size_t i = 0; i <= SCRIPT_METRICS_MAX; i++) {
		const struct script_figures *f = &table[i];
		if ((i >= n && i != SCRIPT_METRICS_MAX) || !f->requests)
			continue;
		for (size_t b = 0; b <= N_BUCKETS; b++) {
			fputs("fcgiwrap_script_duration_seconds_bucket{script=\"", m);
			escape_metric_label(m, name_of(f));
			if (b < N_BUCKETS)
				fprintf(m, "\",le=\"%g\"} %llu\n", bucket_ms[b] / 1000.0, f->buckets[b]);
			else
				fprintf(m, "\",le=\"+Inf\"} %llu\n", f->requests);
		}
		fputs("fcgiwrap_script_duration_seconds_count{script=\"", m);
		escape_metric_label(m, name_of(f));
		fprintf(m, "\"} %llu\nfcgiwrap_script_duration_seconds_sum{script=\"", f->requests);
		escape_metric_label(m, name_of(f));
		fprintf(m, "\"} %.3f\n", f->duration_ms / 1000.0);
	}
	pthread_mutex_unlock(&lock);
}
