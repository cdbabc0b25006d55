/* Serving a connection (see serve.h): the keep-alive loop, and each request
 * through its phases: parameters parsed once, the daemon's own pages, the
 * script chosen and checked against the policy, a script slot, the start,
 * the relay, and request_finish() whatever happened. */
#include "config.h"

#include <errno.h>
#include <fastcgi.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "admission.h"
#include "cgi_env.h"
#include "cgroup.h"
#include "clock.h"
#include "interpreters.h"
#include "log.h"
#include "relay.h"
#include "sandbox.h"
#include "request.h"
#include "serve.h"
#include "settings.h"
#include "script_classes.h"
#include "stats.h"
#include "status_query.h"
#include "stopping.h"

/* How long a connection kept open by the web server may idle between
 * requests (nginx's upstream keepalive_timeout defaults to 60 s too). */
#define KEEPALIVE_TIMEOUT_MS 60000
/* After a request that moved more than this through the worker's buffers,
 * their pages are given back (see worker_buffers_trim). */
#define TRIM_ABOVE (16 * 1024)

/* Set while script starts fail for lack of resources (one log line per
 * episode, not per request). */
static atomic_bool resource_shortage;

static bool is_resource_shortage(int err)
{
	return err == EAGAIN || err == EMFILE || err == ENFILE || err == ENOMEM;
}

/* How a phase before the relay ended its request: request_refuse() or
 * request_finish() follows, once, in serve_request(). */
struct early_end {
	bool ended;
	enum request_end end;
	const char *status_line; /* END_REFUSED: the answer's status */
	const char *why;
	char buf[160];           /* a formatted why */
};

/* Refuses with status_line and a formatted reason (fmt NULL: no log
 * line).  Returns -1. */
__attribute__((format(printf, 3, 4)))
static int refuse(struct early_end *e, const char *status_line, const char *fmt, ...)
{
	va_list ap;

	e->ended = true;
	e->end = END_REFUSED;
	e->status_line = status_line;
	e->why = NULL;
	if (fmt) {
		va_start(ap, fmt);
		vsnprintf(e->buf, sizeof(e->buf), fmt, ap);
		va_end(ap);
		e->why = e->buf;
	}
	return -1;
}

/* --status-path and --ping-path: answered by the daemon itself.  Returns
 * true if the request was one of them. */
static bool serve_builtin_page(struct request *r, struct early_end *e)
{
	const char *name = r->params.script_name, *type;
	struct status_query query;
	struct status_inputs in;
	char *page;

	if (!name)
		return false;
	if (cfg.ping_path && strcmp(name, cfg.ping_path) == 0) {
		request_page(r, "text/plain", "pong\n");
		return true;
	}
	if (!cfg.status_path || strcmp(name, cfg.status_path) != 0)
		return false;
	query = status_query_parse(r->params.query_string);
	in = (struct status_inputs){ .max_scripts = cfg.max_active, .containment = cgroups_containment(),
				     .sandbox = sandbox_describe(), .cgroups = cgroups_on(),
				     .sandboxed = strcmp(sandbox_describe(), "none") != 0,
				     .leftover_cgroups = cgroups_leftovers(), .full = query.full };
	page = stats_render(query.format, &in, &type);
	if (page)
		request_page(r, type, page);
	else
		refuse(e, "500 Internal Server Error", "cannot render the status page: out of memory");
	free(page);
	return true;
}

/* Where the script runs: FCGI_CHDIR if sent ("-" for the daemon's own
 * directory), else the script's directory.  Returns 0, or -1 with *why. */
static int choose_directory(struct request *r, const char **why)
{
	const char *want = r->params.fcgi_chdir, *slash;
	struct stat st;

	if (want) {
		if (strcmp(want, "-") == 0)
			return 0;
		if (stat(want, &st) < 0 || !S_ISDIR(st.st_mode)) {
			*why = "FCGI_CHDIR is not a directory";
			return -1;
		}
		r->script.dir = strdup(want);
	} else {
		slash = strrchr(r->script.loc.filename, '/');
		if (!slash) {
			*why = "script path is not a full path";
			return -1;
		}
		r->script.dir = slash == r->script.loc.filename ? strdup("/") : strndup(r->script.loc.filename, (size_t)(slash - r->script.loc.filename));
	}
	if (!r->script.dir) {
		*why = "out of memory";
		return -1;
	}
	return 0;
}

/* How the request came to its script, for the rules on where it lies;
 * mode is the file's, as last seen. */
