/* The relay (see relay.h): one poll loop per request over the script's
 * three pipes, its pidfd, the connection and the daemon's stop.
 *
 * The order of events that matters:
 *  - nothing is sent before FCGI_STDIN has ended (nginx stops sending the
 *    body once response bytes arrive); output is held until then;
 *  - the body is fed to the script while its output is read, so no order
 *    of reads and writes in the script can deadlock;
 *  - the request ends when the body has ended, the script's stdout and
 *    stderr are closed, and the script has exited (its exit status
 *    becomes appStatus in FCGI_END_REQUEST);
 *  - every wait is bounded: -t, --inactivity-timeout, --peer-timeout for
 *    body bytes, and the daemon's stop. */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"
#include "relay.h"
#include "settings.h"
#include "stats.h"
#include "stopping.h"

/* Pieces of body passed to the script between two looks at its other fds
 * (see relay_run()). */
#define BODY_POLL_EVERY 16
/* How long a script whose stdout and stderr have ended may take to exit
 * before its request ends without it (see script_done()). */
#define EXIT_AFTER_EOF_MS 500

static void close_stdin(struct request *r)
{
	fd_close(&r->proc.stdin_fd);
	r->conn->splice_body = false;
}

/* Writes pending body bytes to the script; a script that closed its stdin
 * gets no more (the rest of the body is read and dropped).  Returns true
 * if bytes moved. */
static bool feed_script(struct request *r)
{
	struct fcgi_reader *rd = &r->conn->rd;
	bool moved = false;

	while (r->proc.stdin_fd >= 0 && r->body_off < rd->body_len) {
		ssize_t n = write(r->proc.stdin_fd, r->wb->body + r->body_off, rd->body_len - r->body_off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				break;
			/* EPIPE: the script does not want the rest. */
			close_stdin(r);
			break;
		}
		r->body_off += (size_t)n;
		r->last_activity = monotonic_ms();
		moved = true;
	}
	if (rd->body_len > 0 && (r->proc.stdin_fd < 0 || r->body_off == rd->body_len)) {
		/* All taken: from now on the script waits on the peer. */
		rd->body_len = r->body_off = 0;
		r->body_wait_since = monotonic_ms();
	}
	if (r->stdin_ended && rd->body_len == 0)
		close_stdin(r);
	return moved;
}

/* The body has ended: a CONTENT_LENGTH that does not match it is worth a
 * line (the script got the body as it came, all of it). */
static void check_content_length(struct request *r)
{
	const char *cl = r->params.content_length;

	if (cl && *cl && (r->params.body_length < 0 || (unsigned long long)r->params.body_length != r->bytes_in))
		log_warnx("%s: CONTENT_LENGTH is %s but the body had %llu bytes", r->label, cl, r->bytes_in);
}

int relay_read_conn(struct request *r, short revents, enum request_end *end, const char **why)
{
	struct fcgi_conn *c = r->conn;
	size_t before = c->rd.body_len;
	enum fcgi_conn_status st = fcgi_conn_service(c, revents);

	if (c->rd.body_len > before) {
		r->bytes_in += c->rd.body_len - before;
		r->last_activity = r->body_wait_since = monotonic_ms();
	}
	switch (st) {
	case CONN_OK:
		break;
	case CONN_ABORTED:
		*end = END_ABORTED;
		*why = "the web server aborted the request";
		return -1;
	case CONN_CLOSED:
		*end = END_PEER_GONE;
		*why = r->stdin_ended ? "the web server closed the connection"
				      : "the web server closed the connection during the body";
		return -1;
	case CONN_FAILED:
		*end = END_PEER_GONE;
		*why = c->why;
		return -1;
	}
	atomic_store_explicit(&r->activity.bytes_in, r->bytes_in, memory_order_relaxed);
	if (!r->stdin_ended && c->rd.state == FCGI_READER_ENDED) {
		r->stdin_ended = true;
		atomic_store(&r->activity.state, ACTIVITY_RUNNING);
		check_content_length(r);
		if (response_release(r) < 0) {
			*end = END_PEER_GONE;
			*why = "the web server stopped taking the response";
			return -1;
		}
	}
	return 0;
}

