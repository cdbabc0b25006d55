/* The command line.  Each option is one row of the table below: its
 * names, its argument, how it is parsed, where in the settings it goes,
 * its default, and its line in --help.  The defaults are parsed by the
 * same code as the arguments, before them. */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "options.h"
#include "rlimit_spec.h"
#include "settings.h"
#include "socket_url.h"

struct settings cfg;

enum option_kind {
	OPT_FLAG,    /* bool, set to true */
	OPT_COUNT,   /* unsigned, 1 to 1000000 */
	OPT_SECONDS, /* int milliseconds, from 0 to 1000000 s, fractions allowed */
	OPT_SIZE,    /* unsigned long long bytes, with K, M or G (1024s) */
	OPT_STRING,  /* const char *, as given */
	OPT_CUSTOM,  /* parsed by set() */
};

struct option_def {
	const char *name;
	char short_name;         /* 0: none */
	const char *arg;         /* argument's name in --help; NULL: none */
	enum option_kind kind;
	size_t offset;           /* into struct settings (not OPT_CUSTOM) */
	void (*set)(const char *arg);
	const char *def;         /* default, parsed at start; NULL: none */
	const char *help;        /* '\n' starts a new line; '@' is the default */
	bool nonzero;            /* OPT_SECONDS: 0 is refused */
};

static void usage_error(const char *what, const char *arg)
{
	fprintf(stderr, "fcgiwrap: %s '%s'\nTry 'fcgiwrap --help' for more information.\n", what, arg);
	exit(1);
}

static void set_socket(const char *arg)
{
	if (strcmp(arg, "help") == 0) {
		fputs(socket_url_help, stdout);
		exit(0);
	}
	cfg.socket_urls = realloc(cfg.socket_urls, (cfg.n_socket_urls + 1) * sizeof(char *));
	if (!cfg.socket_urls)
		fatalx("out of memory");
	cfg.socket_urls[cfg.n_socket_urls++] = (char *)arg;
}

/* -p and --root: kept as given here, and resolved once the daemon is in
 * its --chroot (script_policy_resolve()), since they name paths as
 * scripts see them. */
static void add_path(char ***list, size_t *n, const char *arg)
{
	char *entry = strdup(arg);

	*list = realloc(*list, (*n + 1) * sizeof(char *));
	if (!*list || !entry)
		fatalx("out of memory");
	(*list)[(*n)++] = entry;
}

static void set_allow_program(const char *arg)
{
	add_path(&cfg.policy.allowed, &cfg.policy.n_allowed, arg);
}

static void set_root(const char *arg)
{
	add_path(&cfg.policy.roots, &cfg.policy.n_roots, arg);
}

static void set_interpreter(const char *arg)
{
	const char *why;

	if (interpreters_add(&cfg.interpreters, arg, &why) < 0) {
		fprintf(stderr, "fcgiwrap: invalid --interpreter '%s': %s\n", arg, why);
		exit(1);
	}
}

static void set_rlimit(const char *spec)
{
	struct rlimit_setting r;
	struct rlimit cur;
	const char *why;

	if (rlimit_spec_parse(spec, &r, &why) < 0) {
		fprintf(stderr, "fcgiwrap: invalid --rlimit '%s': %s (names: %s)\n", spec, why, rlimit_spec_names);
		exit(1);
	}
	/* Only root may raise a hard limit: find out now, not per request. */
	if (geteuid() != 0 && getrlimit(r.resource, &cur) == 0 && cur.rlim_max != RLIM_INFINITY &&
	    (r.limit.rlim_max == RLIM_INFINITY || r.limit.rlim_max > cur.rlim_max))
		fatalx("--rlimit %s: above the current hard limit, which only root may raise", spec);
	cfg.rlimits = realloc(cfg.rlimits, (cfg.n_rlimits + 1) * sizeof(*cfg.rlimits));
	if (!cfg.rlimits)
		fatalx("out of memory");
	cfg.rlimits[cfg.n_rlimits++] = r;
}

static void set_socket_mode(const char *arg)
{
	char *end;
	unsigned long m = strtoul(arg, &end, 8);

	if (*end || end == arg || m > 0777)
		usage_error("invalid --socket-mode (octal, like 0660):", arg);
	cfg.socket_mode = (int)m;
}