static struct script_origin origin_of(const struct request *r, mode_t mode)
{
	const struct request_params *p = &r->params;

	return (struct script_origin){ .document_root = p->document_root,
				       .walked = !p->script_filename || !*p->script_filename,
				       .interpreted = r->script.interpreter != NULL,
				       .executable = mode & (S_IXUSR | S_IXGRP | S_IXOTH) };
}

/* Finds the script and checks it against the policy, so that a request
 * that will be refused is refused at once, without waiting for a script
 * slot.  Returns 0, or -1 once the request has been refused. */
static int select_script(struct request *r, struct early_end *e)
{
	const struct request_params *p = &r->params;
	struct runnable_probe probe = { .interpreters = &cfg.interpreters };
	struct script_origin from;
	const char *why = NULL;

	switch (script_resolve(p->script_filename, p->document_root, p->script_name, file_probe_runnable, &probe,
			       &r->script.loc, &why)) {
	case SCRIPT_FOUND:
		break;
	case SCRIPT_NOT_FOUND:
		return refuse(e, "404 Not Found", "script not found: %s", why);
	case SCRIPT_FORBIDDEN:
		return refuse(e, "403 Forbidden", "script refused: %s", why);
	}
	r->script.interpreter = interpreters_find(&cfg.interpreters, r->script.loc.filename);
	/* The file as the walk found it (its last probe): these checks are
	 * early ones, made again on the file opened (bind_script()). */
	from = origin_of(r, probe.last.st_mode);
	from.seen = &probe.last;
	if (script_policy_check(&cfg.policy, r->script.loc.filename, &from, &why) < 0 ||
	    choose_directory(r, &why) < 0)
		return refuse(e, "403 Forbidden", "script refused: %s", why);
	return 0;
}

/* Makes a relative script path absolute, since the script is executed
 * after the change of directory. */
static int absolutize(struct request *r)
{
	char *cwd, *abs;
	int rc;

	if (r->script.loc.filename[0] == '/')
		return 0;
	/* Allocated, not PATH_MAX on the stack: a worker's stack pages stay
	 * with it (see worker_stack_trim()). */
	cwd = getcwd(NULL, 0);
	if (!cwd)
		return -1;
	rc = asprintf(&abs, "%s/%s", cwd, r->script.loc.filename);
	free(cwd);
	if (rc < 0)
		return -1;
	free(r->script.loc.filename);
	r->script.loc.filename = abs;
	return 0;
}

/* The script's environment.  An interpreter gets SCRIPT_FILENAME as the
 * file that was checked, whoever named it: php-cgi runs the file
 * SCRIPT_FILENAME names (its argument it ignores), and answers 404 "No
 * input file specified" without one.  Returns 0, or -1 once refused. */
static int prepare_environment(struct request *r, struct early_end *e)
{
	struct env_override ov[4 + cfg.n_set_env];
	size_t nov = 0;

	if (absolutize(r) < 0)
		goto fail;
	if (r->script.loc.script_name) {
		ov[nov++] = (struct env_override){ "SCRIPT_NAME", r->script.loc.script_name };
		ov[nov++] = (struct env_override){ "PATH_INFO", r->script.loc.path_info };
	}
	/* PATH_TRANSLATED goes: php-cgi runs the file it names instead, with
	 * cgi.fix_pathinfo=0 or REDIRECT_URL set. */
	if (r->script.interpreter) {
		ov[nov++] = (struct env_override){ "SCRIPT_FILENAME", r->script.loc.filename };
		ov[nov++] = (struct env_override){ "PATH_TRANSLATED", NULL };
	}
	for (size_t i = 0; i < cfg.n_set_env; i++)
		ov[nov++] = cfg.set_env[i];
	r->script.env = cgi_env_build(r->params.env, cfg.inherited_env, ov, nov);
	if (r->script.env)
		return 0;
fail:
	return refuse(e, "502 Bad Gateway", "cannot prepare the environment: %s", strerror(errno ? errno : ENOMEM));
}

/* While a request waits for a script slot, its body is read on, so that
 * an abort or a close ends the wait. */
static int read_while_queued(void *ctx, short revents, enum request_end *end, const char **why)
{
	struct request *r = ctx;

	return relay_read_peer(&r->relay, revents, end, why);
}

/* The script's slots (admission.c).  Returns 0 with them, or -1 with how
 * the request ends: a 503 when they stayed busy for --queue-timeout. */
