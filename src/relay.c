/* The relay (see relay.h): one poll loop per request over the script's
 * three pipes, the web server's socket and the daemon's stop, and once
 * the script's output has ended, its exit.
 *
 * The order of events that matters:
 *  - nothing is sent before FCGI_STDIN has ended (nginx stops sending the
 *    body once response bytes arrive): the output sink holds it until
 *    body_ended();
 *  - the body is fed to the script while its output is read, so no order
 *    of reads and writes in the script can deadlock;
 *  - the request ends when the body has ended, the script's stdout and
 *    stderr are closed, and the script has exited;
 *  - every wait is bounded: -t, --inactivity-timeout, --peer-timeout for
 *    body bytes, and the daemon's stop. */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "fd.h"
#include "relay.h"

/* Pieces of body passed to the script between two looks at its other fds
 * (see relay_run()). */
#define BODY_POLL_EVERY 16
/* How long a script whose stdout and stderr have ended may take to exit
 * before its request ends without it (see script_done()). */
#define EXIT_AFTER_EOF_MS 500

void relay_init(struct relay *rl, const struct relay_setup *setup)
{
	memset(rl, 0, sizeof(*rl));
	rl->set = *setup;
	rl->last_activity = rl->body_wait_since = setup->lim.start_ms;
}

/* The script has started: it wrote, it exited, or its start window is
 * over and it waits (told once). */
static void note_started(struct relay *rl, bool waits)
{
	if (!waits)
		rl->waiting = false;
	if (rl->start_noted)
		return;
	rl->start_noted = true;
	rl->waiting = waits;
	if (rl->set.started)
		rl->set.started(rl->set.ctx, waits);
}

static void set_state(struct relay *rl, enum activity_state state)
{
	if (rl->set.activity)
		atomic_store(&rl->set.activity->state, state);
}

static void count_body(struct relay *rl, size_t n)
{
	rl->bytes_in += n;
	rl->last_activity = rl->body_wait_since = monotonic_ms();
	if (rl->set.activity)
		atomic_store_explicit(&rl->set.activity->bytes_in, rl->bytes_in, memory_order_relaxed);
}

/* The script gets no more body: EOF on its stdin. */
static void close_stdin(struct relay *rl)
{
	fd_close(rl->script.stdin_fd);
	rl->set.body.ops->set_splice(rl->set.body.ctx, false);
}

/* How many body bytes have been read and not passed on yet; *full
 * (unless NULL) says whether the buffer takes no more. */
static size_t body_held(struct relay *rl, bool *full)
{
	const char *data;
	bool is_full;
	size_t n = rl->set.body.ops->pending(rl->set.body.ctx, &data, &is_full);

	if (full)
		*full = is_full;
	return n;
}

/* Writes pending body bytes to the script; a script that closed its stdin
 * gets no more (the rest of the body is read and dropped).  Returns true
 * if bytes moved. */
static bool feed_script(struct relay *rl)
{
	const struct body_source *b = &rl->set.body;
	bool moved = false, full;
	const char *data;
	size_t len;

	while ((len = b->ops->pending(b->ctx, &data, &full)) > 0) {
		ssize_t n = *rl->script.stdin_fd >= 0 ? write(*rl->script.stdin_fd, data, len) : (ssize_t)len;
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		if (n < 0) {
			/* EPIPE: the script does not want the rest. */
			close_stdin(rl);
			continue;
		}
		b->ops->taken(b->ctx, (size_t)n);
		if (*rl->script.stdin_fd >= 0) {
			rl->last_activity = monotonic_ms();
			moved = true;
		}
		if (n == (ssize_t)len) /* all taken: the script waits on the peer */
			rl->body_wait_since = monotonic_ms();
	}
	if (rl->stdin_ended && len == 0 && *rl->script.stdin_fd >= 0)
		close_stdin(rl);
	return moved;
}