static void set_allow_from(const char *arg)
{
	const char *why;

	cfg.allow_from = realloc(cfg.allow_from, (cfg.n_allow_from + 1) * sizeof(*cfg.allow_from));
	if (!cfg.allow_from)
		fatalx("out of memory");
	if (peer_rule_parse(arg, &cfg.allow_from[cfg.n_allow_from], &why) < 0)
		usage_error("invalid --allow-from (ADDR or ADDR/PREFIX):", arg);
	cfg.n_allow_from++;
}

static void set_env(const char *arg)
{
	char *copy = strdup(arg), *eq = copy ? strchr(copy, '=') : NULL;

	if (!copy)
		fatalx("out of memory");
	if (!eq || eq == copy)
		usage_error("--env takes NAME=VALUE, not", arg);
	cfg.set_env = realloc(cfg.set_env, (cfg.n_set_env + 1) * sizeof(*cfg.set_env));
	if (!cfg.set_env)
		fatalx("out of memory");
	*eq = '\0';
	cfg.set_env[cfg.n_set_env++] = (struct env_override){ copy, eq + 1 };
}

static void set_pass_env(const char *arg)
{
	cfg.pass_env = realloc(cfg.pass_env, (cfg.n_pass_env + 1) * sizeof(char *));
	if (!cfg.pass_env)
		fatalx("out of memory");
	cfg.pass_env[cfg.n_pass_env++] = (char *)arg;
}

static void set_log_level(const char *arg)
{
	enum log_level level;

	if (log_level_parse(arg, &level) < 0)
		usage_error("invalid log level:", arg);
	log_set_level(level);
}

static void set_leftovers(const char *arg)
{
	if (strcmp(arg, "keep") != 0 && strcmp(arg, "kill") != 0)
		usage_error("--leftovers takes keep or kill, not", arg);
	cfg.leftovers_kill = strcmp(arg, "kill") == 0;
}

/* --script-read and --script-write: directories, opened once the daemon
 * is in its --chroot (sandbox.c). */
static void add_dir(char ***list, size_t *n, const char *arg)
{
	*list = realloc(*list, (*n + 1) * sizeof(char *));
	if (!*list)
		fatalx("out of memory");
	(*list)[(*n)++] = (char *)arg;
}

static void set_script_read(const char *arg)
{
	add_dir(&cfg.script_read, &cfg.n_script_read, arg);
}

static void set_script_write(const char *arg)
{
	add_dir(&cfg.script_write, &cfg.n_script_write, arg);
}

/* --script-limit PATH=N; the '=' that counts is the last, so that PATH
 * may hold one. */
static void set_script_limit(const char *arg)
{
	const char *eq = strrchr(arg, '=');
	char *end, *path;
	unsigned long n;

	if (!eq || eq == arg)
		usage_error("--script-limit takes PATH=N, not", arg);
	errno = 0;
	n = strtoul(eq + 1, &end, 10);
	if (errno || *end || end == eq + 1 || n == 0 || n > 1000000)
		usage_error("--script-limit takes PATH=N with N from 1, not", arg);
	path = strndup(arg, (size_t)(eq - arg));
	cfg.script_limits = realloc(cfg.script_limits, (cfg.n_script_limits + 1) * sizeof(*cfg.script_limits));
	if (!path || !cfg.script_limits)
		fatalx("out of memory");
	cfg.script_limits[cfg.n_script_limits++] = (struct script_limit){ path, (unsigned)n };
}

static void show_help(const char *arg);

static void show_version(const char *arg)
{
	(void)arg;
	printf("%s %s\n", PACKAGE_NAME, PACKAGE_VERSION);
	exit(0);
}

#define AT(field) offsetof(struct settings, field)