static int take_slot(struct request *r, struct early_end *e)
{
	struct admission_wait w = { .peer = &r->relay.set.body, .service = read_while_queued, .ctx = r,
				    .stop_fd = stopping_kill_fd(), .wake_fd = r->wb->wake_fd };
	int rc = admission_take(&r->slots, script_class_of(r->script.loc.filename), r->deadline, &w, &e->end,
				&e->why);

	if (rc > 0)
		return 0;
	if (rc == 0)
		return refuse(e, "503 Service Unavailable", NULL);
	e->ended = true;
	return -1;
}

/* The size of the script's stdin pipe: 256 KiB for a body of more than
 * 64 KiB (measured: the relay's CPU per GiB uploaded drops by about a
 * third against the default 64 KiB), the default otherwise.  Not for
 * every request: a user's pipes share a limit (pipe-user-pages-soft, 64
 * MiB by default), past which new pipes get one page. */
static int stdin_pipe_size(const struct request *r)
{
	return r->params.body_length > 64 * 1024 ? 256 * 1024 : 0;
}

static int start_failed(struct request *r, struct early_end *e, int err, const char *step);

/* After the slot, just before the start: opens the script as it is now
 * and checks it again, and binds the two: what runs is the file that
 * passed the checks, not what its path leads to by then (a symlink may
 * have been swapped while the request waited for its slot).  Returns 0,
 * or -1 once the request has been refused. */
static int bind_script(struct request *r, struct early_end *e)
{
	struct script_origin from;
	struct stat opened;
	const char *why = NULL;

	r->script.fd = open(r->script.loc.filename, O_PATH | O_CLOEXEC);
	if (r->script.fd < 0 && is_resource_shortage(errno))
		return start_failed(r, e, errno, "open the script"); /* 503: no fd left is not a missing script */
	if (r->script.fd < 0 || fstat(r->script.fd, &opened) < 0)
		return refuse(e, "404 Not Found", "script not found: %s", strerror(errno));
	from = origin_of(r, opened.st_mode);
	from.opened = &opened;
	from.fd = r->script.fd;
	if (script_policy_check(&cfg.policy, r->script.loc.filename, &from, &why) < 0)
		return refuse(e, "403 Forbidden", "script refused: %s", why);
	if (!S_ISREG(opened.st_mode) || (!r->script.interpreter && !(opened.st_mode & (S_IXUSR | S_IXGRP | S_IXOTH))))
		return refuse(e, "403 Forbidden", "script refused: not an executable file");
	r->script.dev = opened.st_dev;
	r->script.ino = opened.st_ino;
	return 0;
}

/* Starts the script in a cgroup of its own when there are cgroups.
 * Returns what script_spawn() does. */
static int spawn_contained(struct request *r, struct script_start *st, const char **step)
{
	struct script_cgroup *cg = cgroup_take();
	int rc;

	/* Never uncontained where cgroups are promised: without its cgroup
	 * a script would run without the --script-*-max limits, and what
	 * it starts could outlive it (cgroup_take() logged why). */
	if (!cg && cgroups_on()) {
		*step = "cgroup";
		return EAGAIN;
	}
	st->cgroup = cg;
	if (cg && (st->cgroup_dir_fd = cgroup_open(cg)) < 0) {
		*step = "cgroup";
		rc = errno;
		cgroup_release(cg);
		return rc;
	}
	rc = script_spawn(st, &r->proc, step);
	if (st->cgroup_dir_fd >= 0)
		close(st->cgroup_dir_fd);
	if (rc != 0 && cg)
		cgroup_release(cg);
	return rc;
}

/* A start that failed: a shortage of processes, fds or memory is said
 * once per episode and answered 503 (the next request tries again);
 * anything else is the script's, a 502.  Returns -1. */
static int start_failed(struct request *r, struct early_end *e, int err, const char *step)
{
	atomic_fetch_add(&stats.spawn_failures, 1);
	if (is_resource_shortage(err)) {
		if (!atomic_exchange(&resource_shortage, true))
			log_errx("cannot start scripts (%s: %s); answering 503 until resources return", step,
				 strerror(err));
		return refuse(e, "503 Service Unavailable", NULL);
	}
	if (strcmp(step, "exec") == 0 && r->script.interpreter)
		return refuse(e, "502 Bad Gateway", "cannot run it through the --interpreter %s: %s",
			      r->script.interpreter, strerror(err));
	if (strcmp(step, "exec") == 0)
		return refuse(e, "502 Bad Gateway", "cannot execute script: %s", strerror(err));
	return refuse(e, "502 Bad Gateway", "cannot start script (%s): %s", step, strerror(err));
}

