/* The daemon's settings, filled in by option parsing in fcgiwrap.c and
 * read-only once requests are served. */
#ifndef FCGIWRAP_SETTINGS_H
#define FCGIWRAP_SETTINGS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/resource.h>

#include "cgi_env.h"
#include "script_path.h"

/* Defaults of the options; the man page explains each choice. */
#define DEFAULT_MAX_ACTIVE 256
#define DEFAULT_MAX_CONNECTIONS 1024
#define DEFAULT_TIMEOUT_S 3600
#define DEFAULT_INACTIVITY_TIMEOUT_S 300
#define DEFAULT_KILL_GRACE_S 3
#define DEFAULT_PEER_TIMEOUT_S 30
#define DEFAULT_QUEUE_TIMEOUT_S 30
#define DEFAULT_SHUTDOWN_TIMEOUT_S 60

struct rlimit_setting {
	int resource;
	struct rlimit limit;
};

struct settings {
	unsigned max_active;       /* -c: scripts running at once */
	unsigned max_connections;  /* connections served at once */
	bool stderr_to_fastcgi;    /* -f */
	struct script_policy policy; /* -p, --root, --allow-*: what may run */
	char **inherited_env;      /* daemon environment passed to scripts */
	struct env_override *set_env; /* --env NAME=VALUE */
	size_t n_set_env;
	char **pass_env;           /* --pass-env NAME */
	size_t n_pass_env;
	bool clear_env;            /* --clear-env */
	int timeout_ms;            /* -t: wall clock per request, 0 = none */
	int inactivity_timeout_ms; /* no byte to or from the script, 0 = none */
	int kill_grace_ms;         /* SIGTERM to SIGKILL */
	int peer_timeout_ms;       /* web server silent or not reading */
	int queue_timeout_ms;      /* wait for a script slot before 503 */
	int shutdown_timeout_ms;   /* SIGTERM: wait for requests this long */
	int slow_log_ms;           /* --slow-log, 0 = off */
	const char *status_path;   /* --status-path, or NULL */
	const char *ping_path;     /* --ping-path, or NULL */
	struct rlimit_setting *rlimits; /* --rlimit, applied to scripts */
	size_t n_rlimits;
};

extern struct settings cfg;

#endif