static const struct option_def options[] = {
	{ "concurrency", 'c', "N", OPT_COUNT, AT(max_active), NULL, "256", "run up to N scripts at once", false },
	{ "script-limit", 0, "PATH=N", OPT_CUSTOM, 0, set_script_limit, NULL,
	  "run at most N of the scripts PATH names (a program\nor a directory) at once; repeatable", false },
	{ "max-connections", 0, "N", OPT_COUNT, AT(max_connections), NULL, "1024", "serve up to N connections at once",
	  false },
	{ "start-limit", 0, "N", OPT_COUNT, AT(start_limit), NULL, NULL,
	  "let at most N scripts start at once: until their\nfirst output, exit, 50 ms, or seen waiting\n(default: 2 per CPU)", false },
	{ "stderr-to-fastcgi", 'f', NULL, OPT_FLAG, AT(stderr_to_fastcgi), NULL, NULL,
	  "send scripts' stderr to the web server (FCGI_STDERR)\ninstead of fcgiwrap's own log", false },
	{ "socket", 's', "URL", OPT_CUSTOM, 0, set_socket, NULL, "listen on URL (repeatable; '-s help' lists the forms)",
	  false },
	{ "allow-program", 'p', "PATH", OPT_CUSTOM, 0, set_allow_program, NULL,
	  "run only this script, or the scripts under this\ndirectory (repeatable)", false },
	{ "root", 0, "DIR", OPT_CUSTOM, 0, set_root, NULL, "run only scripts whose real path is under DIR\n(repeatable)",
	  false },
	{ "interpreter", 0, "SUFFIX=PROGRAM", OPT_CUSTOM, 0, set_interpreter, NULL,
	  "run files whose name ends in SUFFIX as 'PROGRAM FILE',\nexecutable or not (repeatable)", false },
	{ "allow-symlinks-out", 0, NULL, OPT_FLAG, AT(policy.allow_symlinks_out), NULL, NULL,
	  "let a script found through DOCUMENT_ROOT be a\nsymlink to a file outside it", false },
	{ "allow-writable", 0, NULL, OPT_FLAG, AT(policy.allow_writable), NULL, NULL,
	  "run scripts writable by group or others", false },
	{ "timeout", 't', "SECONDS", OPT_SECONDS, AT(timeout_ms), NULL, "3600",
	  "end a request after this long (default @; 0: never)", false },
	{ "inactivity-timeout", 0, "SECONDS", OPT_SECONDS, AT(inactivity_timeout_ms), NULL, "300",
	  "end a request when no byte went to or came from its\nscript for this long (default @; 0: never)", false },
	{ "kill-grace", 0, "SECONDS", OPT_SECONDS, AT(kill_grace_ms), NULL, "3",
	  "from SIGTERM to SIGKILL of an ended script (default @)", false },
	{ "peer-timeout", 0, "SECONDS", OPT_SECONDS, AT(peer_timeout_ms), NULL, "30",
	  "longest wait for the web server to send a request,\nthe next body bytes, or take output (default @)", true },
	{ "queue-timeout", 0, "SECONDS", OPT_SECONDS, AT(queue_timeout_ms), NULL, "30",
	  "longest wait for a free script slot before 503\n(default @)", false },
	{ "shutdown-timeout", 0, "SECONDS", OPT_SECONDS, AT(shutdown_timeout_ms), NULL, "60",
	  "on SIGTERM, wait this long for running requests\nbefore ending them (default @)", false },
	{ "idle-exit", 0, "SECONDS", OPT_SECONDS, AT(idle_exit_ms), NULL, NULL,
	  "with sockets from systemd, exit once no connection\nhas been open for this long", false },
	{ "rlimit", 0, "NAME=VALUE", OPT_CUSTOM, 0, set_rlimit, NULL,
	  "resource limit for scripts, repeatable: as, core,\ncpu, data, fsize, nofile, nproc, stack", false },
	{ "user", 0, "USER", OPT_STRING, AT(run_user), NULL, NULL,
	  "run as USER (and USER's groups) once the sockets\nare open; needed when started as root", false },
	{ "group", 0, "GROUP", OPT_STRING, AT(run_group), NULL, NULL, "run as GROUP instead of USER's primary group",
	  false },
	{ "allow-root", 0, NULL, OPT_FLAG, AT(allow_root), NULL, NULL, "let scripts run as root", false },
	{ "chroot", 0, "DIR", OPT_STRING, AT(chroot_dir), NULL, NULL, "chroot to DIR once the sockets are open", false },
	{ "socket-mode", 0, "MODE", OPT_CUSTOM, 0, set_socket_mode, "0660", "permissions of unix sockets (default @)",
	  false },
	{ "socket-owner", 0, "USER[:GROUP]", OPT_STRING, AT(socket_owner), NULL, NULL, "owner of unix sockets", false },
	{ "allow-from", 0, "ADDR[/PREFIX]", OPT_CUSTOM, 0, set_allow_from, NULL,
	  "accept TCP connections only from these peers\n(repeatable); needed to listen beyond loopback", false },
	{ "env", 0, "NAME=VALUE", OPT_CUSTOM, 0, set_env, NULL, "set NAME in every script's environment (repeatable)",
	  false },
	{ "pass-env", 0, "NAME", OPT_CUSTOM, 0, set_pass_env, NULL, "pass fcgiwrap's own NAME to scripts (repeatable)",
	  false },
	{ "clear-env", 0, NULL, OPT_FLAG, AT(clear_env), NULL, NULL, "pass none of fcgiwrap's environment but --pass-env",
	  false },
	{ "access-log", 0, "FILE", OPT_STRING, AT(access_log_path), NULL, NULL,
	  "log one line per request to FILE ('-': stdout)", false },
	{ "access-format", 0, "FORMAT", OPT_STRING, AT(access_log_format), NULL, NULL,
	  "format of those lines (see the man page)", false },
	{ "slow-log", 0, "SECONDS", OPT_SECONDS, AT(slow_log_ms), NULL, NULL, "log requests still running after this long",
	  false },
	{ "cgroup", 0, "DIR", OPT_STRING, AT(cgroup_dir), NULL, NULL,
	  "run each script in a cgroup of its own under DIR\n(cgroup v2; 'none': never; without it, the service's\n"
	  "own when systemd delegates it)", false },
	{ "leftovers", 0, "keep|kill", OPT_CUSTOM, 0, set_leftovers, "keep",
	  "processes a script leaves in its cgroup after a\nnormal end (default @)", false },
	{ "script-memory-max", 0, "SIZE", OPT_SIZE, AT(script_memory_max), NULL, NULL,
	  "memory for all of a script's processes, K, M or G", false },
	{ "script-pids-max", 0, "N", OPT_COUNT, AT(script_pids_max), NULL, NULL,
	  "processes and threads a script may have at once", false },
	{ "script-cpu-max", 0, "PERCENT", OPT_COUNT, AT(script_cpu_max), NULL, NULL,
	  "CPU for all of a script's processes, in percent of\none CPU", false },
	{ "no-isolation", 0, NULL, OPT_FLAG, AT(no_isolation), NULL, NULL,
	  "run scripts without their Landlock domain: they may\nthen run setuid programs and signal any process\n"
	  "of their user, but also ptrace each other and write\ntheir cgroup's files", false },
	{ "script-read", 0, "DIR", OPT_CUSTOM, 0, set_script_read, NULL,
	  "scripts may read and run files only under these\ndirectories and the system's (repeatable; Landlock)", false },
	{ "script-write", 0, "DIR", OPT_CUSTOM, 0, set_script_write, NULL,
	  "scripts may write only under these directories\n(repeatable; Landlock)", false },
	{ "spool-limit", 0, "SIZE", OPT_SIZE, AT(spool_limit), NULL, "64M",
	  "most output held per request until its body has\nended, K, M or G (default @; 0: no limit)", false },
	{ "status-path", 0, "PATH", OPT_STRING, AT(status_path), NULL, NULL,
	  "answer requests for SCRIPT_NAME PATH with live\nfigures (text; ?json, ?openmetrics)", false },
	{ "ping-path", 0, "PATH", OPT_STRING, AT(ping_path), NULL, NULL, "answer requests for SCRIPT_NAME PATH with 'pong'",
	  false },
	{ "log-level", 0, "LEVEL", OPT_CUSTOM, 0, set_log_level, "info", "error, warning, info or debug (default @)",
	  false },
	{ "help", 'h', NULL, OPT_CUSTOM, 0, show_help, NULL, "show this help and exit", false },
	{ "version", 'V', NULL, OPT_CUSTOM, 0, show_version, NULL, "show the version and exit", false },
};

