/* One request (see request.h): its state's constructor and destructor,
 * and its one end, whatever ended it: the script ended and measured, the
 * slots given back, the answer, the figures and the log line. */
#include "config.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "access_log.h"
#include "clock.h"
#include "log.h"
#include "request.h"
#include "script_metrics.h"
#include "settings.h"
#include "stats.h"
#include "stopping.h"

/* What a request answered without a script gets. */
struct page {
	const char *status_line, *type, *body; /* body NULL: the status line */
};

/* Past --slow-log: one line, with the CPU the script has used so far. */
static void note_slow(void *ctx)
{
	struct request *r = ctx;
	long long cpu = script_cpu_usec(&r->proc);
	char used[48] = "";

	atomic_fetch_add(&stats.slow, 1);
	if (cpu >= 0)
		snprintf(used, sizeof(used), ", %lld ms of CPU", cpu / 1000);
	log_warnx("%s: slow request: running for %lld s (pid %d%s)", request_label(r),
		  (monotonic_ms() - r->start_ms) / 1000, (int)r->proc.pid, used);
}

/* The script has started: its --start-limit place goes on.  One that
 * waits (no output within its window) will likely wait long: what the
 * setup's deeper calls left on the worker's stack goes back meanwhile,
 * which cuts the memory of many waiting requests by about a third. */
static bool script_busy(void *ctx)
{
	return script_on_cpu(&((struct request *)ctx)->proc);
}

/* The body's end came after the script was seen waiting (the web server
 * sent it late, or the worker accepted the connection before all of it
 * was there): the input pages it took go back too.  Also the buffers'
 * part of the first give-back, below. */
static void script_still_waiting(void *ctx)
{
	struct request *r = ctx;

	worker_buffers_trim_idle(r->wb, r->conn->in_pos == r->conn->in_len);
}

static void script_started(void *ctx, bool waits)
{
	struct request *r = ctx;

	admission_started(&r->slots);
	if (!waits)
		return;
	worker_stack_trim();
	script_still_waiting(ctx);
}

void request_init(struct request *r, struct fcgi_conn *conn, struct worker_buffers *wb)
{
	struct relay_setup rs;

	memset(r, 0, sizeof(*r));
	r->conn = conn;
	r->wb = wb;
	r->script.fd = -1;
	script_proc_init(&r->proc);
	r->start_ms = monotonic_ms();
	r->deadline = cfg.timeout_ms ? r->start_ms + cfg.timeout_ms : 0;
	response_init(&r->resp, &(struct response_setup){ .fd = conn->fd, .id = conn->rd.id, .wait = &conn->wait,
							  .spool_max = cfg.spool_limit,
							  .stderr_to_fastcgi = cfg.stderr_to_fastcgi, .io = wb->io,
							  .io_size = WB_IO_SIZE, .activity = &r->activity });
	/* Body bytes are decoded straight into the buffer they are fed to
	 * the script from. */
	rs = (struct relay_setup){
		.body = fcgi_conn_body(conn, wb->body, WB_BODY_SIZE),
		.out = response_sink(&r->resp),
		.lim = { .start_ms = r->start_ms, .deadline = r->deadline, .inactivity_ms = cfg.inactivity_timeout_ms,
			 .peer_timeout_ms = cfg.peer_timeout_ms, .slow_ms = cfg.slow_log_ms,
			 .start_window_ms = START_WINDOW_MS, .start_check_ms = START_CHECK_MS, .kill_fd = stopping_kill_fd() },
		.io = wb->io,
		.io_size = WB_IO_SIZE,
		.activity = &r->activity,
		.note_slow = note_slow,
		.started = script_started,
		.still_waiting = script_still_waiting,
		.on_cpu = script_busy,
		.ctx = r,
	};
	/* The head's deadline ends with the head: from here on -t is the only
	 * deadline of the request's waits, each also bounded by --peer-timeout
	 * (a body read after a long queue was cut by the head's). */
	rs.body.ops->bound_sends(rs.body.ctx, r->deadline);
	relay_init(&r->relay, &rs);
}

void request_list(struct request *r)
{
	const struct request_params *p = &r->params;

	activity_begin(&r->activity, p->remote_addr, p->request_method, p->request_uri);
	r->listed = true;
}

void request_free(struct request *r)
{
	if (r->listed)
		activity_end(&r->activity);
	r->listed = false;
	response_free(&r->resp);
	script_proc_close(&r->proc);
	script_location_free(&r->script.loc);
	request_params_free(&r->params);
	if (r->script.fd >= 0)
		close(r->script.fd);
	r->script.fd = -1;
	free(r->script.env);
	free(r->script.dir);
	r->script.env = NULL;
	r->script.dir = NULL;
}

const char *request_label(const struct request *r)
{
	const char *name = r->script.loc.filename;

	if (!name || !*name)
		name = r->params.script_filename;
	if (!name || !*name)
		name = r->params.script_name;
	return name && *name ? name : "(none)";
}

/* The request's figures: counters, and its access log line.  Done before
 * FCGI_END_REQUEST goes out, so a status page asked for after an answer
 * counts it. */
