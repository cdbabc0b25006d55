/* One FastCGI connection (see fcgi_conn.h).
 *
 * The socket is non-blocking: nothing here waits except in poll(), and
 * every poll() is bounded by --peer-timeout, the request's deadlines and
 * the daemon's stop.  Bytes that do not move a request forward (padding,
 * records of other ids, management records) never extend a deadline. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clock.h"
#include "fcgi_conn.h"
#include "fcgi_record.h"
#include "log.h"

void fcgi_conn_init(struct fcgi_conn *c, int fd, unsigned char *in, size_t in_cap, unsigned char *head,
		    size_t head_cap, unsigned max_conns, int peer_timeout_ms, int cancel_fd)
{
	memset(c, 0, sizeof(*c));
	c->fd = fd;
	c->in = in;
	c->in_cap = in_cap;
	fcgi_reader_init(&c->rd, max_conns, head, head_cap);
	c->wait = (struct peer_wait){ .progress_ms = peer_timeout_ms, .deadline = 0, .cancel_fd = cancel_fd };
}

/* Reads once into the free end of the input buffer.  Returns 1 after
 * bytes, 0 at the peer's end, -1 if nothing is there (or no room), -2 on
 * an error (c->why). */
static int fill(struct fcgi_conn *c)
{
	size_t want;
	ssize_t n;

	if (c->in_pos == c->in_len) {
		c->in_pos = c->in_len = 0;
	} else if (c->in_len == c->in_cap && c->in_pos > 0) {
		memmove(c->in, c->in + c->in_pos, c->in_len - c->in_pos);
		c->in_len -= c->in_pos;
		c->in_pos = 0;
	}
	if (c->in_len == c->in_cap)
		return -1;
	want = c->in_cap - c->in_len;
	/* While body content is spliced, only headers (and padding) are
	 * read: the content stays in the socket for splice(2). */
	if (c->splice_body && !c->no_splice && c->rd.state == FCGI_READER_BODY) {
		size_t need = fcgi_reader_header_need(&c->rd);
		if (fcgi_reader_body_pending(&c->rd) > 0)
			return -1;
		if (need > 0 && need < want)
			want = need;
	}
	n = recv(c->fd, c->in + c->in_len, want, MSG_DONTWAIT);
	if (n > 0) {
		c->in_len += (size_t)n;
		c->received += (size_t)n;
		return 1;
	}
	if (n == 0 || errno == ECONNRESET)
		return 0;
	if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
		return -1;
	snprintf(c->why_buf, sizeof(c->why_buf), "reading from the web server failed: %s", strerror(errno));
	c->why = c->why_buf;
	return -2;
}

static void note_ignored(struct fcgi_conn *c)
{
	if (c->rd.ignored == 0 || c->ignored_logged)
		return;
	c->ignored_logged = true;
	/* Not an error: the specification asks for it (a late
	 * FCGI_ABORT_REQUEST for a request just answered is one such). */
	log_info("ignoring records of request %u, which is not active (first of type %u)", c->rd.ignored_id,
		 c->rd.ignored_type);
}

static int send_reply(struct fcgi_conn *c)
{
	struct iovec iov = { .iov_base = c->rd.reply, .iov_len = c->rd.reply_len };

	if (peer_send_all(c->fd, &iov, 1, &c->wait) < 0) {
		snprintf(c->why_buf, sizeof(c->why_buf), "cannot send a management reply: %s",
			 errno == ETIMEDOUT ? "the web server does not read" : strerror(errno));
		c->why = c->why_buf;
		return -1;
	}
	fcgi_reader_reply_sent(&c->rd);
	return 0;
}

enum fcgi_conn_status fcgi_conn_pump(struct fcgi_conn *c)
{
	for (;;) {
		enum fcgi_event ev;
		size_t used = fcgi_reader_run(&c->rd, c->in + c->in_pos, c->in_len - c->in_pos, &ev);
		int rc;

		c->in_pos += used;
		note_ignored(c);
		switch (ev) {
		case FCGI_EV_MORE:
			if (c->eof)
				return CONN_CLOSED;
			rc = fill(c);
			if (rc == 0)
				c->eof = true;
			if (rc >= 0)
				continue;
			return rc == -1 ? CONN_OK : CONN_FAILED;
		case FCGI_EV_REPLY:
			if (send_reply(c) < 0)
				return CONN_FAILED;
			continue;
		case FCGI_EV_BODY_FULL:
			/* An abort may wait behind the body already read. */
			if (fcgi_reader_abort_ahead(&c->rd, c->in + c->in_pos, c->in_len - c->in_pos))
				return CONN_ABORTED;
			return CONN_OK;
		case FCGI_EV_HEAD:
		case FCGI_EV_BODY_END:
			return CONN_OK;
		case FCGI_EV_ABORT:
			return CONN_ABORTED;
		case FCGI_EV_ERROR:
			c->why = c->rd.error;
			return CONN_FAILED;
		}
	}
}

