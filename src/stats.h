/* Live figures for the status page, STATUS= and the access log. */
#ifndef FCGIWRAP_STATS_H
#define FCGIWRAP_STATS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

/* Response statuses counted one by one; others go to status_other. */
#define STATS_STATUSES 12
extern const int stats_status_codes[STATS_STATUSES];

struct stats {
	long long start_ms;          /* monotonic */
	long long start_unix;        /* wall clock, for the status page */
	atomic_ullong accepted;      /* connections */
	atomic_ullong requests;      /* requests answered, any way */
	atomic_uint connections;     /* open now */
	atomic_uint scripts;         /* running now */
	atomic_uint queued;          /* waiting for a script slot now */
	atomic_uint max_scripts;     /* most running at once since start */
	atomic_ullong status[STATS_STATUSES];
	atomic_ullong status_other;
	atomic_ullong timeouts;      /* -t or --inactivity-timeout */
	atomic_ullong aborts;        /* web server closed or aborted */
	atomic_ullong spawn_failures;
	atomic_ullong overloaded;    /* 503 for want of a script slot */
	atomic_ullong exit_zero, exit_nonzero, exit_signal;
	atomic_ullong slow;          /* requests that passed --slow-log */
	atomic_ullong leftover_processes; /* processes left behind, ever */
	atomic_ullong oom_kills;     /* scripts the OOM killer ended */
	atomic_ullong cpu_usec;      /* scripts' CPU time, all of it */
};

extern struct stats stats;

void stats_init(void);
void stats_count_status(int status);

/* What the status page shows besides the counters. */
struct status_inputs {
	unsigned max_scripts;      /* -c */
	const char *containment;   /* "cgroup DIR" or "process groups" */
	const char *sandbox;       /* "none", or what Landlock limits */
	bool cgroups, sandboxed;
	unsigned leftover_cgroups;
	bool full;                 /* ?full: every running request too */
};

/* Formats the status page: format "text", "json" or "openmetrics".
 * Returns a malloc'd string (NULL on allocation failure); *type gets the
 * Content-Type. */
char *stats_render(const char *format, const struct status_inputs *in, const char **type);

#endif
