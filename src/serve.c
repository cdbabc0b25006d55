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

#include "cgi_env.h"
#include "cgroup.h"
#include "clock.h"
#include "interpreters.h"
#include "log.h"
#include "relay.h"
#include "sandbox.h"
#include "request.h"
#include "response.h"
#include "serve.h"
#include "settings.h"
#include "script_classes.h"
#include "slots.h"
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
/* Set while requests time out waiting for a script slot. */
static atomic_bool overloaded;

static bool is_resource_shortage(int err)
{
	return err == EAGAIN || err == EMFILE || err == ENFILE || err == ENOMEM;
}

/* Refuses with a formatted reason. */
__attribute__((format(printf, 3, 4)))
static void refuse(struct request *r, const char *status_line, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(r->why_buf, sizeof(r->why_buf), fmt, ap);
	va_end(ap);
	request_refuse(r, status_line, r->why_buf);
}

/* How a request named its script, for log lines before it is resolved. */
static const char *named_script(const struct request_params *p)
{
	const char *name = p->script_filename;

	if (!name || !*name)
		name = p->script_name;
	return name && *name ? name : "(none)";
}

/* --status-path and --ping-path: answered by the daemon itself.  Returns
 * true if the request was one of them. */
static bool serve_builtin_page(struct request *r)
{
	const char *name = r->params.script_name, *type;
	struct status_query query;
	struct status_inputs in;
	char *page;

	if (!name)
		return false;
	if (cfg.ping_path && strcmp(name, cfg.ping_path) == 0) {
		r->label = cfg.ping_path;
		request_page(r, "text/plain", "pong\n");
		return true;
	}
	if (!cfg.status_path || strcmp(name, cfg.status_path) != 0)
		return false;
	r->label = cfg.status_path;
	query = status_query_parse(r->params.query_string);
	in = (struct status_inputs){ .max_scripts = cfg.max_active, .containment = cgroups_containment(),
				     .sandbox = sandbox_describe(), .cgroups = cgroups_on(),
				     .sandboxed = strcmp(sandbox_describe(), "none") != 0,
				     .leftover_cgroups = cgroups_leftovers(), .full = query.full };
	page = stats_render(query.format, &in, &type);
	if (page)
		request_page(r, type, page);
	else
		refuse(r, "500 Internal Server Error", "cannot render the status page: out of memory");
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
		r->dir = strdup(want);
	} else {
		slash = strrchr(r->loc.filename, '/');
		if (!slash) {
			*why = "script path is not a full path";
			return -1;
		}
		r->dir = slash == r->loc.filename ? strdup("/") : strndup(r->loc.filename, (size_t)(slash - r->loc.filename));
	}
	if (!r->dir) {
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
				       .interpreted = r->interpreter != NULL,
				       .executable = mode & (S_IXUSR | S_IXGRP | S_IXOTH) };
}

/* Finds the script and checks it against the policy, so that a request
 * that will be refused is refused at once, without waiting for a script
 * slot.  Returns 0, or -1 once the request has been refused. */
static int select_script(struct request *r)
{
	const struct request_params *p = &r->params;
	struct script_origin from;
	const char *why = NULL;
	struct stat st = { 0 };

	r->label = named_script(p);
	switch (script_resolve(p->script_filename, p->document_root, p->script_name, file_probe_runnable,
			       &cfg.interpreters, &r->loc, &why)) {
	case SCRIPT_FOUND:
		break;
	case SCRIPT_NOT_FOUND:
		refuse(r, "404 Not Found", "script not found: %s", why);
		return -1;
	case SCRIPT_FORBIDDEN:
		refuse(r, "403 Forbidden", "script refused: %s", why);
		return -1;
	}
	r->label = r->loc.filename;
	r->interpreter = interpreters_find(&cfg.interpreters, r->loc.filename);
	/* Only the interpreted need the mode: whether it is a program. */
	if (r->interpreter && stat(r->loc.filename, &st) < 0)
		st.st_mode = 0;
	from = origin_of(r, st.st_mode);
	if (script_policy_check(&cfg.policy, r->loc.filename, &from, NULL, &why) < 0 ||
	    choose_directory(r, &why) < 0) {
		refuse(r, "403 Forbidden", "script refused: %s", why);
		return -1;
	}
	return 0;
}