/* Moves body content from the socket into the script's stdin without a
 * copy through the daemon (splice), while no body byte is buffered and
 * the pipe has room; while it is full, bytes are read into the buffers
 * instead, where an abort behind them can be seen.  Returns 0 (*moved
 * set if bytes moved), or -1 with how the request must end. */
static int splice_body(struct request *r, bool *moved, enum request_end *end, const char **why)
{
	struct fcgi_conn *c = r->conn;
	ssize_t n;

	c->splice_body = r->proc.stdin_fd >= 0 && !r->pipe_full;
	if (!c->splice_body || c->rd.body_len > 0)
		return 0;
	n = fcgi_conn_splice(c, r->proc.stdin_fd, &r->pipe_full);
	if (n > 0) {
		r->bytes_in += (size_t)n;
		atomic_store_explicit(&r->activity.bytes_in, r->bytes_in, memory_order_relaxed);
		r->last_activity = r->body_wait_since = monotonic_ms();
		*moved = true;
	} else if (n == -2) {
		*end = END_PEER_GONE;
		*why = "the web server closed the connection during the body";
		return -1;
	} else if (n == -1 && errno == EPIPE) {
		close_stdin(r); /* the script does not want the rest */
	} else if (n == -1 && errno != EINVAL) {
		*end = END_PEER_GONE;
		*why = "the body could not be passed on";
		return -1;
	}
	if (r->pipe_full)
		c->splice_body = false;
	return 0;
}

/* Reads what the script wrote to *fd and hands it to handler.  Returns 1
 * when the pipe has ended (and closes it), 0 after data or nothing, -1 if
 * the handler could not pass the data on. */
static int read_pipe(struct request *r, int *fd, int (*handler)(struct request *r, const char *data, size_t len))
{
	ssize_t n = read(*fd, r->wb->io, WB_IO_SIZE);

	if (n > 0) {
		int rc;
		r->last_activity = monotonic_ms();
		rc = handler(r, r->wb->io, (size_t)n) < 0 ? -1 : 0;
		if (r->out.stdout_bytes > 0 && !r->out.holding)
			atomic_store(&r->activity.state, ACTIVITY_SENDING);
		atomic_store_explicit(&r->activity.bytes_out, r->out.stdout_bytes, memory_order_relaxed);
		return rc;
	}
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return 0;
	fd_close(fd);
	return 1;
}

static void note_slow(struct request *r, long long now)
{
	long long cpu = script_cpu_usec(&r->proc);
	char used[48] = "";

	r->slow_logged = true;
	atomic_fetch_add(&stats.slow, 1);
	if (cpu >= 0)
		snprintf(used, sizeof(used), ", %lld ms of CPU", cpu / 1000);
	log_warnx("%s: slow request: running for %lld s (pid %d%s)", r->label, (now - r->start_ms) / 1000,
		  (int)r->proc.pid, used);
}

/* How long the relay may wait before a limit is reached (-1: no limit),
 * or 0 with *why and *end set when one has been reached.  Also bounds the
 * connection's sends by the same limits. */
