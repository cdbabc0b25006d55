/* The daemon's settings, filled in by option parsing in fcgiwrap.c and
 * read-only once requests are served. */
#ifndef FCGIWRAP_SETTINGS_H
#define FCGIWRAP_SETTINGS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/resource.h>

/* Default cap on connections served at once (see -c in the man page). */
#define DEFAULT_MAX_ACTIVE 256

struct rlimit_setting {
	int resource;
	struct rlimit limit;
};

struct settings {
	unsigned max_active;       /* -c: connections served at once */
	bool stderr_to_fastcgi;    /* -f */
	char **allowed_programs;   /* -p, exact paths; none = any */
	size_t n_allowed_programs;
	char **inherited_env;      /* daemon environment passed to scripts */
	int kill_grace_ms;         /* SIGTERM to SIGKILL */
	int io_timeout_ms;         /* a peer stalled mid-record or not reading */
	int keepalive_timeout_ms;  /* idle kept-open connection */
	struct rlimit_setting *rlimits; /* --rlimit, applied to scripts */
	size_t n_rlimits;
};

extern struct settings cfg;

#endif