static void account(struct request *r)
{
	const struct request_params *p = &r->params;
	bool ran = r->proc.pid > 0;
	struct access_entry e = {
		.peer = p->remote_addr,
		.method = p->request_method,
		.uri = p->request_uri,
		.script = r->script.loc.filename ? r->script.loc.filename : p->script_name,
		.status = r->resp.status,
		.bytes_in = r->relay.bytes_in,
		.bytes_out = r->resp.out.stdout_bytes,
		.duration_ms = monotonic_ms() - r->start_ms,
		.exit_status = ran && r->proc.exited ? r->proc.wait_status : -1,
		.pid = r->proc.pid,
		.cpu_ms = ran ? r->usage.cpu_usec / 1000 : -1,
		.memory_kib = ran ? r->usage.memory_kib : -1,
	};

	if (r->accounted)
		return;
	r->accounted = true;
	if (ran && r->script.loc.filename)
		script_metrics_add(r->script.loc.filename, e.duration_ms, r->usage.cpu_usec);
	atomic_fetch_add(&stats.requests, 1);
	if (e.status)
		stats_count_status(e.status);
	if (e.exit_status >= 0) {
		if (WIFSIGNALED(e.exit_status))
			atomic_fetch_add(&stats.exit_signal, 1);
		else if (WEXITSTATUS(e.exit_status) == 0)
			atomic_fetch_add(&stats.exit_zero, 1);
		else
			atomic_fetch_add(&stats.exit_nonzero, 1);
	}
	access_log_write(&e);
}

static void log_exit_status(struct request *r)
{
	int st = r->proc.wait_status;

	if (WIFEXITED(st) && WEXITSTATUS(st) != 0)
		log_warnx("%s: exited with status %d", request_label(r), WEXITSTATUS(st));
	else if (WIFSIGNALED(st))
		log_warnx("%s: killed by signal %d (%s)", request_label(r), WTERMSIG(st), strsignal(WTERMSIG(st)));
}

/* What the script used, as script_finish() measured it: the lines worth
 * logging, and the counters. */
static void note_usage(struct request *r)
{
	const struct script_usage *u = &r->usage;
	const char *label = request_label(r);

	if (r->proc.pid <= 0)
		return;
	if (u->oom_kills) {
		atomic_fetch_add(&stats.oom_kills, 1);
		log_warnx("%s: killed by the OOM killer: over --script-memory-max (%llu bytes)", label,
			  cfg.script_memory_max);
	}
	if (u->forks_refused)
		log_warnx("%s: %llu fork(s) refused: --script-pids-max (%u) reached", label, u->forks_refused,
			  cfg.script_pids_max);
	if (u->left_running) {
		atomic_fetch_add(&stats.leftover_processes, u->left_running);
		log_info("%s: %u process(es) left running in the script's cgroup (--leftovers keep)", label,
			 u->left_running);
	}
	atomic_fetch_add(&stats.cpu_usec, (unsigned long long)u->cpu_usec);
}

/* The body has ended: a CONTENT_LENGTH that does not match it is worth a
 * line (the script got the body as it came, all of it). */
static void check_content_length(struct request *r)
{
	const char *cl = r->params.content_length;
	unsigned long long got = r->relay.bytes_in;

	if (r->relay.stdin_ended && cl && *cl &&
	    (r->params.body_length < 0 || (unsigned long long)r->params.body_length != got))
		log_warnx("%s: CONTENT_LENGTH is %s but the body had %llu bytes", request_label(r), cl, got);
}

/* The log line and counters of an end. */
static void log_end(struct request *r, enum request_end how, const char *why)
{
	const char *label = request_label(r);

	switch (how) {
	case END_COMPLETE:
		log_exit_status(r);
		break;
	case END_REFUSED:
		if (why)
			log_warnx("%s: %s", label, why);
		break;
	case END_TIMED_OUT:
	case END_STOPPING:
	case END_SPOOL_FAILED:
		if (how == END_TIMED_OUT)
			atomic_fetch_add(&stats.timeouts, 1);
		log_warnx("%s: %s (pid %d); ending it", label, why, (int)r->proc.pid);
		break;
	case END_OUTPUT_FAILED:
	case END_ABORTED:
	case END_PEER_GONE:
		atomic_fetch_add(&stats.aborts, 1);
		log_info("%s: %s%s", label, why, r->proc.pid > 0 ? "; ending the script" : "");
		break;
	}
}

/* The output could not go on: the web server stopped taking it, or the
 * spool that holds it until the body has ended could not (the request
 * can still be answered then, with an error). */
static enum request_end output_failure(struct request *r, const char **why, char *buf, size_t size)
{
	int err = r->resp.out.spool_error;