#define N_OPTIONS (sizeof(options) / sizeof(options[0]))
/* getopt's value for an option without a short name: its row + this. */
#define LONG_ONLY 256
/* Where --help puts the text of each option. */
#define HELP_COLUMN 30

/* Prints one option's help text: lines after the first indented, '@'
 * replaced by the default, or the default added at the end. */
static void print_option_text(const struct option_def *o)
{
	for (const char *p = o->help; *p; p++) {
		if (*p == '\n')
			printf("\n%*s", HELP_COLUMN, "");
		else if (*p == '@')
			fputs(o->def, stdout);
		else
			putchar(*p);
	}
	if (o->def && !strchr(o->help, '@'))
		printf(" (default %s)", o->def);
	putchar('\n');
}

static void show_help(const char *arg)
{
	(void)arg;
	fputs("Usage: fcgiwrap [OPTION]...\nRuns CGI programs for a FastCGI web server.\n\nOptions:\n", stdout);
	for (size_t i = 0; i < N_OPTIONS; i++) {
		const struct option_def *o = &options[i];
		char left[64];
		int n = snprintf(left, sizeof(left), "  %c%c%c --%s%s%s", o->short_name ? '-' : ' ',
				 o->short_name ? o->short_name : ' ', o->short_name ? ',' : ' ', o->name,
				 o->arg ? "=" : "", o->arg ? o->arg : "");
		if (n + 2 > HELP_COLUMN)
			printf("%s\n%*s", left, HELP_COLUMN, "");
		else
			printf("%-*s", HELP_COLUMN, left);
		print_option_text(o);
	}
	fputs("\nWith no -s, fcgiwrap serves the sockets passed by systemd, or the\n"
	      "listening socket on file descriptor 0.\n",
	      stdout);
	exit(0);
}