/* Starts the script.  Returns 0, or -1 with how the request ends. */
static int start_script(struct request *r, struct early_end *e)
{
	struct script_start st;
	const char *step;
	int rc;

	if (bind_script(r, e) < 0)
		return -1;
	st = (struct script_start){ .path = r->script.loc.filename, .interpreter = r->script.interpreter,
				    .fd = r->script.fd, .dev = r->script.dev, .ino = r->script.ino,
				    .envp = r->script.env, .dir = r->script.dir, .stdin_pipe_size = stdin_pipe_size(r),
				    .stdin_empty = fcgi_conn_body_known_empty(r->conn),
				    .rlimits = cfg.rlimits, .n_rlimits = cfg.n_rlimits, .cgroup_dir_fd = -1 };
	rc = spawn_contained(r, &st, &step);
	if (rc != 0)
		return start_failed(r, e, rc, step);
	if (atomic_exchange(&resource_shortage, false))
		log_info("scripts can be started again");
	activity_set_script(&r->activity, r->script.loc.filename, r->proc.pid);
	atomic_store(&r->activity.state, r->relay.stdin_ended ? ACTIVITY_RUNNING : ACTIVITY_BODY);
	response_name(&r->resp, r->script.loc.filename);
	return 0;
}

/* The request's parameters, decoded once.  Returns 0, or -1 after logging
 * why the connection is given up. */
static int read_params(struct request *r)
{
	struct fcgi_conn *c = r->conn;
	const char *why;

	if (request_params_decode(c->rd.head, c->rd.head_len, &r->params, &why) < 0) {
		log_warnx("closing a connection: %s", why);
		return -1;
	}
	if (r->params.dropped)
		log_warnx("%s: ignored %zu parameter(s) whose name is empty or holds '=' or NUL",
			  request_label(r), r->params.dropped);
	if (c->rd.role != FCGI_RESPONDER) {
		log_warnx("FastCGI role %u refused: only the responder role is served", c->rd.role);
		fcgi_conn_end_request(c, FCGI_UNKNOWN_ROLE);
		return -1;
	}
	return 0;
}

/* The relay's look at the script's end (relay_script.exited): one
 * waitid(), and only for a script not gone yet its pidfd. */
static bool script_has_exited(void *ctx, int *fd)
{
	struct script_proc *sp = ctx;

	if (script_exited(sp))
		return true;
	*fd = script_pidfd(sp);
	return false;
}

/* A request for a script, through its phases: chosen and checked, its
 * environment, a slot, the start, the relay, and its end.  Returns with
 * e->ended when a phase before the relay ended it. */
static void run_script(struct request *r, struct early_end *e)
{
	struct relay_script script;
	enum request_end end;
	const char *why = NULL;

	if (select_script(r, e) < 0 || prepare_environment(r, e) < 0 || take_slot(r, e) < 0 ||
	    start_script(r, e) < 0)
		return;
	script = (struct relay_script){ .stdin_fd = &r->proc.stdin_fd, .stdout_fd = &r->proc.stdout_fd,
					.stderr_fd = &r->proc.stderr_fd, .exited = script_has_exited, .ctx = &r->proc };
	end = relay_run(&r->relay, &script, &why);
	request_finish(r, end, why);
}

/* Serves the request whose head c has read.  Returns true if the
 * connection can serve another. */
static bool serve_request(struct fcgi_conn *c, struct worker_buffers *wb)
{
	struct request r;
	struct early_end e = { .ended = false };
	bool usable;

	request_init(&r, c, wb);
	if (read_params(&r) < 0) {
		request_free(&r);
		return false;
	}
	request_list(&r);
	if (!serve_builtin_page(&r, &e))
		run_script(&r, &e);
	if (e.ended && e.end == END_REFUSED)
		request_refuse(&r, e.status_line, e.why);
	else if (e.ended)
		request_finish(&r, e.end, e.why);
	usable = !r.conn_broken;
	if ((r.relay.bytes_in > TRIM_ABOVE || r.resp.out.stdout_bytes > TRIM_ABOVE) && c->in_pos == c->in_len)
		worker_buffers_trim(wb);
	request_free(&r);
	return usable;
}

void serve_connection(struct fcgi_conn *c, struct worker_buffers *wb)
{
	bool first = true;

	while (fcgi_conn_await_head(c, first, KEEPALIVE_TIMEOUT_MS, stopping_stop_fd()) > 0) {
		first = false;
		if (!serve_request(c, wb) || !c->rd.keep_conn)
			break;
	}
}