	*why = "the web server stopped taking the response";
	if (!err)
		return END_PEER_GONE;
	if (err == EFBIG)
		snprintf(buf, size, "output held until the request body ends reached --spool-limit (%llu bytes)",
			 cfg.spool_limit);
	else
		snprintf(buf, size, "cannot hold output until the request body ends (in %s): %s",
			 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", strerror(err));
	*why = buf;
	return END_SPOOL_FAILED;
}

/* Output held so far goes first.  A body not read to its end leaves the
 * connection unusable for another request.  Returns -1 when nothing more
 * can reach the web server. */
static int release_held(struct request *r)
{
	if (!r->relay.stdin_ended)
		r->conn_broken = true;
	return response_release(&r->resp);
}

/* What the web server gets, before FCGI_END_REQUEST (page: a refusal's or
 * a page's answer).  Returns false when nothing more can reach it. */
static bool answer(struct request *r, enum request_end how, const struct page *page)
{
	switch (how) {
	case END_COMPLETE:
		/* A bad header block is answered before the body has ended:
		 * the connection then cannot serve another request. */
		if (release_held(r) < 0)
			return false;
		if (r->resp.hstate != HDR_DONE)
			response_page(&r->resp, "502 Bad Gateway", "text/plain", NULL);
		break;
	case END_REFUSED:
		/* The body first: nginx would stop sending it otherwise. */
		if (fcgi_conn_drain_body(r->conn, r->wb->body, WB_BODY_SIZE) < 0) {
			log_info("%s: %s", request_label(r), r->conn->why);
			return false;
		}
		if (response_release(&r->resp) < 0)
			return false;
		response_page(&r->resp, page->status_line, page->type, page->body);
		break;
	case END_TIMED_OUT:
	case END_STOPPING:
		if (release_held(r) < 0)
			return false;
		if (r->resp.hstate != HDR_DONE)
			response_page(&r->resp, how == END_TIMED_OUT ? "504 Gateway Timeout" : "503 Service Unavailable",
				      "text/plain", NULL);
		break;
	case END_SPOOL_FAILED: {
		/* Nothing of it was sent: a clean error instead.  Out of room
		 * for it is a shortage (503), over --spool-limit the script's
		 * doing (502). */
		int err = r->resp.out.spool_error;
		if (!r->relay.stdin_ended)
			r->conn_broken = true;
		response_discard(&r->resp, true);
		response_page(&r->resp, err == EFBIG ? "502 Bad Gateway" : "503 Service Unavailable", "text/plain", NULL);
		break;
	}
	case END_ABORTED:
		/* The web server wants no more of this response. */
		response_discard(&r->resp, false);
		break;
	case END_OUTPUT_FAILED:
	case END_PEER_GONE:
		return false;
	}
	return !r->resp.out.error;
}

/* Ends the script: abnormally, its whole group goes; after a normal end,
 * what it left running stays, as with fcgiwrap 1.1.0 and Apache: the
 * script itself too when it ended its output and went on (relay.c), then
 * reaped by the main loop. */
static void end_script(struct request *r, enum request_end how)
{
	/* Whether it exited is asked only where the answer decides (the
	 * reap says it otherwise, in the same system call). */
	bool end_group = how != END_COMPLETE || r->resp.hstate != HDR_DONE ||
			 (cfg.leftovers_kill && !script_exited(&r->proc));
	bool contained = r->proc.cgroup != NULL;

	script_finish(&r->proc, end_group, cfg.kill_grace_ms, &r->usage);
	if (!end_group && !r->proc.exited && !contained) {
		atomic_fetch_add(&stats.leftover_processes, 1);
		log_info("%s: the script runs on after its output ended (pid %d; --leftovers keep)", request_label(r),
			 (int)r->proc.pid);
	}
	/* What a script with a bad header block wrote to stderr usually
	 * says why. */
	if (r->resp.hstate == HDR_FAILED)
		response_drain_stderr(&r->resp, r->proc.stderr_fd);
}

/* request_finish(), with the page a request answered without a script
 * gets (END_REFUSED), or NULL. */
static void finish(struct request *r, enum request_end how, const char *why, const struct page *page)
{
	char why_buf[160];

	if (how == END_OUTPUT_FAILED)
		how = output_failure(r, &why, why_buf, sizeof(why_buf));
	if (r->proc.pid > 0)
		end_script(r, how);
	log_end(r, how, why);
	note_usage(r);
	check_content_length(r);
	/* The slots go back as soon as the script is gone, before a slow
	 * web server takes the rest of the answer. */
	admission_give_back(&r->slots);
	if (!answer(r, how, page)) {
		r->conn_broken = true;
		account(r);
		return;
	}
	account(r);
	if (response_end(&r->resp, (uint32_t)(r->proc.pid > 0 ? script_exit_code(r->proc.wait_status) : 0)) < 0)
		r->conn_broken = true;
	else
		fcgi_conn_request_done(r->conn);
}

void request_finish(struct request *r, enum request_end how, const char *why)
{
	static const struct page none = { "500 Internal Server Error", "text/plain", NULL };

	finish(r, how, why, &none);
}

void request_refuse(struct request *r, const char *status_line, const char *why)
{
	struct page page = { status_line, "text/plain", NULL };

	finish(r, END_REFUSED, why, &page);
}

void request_page(struct request *r, const char *type, const char *body)
{
	struct page page = { "200 OK", type, body };

	finish(r, END_REFUSED, NULL, &page);
}