/* The name of an option as a message gives it: "-c", or "--max-connections". */
static void option_label(const struct option_def *o, char *buf, size_t size)
{
	if (o->short_name)
		snprintf(buf, size, "-%c", o->short_name);
	else
		snprintf(buf, size, "--%s", o->name);
}

static void apply(const struct option_def *o, const char *arg)
{
	void *field = (char *)&cfg + o->offset;
	char what[128], label[32];
	char *end;

	option_label(o, label, sizeof(label));
	switch (o->kind) {
	case OPT_FLAG:
		*(bool *)field = true;
		break;
	case OPT_STRING:
		*(const char **)field = arg;
		break;
	case OPT_CUSTOM:
		o->set(arg);
		break;
	case OPT_COUNT: {
		unsigned long v;
		errno = 0;
		v = strtoul(arg, &end, 10);
		snprintf(what, sizeof(what), "invalid %s value (1 to 1000000):", label);
		if (errno || *end || end == arg || v < 1 || v > 1000000 || *arg == '-')
			usage_error(what, arg);
		*(unsigned *)field = (unsigned)v;
		break;
	}
	case OPT_SIZE: {
		static const char units[] = "KMG";
		const char *u;
		unsigned long long v;
		int shift = 0;
		errno = 0;
		v = strtoull(arg, &end, 10);
		if (*end && !end[1] && (u = strchr(units, *end)) != NULL) {
			shift = 10 * (int)(u - units + 1);
			end++;
		}
		snprintf(what, sizeof(what), "invalid %s value (bytes, or with K, M, G):", label);
		if (errno || *end || end == arg || *arg == '-' || (shift && v > (~0ULL >> shift)))
			usage_error(what, arg);
		*(unsigned long long *)field = v << shift;
		break;
	}
	case OPT_SECONDS: {
		double v;
		errno = 0;
		v = strtod(arg, &end);
		snprintf(what, sizeof(what), "invalid %s value (seconds%s):", label, o->nonzero ? ", more than 0" : "");
		if (errno || *end || end == arg || !(v >= 0 && v <= 1000000) || (o->nonzero && v * 1000 < 0.5))
			usage_error(what, arg);
		*(int *)field = (int)(v * 1000 + 0.5);
		break;
	}
	}
}

static const struct option_def *find_option(int val)
{
	if (val >= LONG_ONLY && (size_t)(val - LONG_ONLY) < N_OPTIONS)
		return &options[val - LONG_ONLY];
	for (size_t i = 0; i < N_OPTIONS; i++) {
		if (options[i].short_name && options[i].short_name == val)
			return &options[i];
	}
	return NULL;
}

void options_parse(int argc, char **argv)
{
	struct option longopts[N_OPTIONS + 1];
	char shortopts[2 * N_OPTIONS + 1];
	size_t ns = 0;
	int c;

	for (size_t i = 0; i < N_OPTIONS; i++) {
		const struct option_def *o = &options[i];
		longopts[i] = (struct option){ o->name, o->arg ? required_argument : no_argument, NULL,
					       o->short_name ? o->short_name : (int)(LONG_ONLY + i) };
		if (o->short_name) {
			shortopts[ns++] = o->short_name;
			if (o->arg)
				shortopts[ns++] = ':';
		}
		if (o->def)
			apply(o, o->def);
	}
	longopts[N_OPTIONS] = (struct option){ NULL, 0, NULL, 0 };
	shortopts[ns] = '\0';
	while ((c = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
		const struct option_def *o = find_option(c);
		if (!o) {
			fprintf(stderr, "Try 'fcgiwrap --help' for more information.\n");
			exit(1);
		}
		apply(o, optarg);
	}
	if (optind < argc)
		usage_error("unexpected argument:", argv[optind]);
	if (cfg.run_group && !cfg.run_user)
		usage_error("--group needs --user too:", cfg.run_group);
}