static int time_left(struct request *r, enum request_end *end, const char **why)
{
	long long now = monotonic_ms(), left = -1, send_by = 0;
	const struct fcgi_reader *rd = &r->conn->rd;
	struct {
		long long at;
		enum request_end end;
		const char *why;
		bool bounds_sends;
	} limits[3] = {
		{ r->deadline, END_TIMED_OUT, "timed out (-t)", true },
		{ cfg.inactivity_timeout_ms ? r->last_activity + cfg.inactivity_timeout_ms : 0, END_TIMED_OUT,
		  "no input or output for --inactivity-timeout", true },
		/* The script has taken every body byte and waits on the peer. */
		{ !r->stdin_ended && rd->body_len == 0 ? r->body_wait_since + cfg.peer_timeout_ms : 0, END_PEER_GONE,
		  "the web server sent no body bytes for --peer-timeout", false },
	};

	*why = NULL;
	if (r->output_ended_at)
		left = r->output_ended_at + EXIT_AFTER_EOF_MS - now;
	if (cfg.slow_log_ms && !r->slow_logged) {
		if (now >= r->start_ms + cfg.slow_log_ms)
			note_slow(r, now);
		else if (left < 0 || r->start_ms + cfg.slow_log_ms - now < left)
			left = r->start_ms + cfg.slow_log_ms - now;
	}
	for (size_t i = 0; i < sizeof(limits) / sizeof(limits[0]); i++) {
		if (!limits[i].at)
			continue;
		if (now >= limits[i].at) {
			*end = limits[i].end;
			*why = limits[i].why;
			return 0;
		}
		if (left < 0 || limits[i].at - now < left)
			left = limits[i].at - now;
		if (limits[i].bounds_sends && (!send_by || limits[i].at < send_by))
			send_by = limits[i].at;
	}
	r->conn->wait.deadline = send_by;
	return left < 0 ? -1 : (int)(left < INT_MAX ? left : INT_MAX);
}

/* Output could not go on: the web server stopped taking it, or the spool
 * that holds it until the body has ended could not (the request can still
 * be answered then, with an error). */