static bool body_full(const struct fcgi_conn *c)
{
	return c->rd.state == FCGI_READER_BODY && c->rd.body_len >= c->rd.body_cap;
}

bool fcgi_conn_body_known_empty(const struct fcgi_conn *c)
{
	return fcgi_reader_body_ends_empty(&c->rd, c->in + c->in_pos, c->in_len - c->in_pos);
}

short fcgi_conn_poll_events(const struct fcgi_conn *c)
{
	bool in_room = c->in_len < c->in_cap || c->in_pos > 0;

	if (c->eof)
		return 0;
	/* POLLRDHUP: a close is seen even while nothing is read. */
	return POLLRDHUP | (!body_full(c) || in_room ? POLLIN : 0);
}

enum fcgi_conn_status fcgi_conn_service(struct fcgi_conn *c, short revents)
{
	int rc;

	if (!(revents & POLLIN)) {
		if (!(revents & (POLLRDHUP | POLLHUP | POLLERR)))
			return CONN_OK;
		c->eof = true;
		return CONN_CLOSED;
	}
	if (!body_full(c))
		return fcgi_conn_pump(c);
	/* Behind a full body buffer: read on only to find an abort. */
	rc = fill(c);
	if (fcgi_reader_abort_ahead(&c->rd, c->in + c->in_pos, c->in_len - c->in_pos))
		return CONN_ABORTED;
	if (rc == 0) {
		c->eof = true;
		return CONN_CLOSED;
	}
	return rc == -2 ? CONN_FAILED : CONN_OK;
}

ssize_t fcgi_conn_splice(struct fcgi_conn *c, int pipe_fd, bool *pipe_full)
{
	size_t pending = fcgi_reader_body_pending(&c->rd);
	struct pollfd pfd = { .fd = pipe_fd, .events = POLLOUT };
	ssize_t n;

	*pipe_full = false;
	if (c->no_splice || pending == 0 || c->in_pos < c->in_len || c->eof)
		return 0;
	n = splice(c->fd, NULL, pipe_fd, NULL, pending, SPLICE_F_NONBLOCK | SPLICE_F_MOVE);
	if (n > 0) {
		fcgi_reader_body_moved(&c->rd, (size_t)n);
		c->received += (size_t)n;
		return n;
	}
	if (n == 0) {
		c->eof = true;
		return -2;
	}
	if (errno == EINVAL) {
		c->no_splice = true;
		return -1;
	}
	if (errno != EAGAIN && errno != EINTR)
		return -1;
	/* EAGAIN: the pipe is full, or the socket empty: which one decides
	 * what to wait for. */
	*pipe_full = poll(&pfd, 1, 0) == 0;
	return 0;
}

/* The body source (see relay_ports.h). */

static short body_poll_events(void *ctx)
{
	return fcgi_conn_poll_events(ctx);
}

static enum body_status body_read(void *ctx, short revents, size_t *got, const char **why)
{
	struct fcgi_conn *c = ctx;
	size_t before = c->rd.body_len;

	switch (fcgi_conn_service(c, revents)) {
	case CONN_OK:
		break;
	case CONN_ABORTED:
		return BODY_ABORTED;
	case CONN_CLOSED:
		return BODY_CLOSED;
	case CONN_FAILED:
		*why = c->why;
		return BODY_FAILED;
	}
	*got = c->rd.body_len - before;
	return BODY_OK;
}

static size_t body_pending(void *ctx, const char **data, bool *full)
{
	struct fcgi_conn *c = ctx;

	*data = (const char *)c->rd.body + c->body_taken;
	*full = c->rd.body_len >= c->rd.body_cap;
	return c->rd.body_len - c->body_taken;
}

static void body_taken(void *ctx, size_t n)
{
	struct fcgi_conn *c = ctx;

	c->body_taken += n;
	if (c->body_taken >= c->rd.body_len) /* all passed on: room again */
		c->rd.body_len = c->body_taken = 0;
}

