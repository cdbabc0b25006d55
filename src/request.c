/* One request (see request.h): its state's constructor and destructor,
 * and its one end, whatever ended it: the script ended and measured, the
 * slots given back, the answer, the figures and the log line. */
#include "config.h"

#include <errno.h>
#include <fastcgi.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "access_log.h"
#include "cgroup.h"
#include "clock.h"
#include "log.h"
#include "request.h"
#include "script_metrics.h"
#include "settings.h"
#include "slots.h"
#include "stats.h"

/* Sends a whole response of the daemon's own; the status, once it went. */
static void send_status(struct request *r, const char *status_line, const char *type, const char *body)
{
	if (fcgi_out_status(&r->out, status_line, type, body) == 0)
		r->status = atoi(status_line);
}

/* FCGI_STDIN has ended: output held until now goes out. */
static int release_output(struct request *r)
{
	return fcgi_out_release(&r->out, r->wb->io, WB_IO_SIZE);
}

/* What a request answered without a script gets. */
struct page {
	const char *status_line, *type, *body; /* body NULL: the status line */
};

void request_init(struct request *r, struct fcgi_conn *conn, struct worker_buffers *wb)
{
	memset(r, 0, sizeof(*r));
	r->conn = conn;
	r->wb = wb;
	fcgi_out_init(&r->out, conn->fd, conn->rd.id, &conn->wait);
	r->out.spool_max = cfg.spool_limit;
	cgi_header_init(&r->hdr);
	script_proc_init(&r->proc);
	r->script_fd = -1;
	r->label = "(unknown script)";
	r->start_ms = r->last_activity = r->body_wait_since = monotonic_ms();
	r->deadline = cfg.timeout_ms ? r->start_ms + cfg.timeout_ms : 0;
	/* The head's deadline ends with the head: from here on -t is the only
	 * deadline of the request's waits, each also bounded by --peer-timeout
	 * (a body read after a long queue was cut by the head's). */
	conn->wait.deadline = r->deadline;
	/* Body bytes are decoded straight into the buffer they are fed to
	 * the script from. */
	conn->rd.body = (unsigned char *)wb->body;
	conn->rd.body_cap = WB_BODY_SIZE;
	conn->rd.body_len = 0;
}

void request_free(struct request *r)
{
	if (r->listed)
		activity_end(&r->activity);
	r->listed = false;
	fcgi_out_free(&r->out);
	cgi_header_free(&r->hdr);
	script_proc_close(&r->proc);
	script_location_free(&r->loc);
	request_params_free(&r->params);
	if (r->script_fd >= 0)
		close(r->script_fd);
	r->script_fd = -1;
	free(r->env);
	free(r->dir);
	free(r->errline);
	r->env = NULL;
	r->dir = r->errline = NULL;
}

/* The request's figures: counters, and its access log line.  Done before
 * FCGI_END_REQUEST goes out, so a status page asked for after an answer
 * counts it. */
static void account(struct request *r)
{
	const struct request_params *p = &r->params;
	struct access_entry e = {
		.peer = p->remote_addr,
		.method = p->request_method,
		.uri = p->request_uri,
		.script = r->loc.filename ? r->loc.filename : p->script_name,
		.status = r->status,
		.bytes_in = r->bytes_in,
		.bytes_out = r->out.stdout_bytes,
		.duration_ms = monotonic_ms() - r->start_ms,
		.exit_status = r->proc.pid > 0 && r->proc.exited ? r->proc.wait_status : -1,
		.pid = r->proc.pid,
		.cpu_ms = r->proc.pid > 0 ? r->cpu_usec / 1000 : -1,
		.memory_kib = r->proc.pid > 0 ? r->memory_kib : -1,
	};

	if (r->accounted)
		return;
	r->accounted = true;
	if (r->proc.pid > 0 && r->loc.filename)
		script_metrics_add(r->loc.filename, e.duration_ms, r->cpu_usec);
	atomic_fetch_add(&stats.requests, 1);
	if (r->status)
		stats_count_status(r->status);
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
		log_warnx("%s: exited with status %d", r->label, WEXITSTATUS(st));
	else if (WIFSIGNALED(st))
		log_warnx("%s: killed by signal %d (%s)", r->label, WTERMSIG(st), strsignal(WTERMSIG(st)));
}

/* What the script used: from its cgroup (every process it started), else
 * from its exit (itself and the children it waited for).  Then its
 * cgroup goes back, or stays for what it left running. */
static void measure_script(struct request *r)
{
	struct script_proc *p = &r->proc;
	struct cgroup_usage u;
	unsigned left;

	if (p->pid <= 0)
		return;
	r->cpu_usec = (long long)p->usage.ru_utime.tv_sec * 1000000 + p->usage.ru_utime.tv_usec +
		      (long long)p->usage.ru_stime.tv_sec * 1000000 + p->usage.ru_stime.tv_usec;
	r->memory_kib = p->usage.ru_maxrss;
	if (!p->cgroup)
		goto counted;
	cgroup_usage(p->cgroup, &u);
	r->cpu_usec = (long long)u.cpu_usec;
	if (u.memory_peak_kib >= 0)
		r->memory_kib = u.memory_peak_kib;
	if (u.oom_kills) {
		atomic_fetch_add(&stats.oom_kills, 1);
		log_warnx("%s: killed by the OOM killer: over --script-memory-max (%llu bytes)", r->label,
			  cfg.script_memory_max);
	}
	if (u.pids_max)
		log_warnx("%s: %llu fork(s) refused: --script-pids-max (%u) reached", r->label, u.pids_max,
			  cfg.script_pids_max);
	left = cgroup_release(p->cgroup);
	p->cgroup = NULL;
	if (left) {
		atomic_fetch_add(&stats.leftover_processes, left);
		log_info("%s: %u process(es) left running in the script's cgroup (--leftovers keep)", r->label, left);
	}
counted:
	atomic_fetch_add(&stats.cpu_usec, (unsigned long long)r->cpu_usec);
}