/* Makes a relative script path absolute, since the script is executed
 * after the change of directory. */
static int absolutize(struct request *r)
{
	char cwd[PATH_MAX], *abs;

	if (r->loc.filename[0] == '/')
		return 0;
	if (!getcwd(cwd, sizeof(cwd)) || asprintf(&abs, "%s/%s", cwd, r->loc.filename) < 0)
		return -1;
	free(r->loc.filename);
	r->label = r->loc.filename = abs;
	return 0;
}

/* The script's environment.  An interpreter gets SCRIPT_FILENAME as the
 * file that was checked, whoever named it: php-cgi runs the file
 * SCRIPT_FILENAME names (its argument it ignores), and answers 404 "No
 * input file specified" without one.  Returns 0, or -1 once refused. */
static int prepare_environment(struct request *r)
{
	struct env_override ov[4 + cfg.n_set_env];
	size_t nov = 0;

	if (absolutize(r) < 0)
		goto fail;
	if (r->loc.script_name) {
		ov[nov++] = (struct env_override){ "SCRIPT_NAME", r->loc.script_name };
		ov[nov++] = (struct env_override){ "PATH_INFO", r->loc.path_info };
	}
	/* PATH_TRANSLATED goes: php-cgi runs the file it names instead, with
	 * cgi.fix_pathinfo=0 or REDIRECT_URL set. */
	if (r->interpreter) {
		ov[nov++] = (struct env_override){ "SCRIPT_FILENAME", r->loc.filename };
		ov[nov++] = (struct env_override){ "PATH_TRANSLATED", NULL };
	}
	for (size_t i = 0; i < cfg.n_set_env; i++)
		ov[nov++] = cfg.set_env[i];
	r->env = cgi_env_build(r->params.env, cfg.inherited_env, ov, nov);
	if (r->env)
		return 0;
fail:
	refuse(r, "502 Bad Gateway", "cannot prepare the environment: %s", strerror(errno ? errno : ENOMEM));
	return -1;
}

/* Takes one of pool's slots, waiting in its queue until `until` if none is
 * free, and reading the body meanwhile as far as the buffer holds, so that
 * an abort, a close or the daemon's stop ends the wait.  Returns 1 with
 * the slot, 0 when the time is up, -1 with how the request must end. */
static int take_from(struct request *r, struct slot_pool *pool, long long until, enum request_end *end,
		     const char **why)
{
	struct slot_waiter w;
	int rc = 0;

	if (slot_try_take(pool))
		return 1;
	if (slot_wait_begin(pool, &w) < 0)
		return 0;
	atomic_fetch_add(&stats.queued, 1);
	for (;;) {
		short events = fcgi_conn_poll_events(r->conn);
		struct pollfd pfd[3] = { { .fd = w.efd, .events = POLLIN },
					 { .fd = events ? r->conn->fd : -1, .events = events },
					 { .fd = stopping_kill_fd(), .events = POLLIN } };
		long long left = until - monotonic_ms();
		if (left <= 0)
			break;
		if (poll(pfd, 3, (int)left) < 0 && errno != EINTR)
			break;
		if (pfd[0].revents)
			break;
		if (pfd[2].revents) {
			*end = END_STOPPING;
			*why = "the daemon is stopping";
			rc = -1;
			break;
		}
		if (pfd[1].revents && relay_read_conn(r, pfd[1].revents, end, why) < 0) {
			rc = -1;
			break;
		}
	}
	atomic_fetch_sub(&stats.queued, 1);
	if (!slot_wait_end(pool, &w))
		return rc;
	if (rc < 0) {
		slot_release(pool);
		return -1;
	}
	return 1;
}