static bool body_ended(void *ctx)
{
	return ((struct fcgi_conn *)ctx)->rd.state == FCGI_READER_ENDED;
}

static void body_set_splice(void *ctx, bool on)
{
	((struct fcgi_conn *)ctx)->splice_body = on;
}

static ssize_t body_splice(void *ctx, int pipe_fd, bool *pipe_full)
{
	return fcgi_conn_splice(ctx, pipe_fd, pipe_full);
}

static void body_bound_sends(void *ctx, long long deadline)
{
	((struct fcgi_conn *)ctx)->wait.deadline = deadline;
}

/* Body content is decoded into buf (cap bytes) from now on, nothing of
 * it buffered or passed on yet, and read rather than spliced. */
static void use_body_buffer(struct fcgi_conn *c, char *buf, size_t cap)
{
	c->rd.body = (unsigned char *)buf;
	c->rd.body_cap = cap;
	c->rd.body_len = c->body_taken = 0;
	c->splice_body = false;
}

struct body_source fcgi_conn_body(struct fcgi_conn *c, char *buf, size_t cap)
{
	static const struct body_source_ops ops = { .poll_events = body_poll_events,
						    .read = body_read,
						    .pending = body_pending,
						    .taken = body_taken,
						    .ended = body_ended,
						    .set_splice = body_set_splice,
						    .splice = body_splice,
						    .bound_sends = body_bound_sends };

	use_body_buffer(c, buf, cap);
	return (struct body_source){ .fd = c->fd, .ctx = c, .ops = &ops };
}

/* A connection accepted just before a stop: how long its first request
 * may take to begin (nginx sends it with the connection). */
#define STOP_GRACE_MS 2000

/* Waits up to the deadline (0: none) for the socket to be readable, or for
 * extra_fd (-1: none).  Returns 1 readable, 0 timeout, -1 cancelled (the
 * cancel fd), -2 extra_fd readable. */
static int wait_readable(struct fcgi_conn *c, long long deadline, int extra_fd)
{
	struct pollfd pfd[3] = { { .fd = c->fd, .events = POLLIN },
				 { .fd = c->wait.cancel_fd, .events = POLLIN },
				 { .fd = extra_fd, .events = POLLIN } };
	long long left = deadline ? deadline - monotonic_ms() : -1;
	int rc;

	if (deadline && left <= 0)
		return 0;
	do
		rc = poll(pfd, extra_fd >= 0 ? 3 : 2, deadline ? (int)left : -1);
	while (rc < 0 && errno == EINTR);
	if (rc <= 0)
		return rc;
	if (pfd[0].revents)
		return 1;
	return extra_fd >= 0 && pfd[2].revents && !pfd[1].revents ? -2 : -1;
}

/* Whether the peer has begun sending something: the bytes of a request
 * head, or of any record (partly) read. */
static bool head_started(const struct fcgi_conn *c)
{
	return c->rd.state != FCGI_READER_IDLE || c->rd.in_record || c->rd.hdr_have > 0 || c->in_pos < c->in_len;
}

enum { HEAD_WAIT = 2, HEAD_PUMP_AGAIN = 3 };

/* What a pump's status means while a head is awaited: 1 a head, 0 a
 * quiet end, -1 a failure (logged), HEAD_WAIT for more bytes, or
 * HEAD_PUMP_AGAIN after an abort of a request whose head had not ended
 * (answered; nothing ran). */
static int head_progress(struct fcgi_conn *c, enum fcgi_conn_status st, bool first)
{
	switch (st) {
	case CONN_OK:
		return c->rd.state == FCGI_READER_BODY ? 1 : HEAD_WAIT;
	case CONN_ABORTED:
		log_info("the web server aborted request %u before its parameters ended", c->rd.id);
		if (fcgi_conn_end_request(c, FCGI_REQUEST_COMPLETE) < 0 || !c->rd.keep_conn)
			return 0;
		fcgi_conn_request_done(c);
		return HEAD_PUMP_AGAIN;
	case CONN_CLOSED:
		if (first || c->received > 0)
			log_info("connection closed before a complete request");
		return 0;
	case CONN_FAILED:
		break;
	}
	log_warnx("closing a connection: %s", c->why);
	return -1;
}