/* The log line and counters of an end. */
static void log_end(struct request *r, enum request_end how, const char *why)
{
	switch (how) {
	case END_COMPLETE:
		log_exit_status(r);
		break;
	case END_REFUSED:
		if (why)
			log_warnx("%s: %s", r->label, why);
		break;
	case END_TIMED_OUT:
	case END_STOPPING:
	case END_SPOOL_FAILED:
		if (how == END_TIMED_OUT)
			atomic_fetch_add(&stats.timeouts, 1);
		log_warnx("%s: %s (pid %d); ending it", r->label, why, (int)r->proc.pid);
		break;
	case END_ABORTED:
	case END_PEER_GONE:
		atomic_fetch_add(&stats.aborts, 1);
		log_info("%s: %s%s", r->label, why, r->proc.pid > 0 ? "; ending the script" : "");
		break;
	}
}

/* What the web server gets, before FCGI_END_REQUEST (page: a refusal's or
 * a page's answer).  Returns false when nothing more can reach it. */
static bool answer(struct request *r, enum request_end how, const struct page *page)
{
	switch (how) {
	case END_COMPLETE:
		/* A bad header block is answered before the body has ended:
		 * the connection then cannot serve another request. */
		if (!r->stdin_ended) {
			r->conn_broken = true;
			if (release_output(r) < 0)
				return false;
		}
		if (r->hstate != HDR_DONE)
			send_status(r, "502 Bad Gateway", "text/plain", NULL);
		break;
	case END_REFUSED:
		/* The body first: nginx would stop sending it otherwise. */
		if (fcgi_conn_drain_body(r->conn, r->wb->body, WB_BODY_SIZE) < 0) {
			log_info("%s: %s", r->label, r->conn->why);
			return false;
		}
		r->stdin_ended = true;
		if (release_output(r) < 0)
			return false;
		send_status(r, page->status_line, page->type, page->body);
		break;
	case END_TIMED_OUT:
	case END_STOPPING:
		/* Output held so far goes first.  A body not read to its end
		 * leaves the connection unusable for another request. */
		if (!r->stdin_ended)
			r->conn_broken = true;
		if (release_output(r) < 0)
			return false;
		if (r->hstate != HDR_DONE)
			send_status(r, how == END_TIMED_OUT ? "504 Gateway Timeout" : "503 Service Unavailable",
				    "text/plain", NULL);
		break;
	case END_SPOOL_FAILED: {
		/* Nothing of it was sent: a clean error instead.  Out of room
		 * for it is a shortage (503), over --spool-limit the script's
		 * doing (502). */
		int err = r->out.spool_error;
		if (!r->stdin_ended)
			r->conn_broken = true;
		fcgi_out_discard(&r->out);
		r->out.error = r->out.spool_error = 0;
		send_status(r, err == EFBIG ? "502 Bad Gateway" : "503 Service Unavailable", "text/plain", NULL);
		break;
	}
	case END_ABORTED:
		/* The web server wants no more of this response. */
		fcgi_out_discard(&r->out);
		break;
	case END_PEER_GONE:
		return false;
	}
	return !r->out.error;
}

/* request_finish(), with the page a request answered without a script
 * gets (END_REFUSED), or NULL. */
static void finish(struct request *r, enum request_end how, const char *why, const struct page *page)
{
	r->conn->splice_body = false; /* what is left of the body is read */
	log_end(r, how, why);
	/* Ended abnormally, the script's whole group goes; after a normal
	 * end, what it left running stays, as with fcgiwrap 1.1.0 and
	 * Apache: the script itself too when it ended its output and went on
	 * (relay.c), then reaped by the main loop.  Reaped last, so that the
	 * group's id cannot have been taken by another script when it is
	 * signalled. */
	if (how != END_COMPLETE || r->hstate != HDR_DONE || (cfg.leftovers_kill && !script_exited(&r->proc)))
		script_end_group(&r->proc, cfg.kill_grace_ms);
	else if (!script_exited(&r->proc) && !r->proc.cgroup) {
		atomic_fetch_add(&stats.leftover_processes, 1);
		log_info("%s: the script runs on after its output ended (pid %d; --leftovers keep)", r->label,
			 (int)r->proc.pid);
	}
	script_reap(&r->proc);
	measure_script(r);
	/* The slot goes back as soon as the script is gone, before a slow
	 * web server takes the rest of the answer. */
	if (r->has_class_slot) {
		slot_release(&r->class->pool);
		r->has_class_slot = false;
	}
	if (r->has_slot) {
		slot_release(&script_slots);
		atomic_fetch_sub(&stats.scripts, 1);
		r->has_slot = false;
	}
	if (!answer(r, how, page)) {
		r->conn_broken = true;
		account(r);
		return;
	}
	account(r);
	if (fcgi_out_end_request(&r->out, (uint32_t)(r->proc.pid > 0 ? script_exit_code(r->proc.wait_status) : 0),
				 FCGI_REQUEST_COMPLETE) < 0)
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