/* Logs the first 503 of a run of them, and the end of the run. */
static void note_overload(atomic_bool *flag, bool now, const struct script_class *class)
{
	if (now && !atomic_exchange(flag, true)) {
		if (class)
			log_warnx("all %u slots of --script-limit %s stayed busy for --queue-timeout; answering 503 "
				  "until one frees in time", class->pool.limit, class->path);
		else
			log_warnx("all %u script slots (-c) stayed busy for --queue-timeout; answering 503 "
				  "until one frees in time", cfg.max_active);
	} else if (!now && atomic_exchange(flag, false)) {
		log_info("%s slots are available again", class ? class->path : "script");
	}
}

/* A slot of the script's --script-limit class, if it has one, then one of
 * the -c slots, both waited for within one --queue-timeout: a class whose
 * scripts are all busy queues its own requests, not everyone's.  Returns
 * 0 with the slots, or -1 once the request has ended. */
static int take_slot(struct request *r)
{
	enum request_end end = END_REFUSED;
	const char *why = NULL;
	long long until = monotonic_ms() + cfg.queue_timeout_ms;
	bool class_full;
	int rc;

	if (r->deadline && r->deadline < until)
		until = r->deadline;
	r->class = script_class_of(r->loc.filename);
	rc = r->class ? take_from(r, &r->class->pool, until, &end, &why) : 1;
	class_full = rc == 0;
	if (rc > 0) {
		r->has_class_slot = r->class != NULL;
		if (r->class)
			note_overload(&r->class->overloaded, false, r->class);
		rc = take_from(r, &script_slots, until, &end, &why);
		if (rc <= 0 && r->has_class_slot) {
			slot_release(&r->class->pool);
			r->has_class_slot = false;
		}
	}
	if (rc < 0) {
		request_finish(r, end, why);
		return -1;
	}
	if (rc == 0 && r->deadline && monotonic_ms() >= r->deadline) {
		request_finish(r, END_TIMED_OUT, "timed out (-t)");
		return -1;
	}
	if (rc == 0) {
		atomic_fetch_add(&stats.overloaded, 1);
		note_overload(class_full ? &r->class->overloaded : &overloaded, true, class_full ? r->class : NULL);
		request_refuse(r, "503 Service Unavailable", NULL);
		return -1;
	}
	r->has_slot = true;
	{
		unsigned running = atomic_fetch_add(&stats.scripts, 1) + 1;
		unsigned max = atomic_load(&stats.max_scripts);
		while (running > max && !atomic_compare_exchange_weak(&stats.max_scripts, &max, running))
			;
	}
	note_overload(&overloaded, false, NULL);
	return 0;
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

/* After the slot, just before the start: opens the script as it is now
 * and checks it again, and binds the two: what runs is the file that
 * passed the checks, not what its path leads to by then (a symlink may
 * have been swapped while the request waited for its slot).  Returns 0,
 * or -1 once the request has been refused. */
static int bind_script(struct request *r)
{
	struct script_origin from;
	char *checked = NULL;
	struct stat opened, now;
	const char *why = NULL;
	bool same;

	r->script_fd = open(r->loc.filename, O_PATH | O_CLOEXEC);
	if (r->script_fd < 0 || fstat(r->script_fd, &opened) < 0) {
		refuse(r, "404 Not Found", "script not found: %s", strerror(errno));
		return -1;
	}
	from = origin_of(r, opened.st_mode);
	if (script_policy_check(&cfg.policy, r->loc.filename, &from, &checked, &why) < 0) {
		refuse(r, "403 Forbidden", "script refused: %s", why);
		return -1;
	}
	same = stat(checked, &now) == 0 && now.st_dev == opened.st_dev && now.st_ino == opened.st_ino;
	free(checked);
	if (!same) {
		refuse(r, "403 Forbidden", "script refused: it changed while it was checked");
		return -1;
	}
	if (!S_ISREG(opened.st_mode) || (!r->interpreter && !(opened.st_mode & (S_IXUSR | S_IXGRP | S_IXOTH)))) {
		refuse(r, "403 Forbidden", "script refused: not an executable file");
		return -1;
	}
	r->script_dev = opened.st_dev;
	r->script_ino = opened.st_ino;
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
	if (cg && (st->cgroup_dir_fd = cgroup_open(cg)) < 0) {
		*step = "cgroup";
		rc = errno;
		cgroup_release(cg);
		return rc;
	}
	rc = script_spawn(st, &r->proc, step);
	if (st->cgroup_dir_fd >= 0)
		close(st->cgroup_dir_fd);
	if (rc == 0)
		r->proc.cgroup = cg;
	else if (cg)
		cgroup_release(cg);
	return rc;
}

/* Starts the script.  Returns 0, or -1 once the request has ended. */
static int start_script(struct request *r)
{
	struct script_start st;
	const char *step;
	int rc;

	if (bind_script(r) < 0)
		return -1;
	st = (struct script_start){ .path = r->loc.filename, .interpreter = r->interpreter, .fd = r->script_fd,
				    .dev = r->script_dev, .ino = r->script_ino, .envp = r->env, .dir = r->dir,
				    .stdin_pipe_size = stdin_pipe_size(r), .rlimits = cfg.rlimits,
				    .n_rlimits = cfg.n_rlimits, .cgroup_dir_fd = -1 };
	rc = spawn_contained(r, &st, &step);
	if (rc == 0) {
		activity_set_script(&r->activity, r->loc.filename, r->proc.pid);
		atomic_store(&r->activity.state, r->stdin_ended ? ACTIVITY_RUNNING : ACTIVITY_BODY);
	}

	if (rc == 0) {
		if (atomic_exchange(&resource_shortage, false))
			log_info("scripts can be started again");
		return 0;
	}
	atomic_fetch_add(&stats.spawn_failures, 1);
	if (is_resource_shortage(rc)) {
		/* Out of processes, fds or memory: say so once per episode,
		 * answer 503, and let the next request try again. */
		if (!atomic_exchange(&resource_shortage, true))
			log_errx("cannot start scripts (%s: %s); answering 503 until resources return", step,
				 strerror(rc));
		request_refuse(r, "503 Service Unavailable", NULL);
	} else if (strcmp(step, "exec") == 0 && r->interpreter) {
		refuse(r, "502 Bad Gateway", "cannot run it through the --interpreter %s: %s", r->interpreter,
		       strerror(rc));
	} else if (strcmp(step, "exec") == 0) {
		refuse(r, "502 Bad Gateway", "cannot execute script: %s", strerror(rc));
	} else {
		refuse(r, "502 Bad Gateway", "cannot start script (%s): %s", step, strerror(rc));
	}
	return -1;
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
			  named_script(&r->params), r->params.dropped);
	if (c->rd.role != FCGI_RESPONDER) {
		log_warnx("FastCGI role %u refused: only the responder role is served", c->rd.role);
		fcgi_conn_end_request(c, FCGI_UNKNOWN_ROLE);
		return -1;
	}
	return 0;
}

/* Serves the request whose head c has read.  Returns true if the
 * connection can serve another. */
static bool serve_request(struct fcgi_conn *c, struct worker_buffers *wb)
{
	struct request r;
	bool usable;

	request_init(&r, c, wb);
	if (read_params(&r) < 0) {
		request_free(&r);
		return false;
	}
	activity_begin(&r.activity, r.params.remote_addr, r.params.request_method, r.params.request_uri);
	r.listed = true;
	if (!serve_builtin_page(&r) && select_script(&r) == 0 && prepare_environment(&r) == 0 &&
	    take_slot(&r) == 0 && start_script(&r) == 0) {
		const char *why = NULL;
		enum request_end end = relay_run(&r, &why);
		request_finish(&r, end, why);
	}
	usable = !r.conn_broken;
	if ((r.bytes_in > TRIM_ABOVE || r.out.stdout_bytes > TRIM_ABOVE) && c->in_pos == c->in_len)
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