int fcgi_conn_await_head(struct fcgi_conn *c, bool first, int idle_ms, int stop_fd)
{
	long long now = monotonic_ms();
	long long idle_end = first ? 0 : now + idle_ms;
	long long head_end = first || head_started(c) ? now + c->wait.progress_ms : 0;
	bool graced = false; /* the stop began: the first request has a moment */

	c->received = 0;
	for (;;) {
		int rc;

		c->wait.deadline = head_end ? head_end : idle_end;
		rc = head_progress(c, fcgi_conn_pump(c), first);
		if (rc == HEAD_PUMP_AGAIN)
			continue;
		if (rc != HEAD_WAIT)
			return rc;
		if (!head_end && head_started(c))
			head_end = monotonic_ms() + c->wait.progress_ms;
		/* A connection with a request under way is served during a
		 * stop, and so is one just accepted, whose peer has connected
		 * to send one (closed, its request would fail; during an
		 * upgrade, the new copy could have served it), if its request
		 * comes within STOP_GRACE_MS; one idle between requests is
		 * closed. */
		rc = wait_readable(c, head_end ? head_end : idle_end, head_started(c) || graced ? -1 : stop_fd);
		if (rc == -2 && first) {
			long long grace_end = monotonic_ms() + STOP_GRACE_MS;
			graced = true;
			if (grace_end < head_end)
				head_end = grace_end;
			continue;
		}
		if (rc == 0 && head_end && graced && !head_started(c)) {
			log_info("closing a connection accepted as the daemon stopped: no request within %d ms",
				 STOP_GRACE_MS);
			return 0;
		}
		if (rc == 0 && head_end) {
			log_warnx("closing a connection: no complete request within --peer-timeout (%llu bytes sent)",
				  c->received);
			return -1;
		}
		if (rc <= 0)
			return 0;
	}
}

int fcgi_conn_drain_body(struct fcgi_conn *c, char *scratch, size_t size)
{
	/* From the call, not from the last byte: a request that waited for a
	 * slot did not read meanwhile, and its peer is not to blame. */
	long long body_end = monotonic_ms() + c->wait.progress_ms, until;

	use_body_buffer(c, scratch, size); /* what is left is read, and dropped */
	while (c->rd.state == FCGI_READER_BODY) {
		enum fcgi_conn_status st;
		int rc;

		c->rd.body_len = 0;
		st = fcgi_conn_pump(c);
		if (st == CONN_ABORTED || st == CONN_CLOSED) {
			c->why = st == CONN_ABORTED ? "the web server aborted the request"
						    : "the web server closed the connection during the body";
			return -1;
		}
		if (st == CONN_FAILED)
			return -1;
		if (c->rd.body_len > 0) {
			body_end = monotonic_ms() + c->wait.progress_ms;
			continue;
		}
		if (c->rd.state != FCGI_READER_BODY)
			break;
		until = c->wait.deadline && c->wait.deadline < body_end ? c->wait.deadline : body_end;
		rc = wait_readable(c, until, -1);
		if (rc == 0) {
			c->why = until == body_end ? "the web server sent no body bytes for --peer-timeout"
						   : "the body did not end within the request's time (-t)";
			return -1;
		}
		if (rc < 0) {
			c->why = "the daemon is stopping";
			return -1;
		}
	}
	c->rd.body_len = 0;
	return 0;
}

int fcgi_conn_end_request(struct fcgi_conn *c, unsigned char protocol_status)
{
	FCGI_EndRequestRecord end;
	struct iovec iov = { .iov_base = &end, .iov_len = sizeof(end) };

	fcgi_end_request_encode(&end, c->rd.id, 0, protocol_status);
	return peer_send_all(c->fd, &iov, 1, &c->wait);
}

void fcgi_conn_request_done(struct fcgi_conn *c)
{
	fcgi_reader_request_done(&c->rd);
	c->body_taken = 0;
	c->splice_body = false;
}

void fcgi_conn_close(struct fcgi_conn *c)
{
	int queued = 0;

	if (c->fd < 0)
		return;
	if (!c->eof && (c->in_pos < c->in_len || (ioctl(c->fd, FIONREAD, &queued) == 0 && queued > 0)) &&
	    shutdown(c->fd, SHUT_WR) == 0) {
		long long end = monotonic_ms() + 100;
		size_t total = 0;
		char scratch[4096];
		while (total < 64 * 1024) {
			struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
			long long left = end - monotonic_ms();
			ssize_t n;
			if (left <= 0 || poll(&pfd, 1, (int)left) <= 0)
				break;
			n = recv(c->fd, scratch, sizeof(scratch), MSG_DONTWAIT);
			if (n <= 0)
				break;
			total += (size_t)n;
		}
	}
	close(c->fd);
	c->fd = -1;
}