int relay_read_peer(struct relay *rl, short revents, enum request_end *end, const char **why)
{
	const struct body_source *b = &rl->set.body;
	size_t got = 0;
	enum body_status st = b->ops->read(b->ctx, revents, &got, why);

	if (got > 0)
		count_body(rl, got);
	switch (st) {
	case BODY_OK:
		break;
	case BODY_ABORTED:
		*end = END_ABORTED;
		*why = "the web server aborted the request";
		return -1;
	case BODY_CLOSED:
		*end = END_PEER_GONE;
		*why = rl->stdin_ended ? "the web server closed the connection"
				       : "the web server closed the connection during the body";
		return -1;
	case BODY_FAILED:
		*end = END_PEER_GONE;
		return -1;
	}
	if (!rl->stdin_ended && b->ops->ended(b->ctx)) {
		rl->stdin_ended = true;
		set_state(rl, ACTIVITY_RUNNING);
		/* What the body brought in since the script was seen waiting
		 * is read: the request may give back the pages it filled. */
		if (rl->waiting && rl->set.still_waiting)
			rl->set.still_waiting(rl->set.ctx);
		if (rl->set.out.ops->body_ended(rl->set.out.ctx) != OUTPUT_OK) {
			*end = END_OUTPUT_FAILED;
			*why = NULL;
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
static int splice_body(struct relay *rl, bool *moved, enum request_end *end, const char **why)
{
	const struct body_source *b = &rl->set.body;
	int fd = *rl->script.stdin_fd;
	bool on = fd >= 0 && !rl->pipe_full;
	ssize_t n;

	b->ops->set_splice(b->ctx, on);
	if (!on || body_held(rl, NULL) > 0)
		return 0;
	n = b->ops->splice(b->ctx, fd, &rl->pipe_full);
	if (n > 0) {
		count_body(rl, (size_t)n);
		*moved = true;
	} else if (n == -2) {
		*end = END_PEER_GONE;
		*why = "the web server closed the connection during the body";
		return -1;
	} else if (n == -1 && errno == EPIPE) {
		close_stdin(rl); /* the script does not want the rest */
	} else if (n == -1 && errno != EINVAL) {
		*end = END_PEER_GONE;
		*why = "the body could not be passed on";
		return -1;
	}
	if (rl->pipe_full)
		b->ops->set_splice(b->ctx, false);
	return 0;
}

/* Reads what the script wrote to *fd and hands it to handler; at its end
 * closes the pipe and tells ended.  Returns what the handlers do. */
static enum output_status read_pipe(struct relay *rl, int *fd,
				    enum output_status (*handler)(void *ctx, const char *data, size_t len),
				    enum output_status (*ended)(void *ctx))
{
	ssize_t n = read(*fd, rl->set.io, rl->set.io_size);

	if (n > 0) {
		rl->last_activity = monotonic_ms();
		note_started(rl, false);
		return handler(rl->set.out.ctx, rl->set.io, (size_t)n);
	}
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return OUTPUT_OK;
	fd_close(fd);
	return ended(rl->set.out.ctx);
}

/* How long the relay may wait before a limit is reached (-1: no limit),
 * or 0 with *why and *end set when one has been reached.  Also bounds the
 * connection's sends by the same limits. */
static int time_left(struct relay *rl, enum request_end *end, const char **why)
{
	const struct relay_limits *lim = &rl->set.lim;
	long long now = monotonic_ms(), left = -1, send_by = 0;
	struct {
		long long at;
		enum request_end end;
		const char *why;
		bool bounds_sends;
	} limits[3] = {
		{ lim->deadline, END_TIMED_OUT, "timed out (-t)", true },
		{ lim->inactivity_ms ? rl->last_activity + lim->inactivity_ms : 0, END_TIMED_OUT,
		  "no input or output for --inactivity-timeout", true },
		/* The script has taken every body byte and waits on the peer. */
		{ !rl->stdin_ended && body_held(rl, NULL) == 0 ? rl->body_wait_since + lim->peer_timeout_ms : 0,
		  END_PEER_GONE, "the web server sent no body bytes for --peer-timeout", false },
	};

	*why = NULL;
	if (rl->output_ended_at)
		left = rl->output_ended_at + EXIT_AFTER_EOF_MS - now;
	if (!rl->start_noted && now >= rl->start_check) {
		if (now >= rl->script_start + lim->start_window_ms || !rl->set.on_cpu(rl->set.ctx))
			note_started(rl, true);
		else
			rl->start_check = now + lim->start_check_ms;
	}
	if (!rl->start_noted && (left < 0 || rl->start_check - now < left))
		left = rl->start_check - now;
	if (lim->slow_ms && !rl->slow_noted) {
		if (now >= lim->start_ms + lim->slow_ms) {
			rl->slow_noted = true;
			rl->set.note_slow(rl->set.ctx);
		} else if (left < 0 || lim->start_ms + lim->slow_ms - now < left) {
			left = lim->start_ms + lim->slow_ms - now;
		}
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
	rl->set.body.ops->bound_sends(rl->set.body.ctx, send_by);
	return left < 0 ? -1 : (int)(left < INT_MAX ? left : INT_MAX);
}

/* What an output handler said, as the relay's end: 1 (done: a bad
 * header block), 0, or -1 (the output failed). */
static int output_verdict(enum output_status st, enum request_end *end, const char **why)
{
	if (st == OUTPUT_OK)
		return 0;
	if (st == OUTPUT_BAD_HEADER)
		return 1;
	*end = END_OUTPUT_FAILED;
	*why = NULL;
	return -1;
}

/* The script's side after poll(): feeds, reads, notes the exit.  Returns
 * 0, 1 once its header block was bad, or -1 with how the request must
 * end. */
static int service_script(struct relay *rl, const struct pollfd *pfd, const int *at, enum request_end *end,
			  const char **why)
{
	const struct output_sink_ops *o = rl->set.out.ops;
	int rc;

	if (at[0] >= 0 && pfd[at[0]].revents) {
		rl->pipe_full = false;
		feed_script(rl);
	}
	if (at[1] >= 0 && pfd[at[1]].revents) {
		rc = output_verdict(read_pipe(rl, rl->script.stdout_fd, o->stdout_data, o->stdout_ended), end, why);
		if (rc != 0)
			return rc;
	}
	if (at[2] >= 0 && *rl->script.stderr_fd >= 0 && pfd[at[2]].revents) {
		rc = output_verdict(read_pipe(rl, rl->script.stderr_fd, o->stderr_data, o->stderr_ended), end, why);
		if (rc != 0)
			return rc;
	}
	if (at[3] >= 0 && pfd[at[3]].revents) {
		rl->exited = true;
		note_started(rl, false);
	}
	return 0;
}

/* Adds fd to the poll set if it is open and wanted; its index, or -1. */
static int watch(struct pollfd *pfd, int *np, int fd, short events)
{
	if (fd < 0 || !events)
		return -1;
	pfd[*np] = (struct pollfd){ .fd = fd, .events = events };
	return (*np)++;
}

/* Waits up to timeout ms for any of the request's fds, and acts on what
 * is ready.  Returns 0, 1 once the script's header block was bad, or -1
 * with how the request must end. */
static int poll_once(struct relay *rl, int timeout, enum request_end *end, const char **why)
{
	const struct body_source *b = &rl->set.body;
	struct pollfd pfd[6];
	int np = 0, at[4], i_conn, i_kill, rc;
	bool want_in = rl->pipe_full || body_held(rl, NULL) > 0;

	at[1] = watch(pfd, &np, *rl->script.stdout_fd, POLLIN);
	at[2] = watch(pfd, &np, *rl->script.stderr_fd, POLLIN);
	at[0] = watch(pfd, &np, *rl->script.stdin_fd, want_in ? POLLOUT : 0);
	at[3] = watch(pfd, &np, rl->exited ? -1 : rl->exit_fd, POLLIN);
	i_conn = watch(pfd, &np, b->fd, b->ops->poll_events(b->ctx));
	i_kill = watch(pfd, &np, rl->set.lim.kill_fd, POLLIN);
	if (poll(pfd, (nfds_t)np, timeout) < 0) {
		if (errno == EINTR)
			return 0;
		*end = END_PEER_GONE;
		*why = "poll failed";
		return -1;
	}
	if (i_kill >= 0 && pfd[i_kill].revents) {
		*end = END_STOPPING;
		*why = "the daemon is stopping";
		return -1;
	}
	rc = service_script(rl, pfd, at, end, why);
	if (rc != 0)
		return rc;
	if (i_conn >= 0 && pfd[i_conn].revents)
		return relay_read_peer(rl, pfd[i_conn].revents, end, why);
	return 0;
}

/* Whether the script has exited, without waiting; if not, its exit is
 * watched from now on (rl->exit_fd). */
static bool script_gone(struct relay *rl)
{
	if (!rl->exited && rl->script.exited(rl->script.ctx, &rl->exit_fd)) {
		rl->exited = true;
		note_started(rl, false);
	}
	return rl->exited;
}

/* The script is done: it has exited and its output has ended, and the
 * body has been read. */
static bool script_done(struct relay *rl)
{
	if (!rl->stdin_ended || *rl->script.stdout_fd >= 0 || *rl->script.stderr_fd >= 0)
		return false;
	if (script_gone(rl))
		return true;
	/* Its output has ended but it runs on (`exec >&- 2>&-; job`: the
	 * answer first, the work after).  fcgiwrap 1.1.0 ends the request
	 * at that EOF; so does this, once the script has had
	 * EXIT_AFTER_EOF_MS to exit (a script that simply exits closes its
	 * pipes a moment before it is seen to have exited).  What still runs
	 * then is a leftover (request_finish()). */
	if (!rl->output_ended_at)
		rl->output_ended_at = monotonic_ms();
	return monotonic_ms() >= rl->output_ended_at + EXIT_AFTER_EOF_MS;
}

/* One turn of the relay before its poll: body bytes on, as far as they
 * go without waiting.  Returns 0 (*moved if bytes moved), or -1 with how
 * the request must end. */
static int move_body(struct relay *rl, bool *moved, enum request_end *end, const char **why)
{
	bool full;

	*moved = feed_script(rl);
	if (rl->stdin_ended)
		return 0;
	if (splice_body(rl, moved, end, why) < 0)
		return -1;
	body_held(rl, &full);
	if (!full) {
		unsigned long long before = rl->bytes_in;
		if (relay_read_peer(rl, POLLIN, end, why) < 0)
			return -1;
		*moved = feed_script(rl) || *moved || rl->bytes_in != before;
	}
	return 0;
}

enum request_end relay_run(struct relay *rl, const struct relay_script *script, const char **why)
{
	unsigned pieces = 0;
	enum request_end end = END_COMPLETE;

	rl->script = *script;
	rl->exit_fd = -1;
	rl->script_start = monotonic_ms();
	rl->start_check = rl->script_start + rl->set.lim.start_check_ms;
	for (;;) {
		int timeout = time_left(rl, &end, why), rc;
		bool moved;

		if (*why)
			return end;
		if (move_body(rl, &moved, &end, why) < 0)
			return end;
		if (script_done(rl))
			break;
		/* script_done() may have just started the wait for the exit. */
		if (rl->output_ended_at && (timeout < 0 || timeout > EXIT_AFTER_EOF_MS))
			timeout = EXIT_AFTER_EOF_MS;
		/* While the body streams in and the script takes it as fast,
		 * its other fds are looked at once every BODY_POLL_EVERY
		 * pieces, not after each: its output is only held until the
		 * body ends anyway, and a script that stops reading makes the
		 * next write fail with EAGAIN, which polls at once. */
		if (!rl->stdin_ended && moved && ++pieces % BODY_POLL_EVERY != 0)
			continue;
		rc = poll_once(rl, moved ? 0 : timeout, &end, why);
		if (rc < 0)
			return end;
		if (rc > 0) /* a bad header block: answered at once */
			break;
	}
	rl->set.body.ops->set_splice(rl->set.body.ctx, false);
	return END_COMPLETE;
}
