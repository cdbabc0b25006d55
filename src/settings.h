/* The daemon's settings, filled in from the command line by options.c
 * (its table holds the defaults) and read-only once requests are served. */
#ifndef FCGIWRAP_SETTINGS_H
#define FCGIWRAP_SETTINGS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/resource.h>

#include <sys/types.h>

#include "cgi_env.h"
#include "interpreters.h"
#include "peer_acl.h"
#include "rlimit_spec.h"
#include "script_path.h"

struct settings {
	unsigned max_active;       /* -c: scripts running at once */
	struct script_limit { const char *path; unsigned limit; } *script_limits; /* --script-limit */
	size_t n_script_limits;
	unsigned max_connections;  /* connections served at once */
	unsigned start_limit;      /* --start-limit: scripts starting at once
				    * (0 until set: START_LIMIT_PER_CPU a CPU) */
	bool stderr_to_fastcgi;    /* -f */
	struct script_policy policy; /* -p, --root, --allow-*: what may run */
	struct interpreters interpreters; /* --interpreter: what runs files */
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
	int idle_exit_ms;          /* --idle-exit, 0 = never */
	int slow_log_ms;           /* --slow-log, 0 = off */
	unsigned long long spool_limit; /* --spool-limit bytes, 0 = none */
	const char *cgroup_dir;    /* --cgroup DIR, "none", or NULL: systemd's */
	bool leftovers_kill;       /* --leftovers=kill */
	unsigned long long script_memory_max; /* bytes, 0 = none */
	unsigned script_pids_max;  /* 0 = none */
	unsigned script_cpu_max;   /* percent of one CPU, 0 = none */
	bool no_isolation;         /* --no-isolation */
	char **script_read, **script_write; /* --script-read, --script-write */
	size_t n_script_read, n_script_write;
	const char *status_path;   /* --status-path, or NULL */
	const char *ping_path;     /* --ping-path, or NULL */
	struct rlimit_setting *rlimits; /* --rlimit, applied to scripts */
	size_t n_rlimits;

	/* Used at start only: sockets, privileges, logs. */
	char **socket_urls;        /* -s */
	size_t n_socket_urls;
	int socket_mode;           /* --socket-mode */
	const char *socket_owner;  /* --socket-owner USER[:GROUP] */
	struct peer_rule *allow_from; /* --allow-from */
	size_t n_allow_from;
	const char *run_user, *run_group, *chroot_dir; /* --user, --group, --chroot */
	bool allow_root;
	const char *access_log_path, *access_log_format;
};

extern struct settings cfg;

#endif