static void output_failed(struct request *r, enum request_end *end, const char **why)
{
	int err = r->out.spool_error;

	*end = END_PEER_GONE;
	*why = "the web server stopped taking the response";
	if (!err)
		return;
	*end = END_SPOOL_FAILED;
	if (err == EFBIG)
		snprintf(r->why_buf, sizeof(r->why_buf),
			 "output held until the request body ends reached --spool-limit (%llu bytes)", cfg.spool_limit);
	else
		snprintf(r->why_buf, sizeof(r->why_buf), "cannot hold output until the request body ends (in %s): %s",
			 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", strerror(err));
	*why = r->why_buf;
}

/* The script's side after poll(): feeds, reads, reaps.  Returns 0, or -1
 * with how the request must end. */
static int service_script(struct request *r, const struct pollfd *pfd, int i_in, int i_out, int i_err, int i_pid,
			  enum request_end *end, const char **why)
{
	struct script_proc *p = &r->proc;
	int rc;

	if (i_in >= 0 && pfd[i_in].revents) {
		r->pipe_full = false;
		feed_script(r);
	}
	if (i_out >= 0 && pfd[i_out].revents) {
		rc = read_pipe(r, &p->stdout_fd, response_stdout);
		if (rc > 0)
			response_stdout_ended(r);
		if (rc < 0)
			goto refused;
	}
	/* response_stdout_ended() may have closed stderr meanwhile. */
	if (i_err >= 0 && p->stderr_fd >= 0 && pfd[i_err].revents) {
		rc = read_pipe(r, &p->stderr_fd, response_stderr);
		if (rc > 0)
			response_stderr_ended(r);
		if (rc < 0)
			goto refused;
	}
	if (i_pid >= 0 && pfd[i_pid].revents)
		script_exited(p);
	return 0;
refused:
	output_failed(r, end, why);
	return -1;
}

/* Waits up to timeout ms for any of the request's fds, and acts on what
 * is ready.  Returns 0, or -1 with how the request must end. */
static int poll_once(struct request *r, int timeout, enum request_end *end, const char **why)
{
	struct script_proc *p = &r->proc;
	struct pollfd pfd[6];
	int np = 0, i_out = -1, i_err = -1, i_in = -1, i_pid = -1, i_conn = -1, i_kill;
	short conn_events = fcgi_conn_poll_events(r->conn);

	if (p->stdout_fd >= 0) {
		pfd[np] = (struct pollfd){ .fd = p->stdout_fd, .events = POLLIN };
		i_out = np++;
	}
	if (p->stderr_fd >= 0) {
		pfd[np] = (struct pollfd){ .fd = p->stderr_fd, .events = POLLIN };
		i_err = np++;
	}
	if (p->stdin_fd >= 0 && (r->body_off < r->conn->rd.body_len || r->pipe_full)) {
		pfd[np] = (struct pollfd){ .fd = p->stdin_fd, .events = POLLOUT };
		i_in = np++;
	}
	if (!p->exited && p->pidfd >= 0) {
		pfd[np] = (struct pollfd){ .fd = p->pidfd, .events = POLLIN };
		i_pid = np++;
	}
	if (conn_events) {
		pfd[np] = (struct pollfd){ .fd = r->conn->fd, .events = conn_events };
		i_conn = np++;
	}
	pfd[np] = (struct pollfd){ .fd = stopping_kill_fd(), .events = POLLIN };
	i_kill = np++;
	if (poll(pfd, (nfds_t)np, timeout) < 0) {
		if (errno == EINTR)
			return 0;
		*end = END_PEER_GONE;
		*why = "poll failed";
		return -1;
	}
	if (pfd[i_kill].revents) {
		*end = END_STOPPING;
		*why = "the daemon is stopping";
		return -1;
	}
	if (service_script(r, pfd, i_in, i_out, i_err, i_pid, end, why) < 0)
		return -1;
	if (i_conn >= 0 && pfd[i_conn].revents)
		return relay_read_conn(r, pfd[i_conn].revents, end, why);
	return 0;
}

/* The script is done: it has exited and its output has ended, and the
 * body has been read; or its header block was bad, which is answered at
 * once (with a 502), the rest of the body unread. */
static bool script_done(struct request *r)
{
	struct script_proc *p = &r->proc;

	if (r->hstate == HDR_FAILED)
		return true;
	if (!r->stdin_ended || p->stdout_fd >= 0 || p->stderr_fd >= 0)
		return false;
	if (script_exited(p))
		return true;
	/* Its output has ended but it runs on (`exec >&- 2>&-; job`: the
	 * answer first, the work after).  fcgiwrap 1.1.0 ends the request
	 * at that EOF; so does this, once the script has had
	 * EXIT_AFTER_EOF_MS to exit (a script that simply exits closes its
	 * pipes a moment before it is seen to have exited).  What still runs
	 * then is a leftover (request_finish()). */
	if (!r->output_ended_at)
		r->output_ended_at = monotonic_ms();
	return monotonic_ms() >= r->output_ended_at + EXIT_AFTER_EOF_MS;
}

enum request_end relay_run(struct request *r, const char **why)
{
	unsigned pieces = 0;
	enum request_end end = END_COMPLETE;

	r->hstate = HDR_PARSING;
	for (;;) {
		struct fcgi_reader *rd = &r->conn->rd;
		int timeout = time_left(r, &end, why);
		bool moved;

		if (*why)
			return end;
		moved = feed_script(r);
		if (!r->stdin_ended && splice_body(r, &moved, &end, why) < 0)
			return end;
		if (!r->stdin_ended && rd->body_len < rd->body_cap) {
			unsigned long long before = r->bytes_in;
			if (relay_read_conn(r, POLLIN, &end, why) < 0)
				return end;
			moved = feed_script(r) || moved || r->bytes_in != before;
		}
		if (script_done(r)) {
			r->conn->splice_body = false;
			return END_COMPLETE;
		}
		/* script_done() may have just started the wait for the exit. */
		if (r->output_ended_at && (timeout < 0 || timeout > EXIT_AFTER_EOF_MS))
			timeout = EXIT_AFTER_EOF_MS;
		/* While the body streams in and the script takes it as fast,
		 * its other fds are looked at once every BODY_POLL_EVERY
		 * pieces, not after each: its output is only held until the
		 * body ends anyway, and a script that stops reading makes the
		 * next write fail with EAGAIN, which polls at once. */
		if (!r->stdin_ended && moved && ++pieces % BODY_POLL_EVERY != 0)
			continue;
		if (poll_once(r, moved ? 0 : timeout, &end, why) < 0)
			return end;
	}
}
