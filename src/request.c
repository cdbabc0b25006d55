/* One connection, one request at a time (nginx never multiplexes).
 *
 * libfcgi reads the request: FCGX_Accept_r() on a connection we accepted
 * ourselves parses BEGIN_REQUEST and PARAMS, and its input stream decodes
 * FCGI_STDIN.  Its reads block, so the relay below only calls into it when
 * it wants body bytes, and services the script's pipes (non-blocking) in
 * between.  Output goes through fcgi_out (see there for why).
 *
 * The order of events that matters:
 *  - nothing is sent before FCGI_STDIN has ended (nginx stops sending the
 *    body once response bytes arrive); output is spooled until then;
 *  - the body is fed to the script while its output is read, so no order
 *    of reads and writes in the script can deadlock;
 *  - the request ends when the body has ended, the script's stdout and
 *    stderr are closed, and the script has been reaped (its exit status
 *    becomes appStatus in FCGI_END_REQUEST). */
#include "config.h"

#include <errno.h>
#include <fastcgi.h>
#include <fcgiapp.h>
#include <limits.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "access_log.h"
#include "cgi_env.h"
#include "clock.h"
#include "fcgi_head.h"
#include "cgi_header.h"
#include "fcgi_out.h"
#include "log.h"
#include "request.h"
#include "script_path.h"
#include "settings.h"
#include "spawn.h"
#include "stats.h"
#include "workers.h"

#define IO_BUF_SIZE (64 * 1024)
/* Body bytes gathered for one write to the script's pipe. */
#define BODY_BUF_SIZE (64 * 1024)
/* libfcgi decodes the body from reads of this size. */
#define LIBFCGI_READ_SIZE 8192
/* Pieces of body passed to the script between two looks at its other
 * fds (see relay()). */
#define BODY_POLL_EVERY 16
/* A script's stderr line longer than this is logged in pieces. */
#define STDERR_LINE_MAX 2048
/* How long a connection kept open by the web server may idle between
 * requests (nginx's upstream keepalive_timeout defaults to 60 s too). */
#define KEEPALIVE_TIMEOUT_MS 60000

/* The three buffers share one anonymous mapping: pages are only taken
 * when touched, and all of it goes back to the system when an idle
 * worker exits (malloc would keep it in the thread's arena).  A page with
 * no access on each side makes an overrun fault rather than corrupt, and
 * keeps the mapping apart from its neighbours in /proc/PID/smaps (the
 * kernel merges adjacent mappings of the same kind), where a test finds
 * it by its size. */
#define BUFFERS_LEN (IO_BUF_SIZE + BODY_BUF_SIZE + FCGI_HEAD_MAX + FCGI_HEADER_LEN)

static size_t page_size(void)
{
	return (size_t)sysconf(_SC_PAGESIZE);
}

static size_t buffers_span(void)
{
	size_t page = page_size();
	return (BUFFERS_LEN + page - 1) / page * page;
}

int worker_buffers_init(struct worker_buffers *wb)
{
	size_t page = page_size(), span = buffers_span();
	char *base = mmap(NULL, span + 2 * page, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *p = base == MAP_FAILED ? NULL : base + page;

	if (p && mprotect(p, span, PROT_READ | PROT_WRITE) < 0) {
		munmap(base, span + 2 * page);
		p = NULL;
	}
	if (!p) {
		wb->io = wb->body = NULL;
		wb->head = NULL;
		return -1;
	}
	wb->io = p;
	wb->io_size = IO_BUF_SIZE;
	wb->body = p + IO_BUF_SIZE;
	wb->body_size = BODY_BUF_SIZE;
	wb->head = (unsigned char *)p + IO_BUF_SIZE + BODY_BUF_SIZE;
	return 0;
}

/* After a request that moved more than this through the buffers, their
 * pages are given back (see worker_buffers_trim). */
#define TRIM_ABOVE (16 * 1024)

/* Gives the buffers' pages back to the system; they read as zeros when
 * next touched.  After a large request only: a worker that once served an
 * upload would otherwise keep 128 KiB resident for as long as it lives,
 * and the daemon's RSS would follow how many workers ever did. */
static void worker_buffers_trim(struct worker_buffers *wb)
{
	madvise(wb->io, buffers_span(), MADV_DONTNEED);
}

void worker_buffers_free(struct worker_buffers *wb)
{
	if (wb->io)
		munmap(wb->io - page_size(), buffers_span() + 2 * page_size());
	wb->io = wb->body = NULL;
	wb->head = NULL;
}

enum header_state { HDR_PARSING, HDR_DONE, HDR_FAILED };

struct request {
	FCGX_Request *fcgx;
	struct worker_buffers *wb;
	struct fcgi_out out;
	struct cgi_header hdr;
	enum header_state hstate;
	struct script_proc proc;
	struct script_location loc;
	char **env;
	char *dir;              /* where the script runs, or NULL */
	const char *label;      /* names the request in log lines */
	size_t body_off, body_len; /* body bytes in wb->body not yet written */
	bool stdin_ended;       /* FCGI_STDIN has ended */
	bool conn_broken;       /* no more output can reach the peer */
	bool has_slot;          /* holds one of the -c script slots */
	bool slow_logged;       /* --slow-log line written */
	bool accounted;         /* counted and logged (account()) */
	int status;             /* HTTP status sent to the web server, or 0 */
	unsigned long long bytes_in; /* request body bytes read */
	long long start_ms;
	long long deadline;     /* -t: when the request is ended, or 0 */
	long long last_activity; /* last byte to or from the script */
	char *errline;          /* partial stderr line (without -f) */
	size_t errline_len;
};

static void request_init(struct request *r, FCGX_Request *fcgx, struct worker_buffers *wb)
{
	memset(r, 0, sizeof(*r));
	r->fcgx = fcgx;
	r->wb = wb;
	/* Relies on FCGX_Request.ipcFd (the connection) and .requestId. */
	fcgi_out_init(&r->out, fcgx->ipcFd, (uint16_t)fcgx->requestId, cfg.peer_timeout_ms);
	cgi_header_init(&r->hdr);
	script_proc_init(&r->proc);
	r->label = "(unknown script)";
	r->start_ms = r->last_activity = monotonic_ms();
	r->deadline = cfg.timeout_ms ? r->last_activity + cfg.timeout_ms : 0;
}

static void request_free(struct request *r)
{
	if (r->has_slot) {
		workers_release_script_slot();
		atomic_fetch_sub(&stats.scripts, 1);
	}
	r->has_slot = false;
	fcgi_out_free(&r->out);
	cgi_header_free(&r->hdr);
	script_proc_close(&r->proc);
	script_location_free(&r->loc);
	free(r->env);
	free(r->dir);
	free(r->errline);
	r->env = NULL;
	r->dir = r->errline = NULL;
}

/* Reads the next piece of the request body.  Returns the number of bytes
 * (> 0), 0 at the end of FCGI_STDIN, -1 if the connection failed or the
 * peer broke the protocol (an FCGI_ABORT_REQUEST included).  Blocks only
 * until the peer sends more.
 *
 * Relies on the public FCGX_Stream fields rdNext and stop: the bytes
 * between them are decoded body bytes already in libfcgi's buffer, and
 * taking no more than those never blocks. */
static ssize_t read_body(FCGX_Stream *in, char *buf, size_t size)
{
	int avail = (int)(in->stop - in->rdNext);
	int n;

	if (avail > 0) {
		n = FCGX_GetStr(buf, avail < (int)size ? avail : (int)size, in);
	} else {
		n = FCGX_GetStr(buf, 1, in);
		avail = (int)(in->stop - in->rdNext);
		if (n == 1 && avail > 0)
			n += FCGX_GetStr(buf + 1, avail < (int)size - 1 ? avail : (int)size - 1, in);
	}
	if (n > 0)
		return n;
	return FCGX_GetError(in) ? -1 : 0;
}

/* Reads body bytes into the body buffer: one piece, waiting for it if need
 * be, then more while more has arrived already and there is room.  Each
 * write to the script's pipe wakes the script up, and a wake-up costs
 * more than copying 8 KB: the script gets one write per batch, not one
 * per libfcgi read.  Returns the bytes read (*ended set if FCGI_STDIN
 * ended after them), or -1 as read_body(). */
static ssize_t read_body_batch(struct request *r, bool *ended)
{
	FCGX_Stream *in = r->fcgx->in;
	size_t len = 0;

	*ended = false;
	for (;;) {
		int queued = 0;
		ssize_t n = read_body(in, r->wb->body + len, r->wb->body_size - len);
		if (n < 0)
			return -1;
		if (n == 0) {
			*ended = true;
			break;
		}
		len += (size_t)n;
		if (r->wb->body_size - len < LIBFCGI_READ_SIZE)
			break;
		/* Nothing decoded in libfcgi's buffer and nothing queued on the
		 * connection: the next piece would mean waiting. */
		if (in->stop == in->rdNext &&
		    (ioctl(r->fcgx->ipcFd, FIONREAD, &queued) < 0 || queued == 0))
			break;
	}
	return (ssize_t)len;
}

/* Reads and drops the rest of the body.  Returns 0, or -1 if the
 * connection failed. */
static int drain_body(struct request *r)
{
	while (!r->stdin_ended) {
		ssize_t n = read_body(r->fcgx->in, r->wb->body, r->wb->body_size);
		if (n < 0)
			return -1;
		if (n == 0)
			r->stdin_ended = true;
		r->bytes_in += (size_t)n;
	}
	return 0;
}

/* The request's figures: counters, and its access log line.  Done once,
 * just before FCGI_END_REQUEST goes out (so a status page asked for after
 * an answer counts it), or at the end for a request that got none. */
static void account(struct request *r)
{
	char *const *params = r->fcgx->envp;
	struct access_entry e = {
		.peer = cgi_env_get(params, "REMOTE_ADDR"),
		.method = cgi_env_get(params, "REQUEST_METHOD"),
		.uri = cgi_env_get(params, "REQUEST_URI"),
		.script = r->loc.filename ? r->loc.filename : cgi_env_get(params, "SCRIPT_NAME"),
		.status = r->status,
		.bytes_in = r->bytes_in,
		.bytes_out = r->out.stdout_bytes,
		.duration_ms = monotonic_ms() - r->start_ms,
		.exit_status = r->proc.pid > 0 && r->proc.reaped ? r->proc.wait_status : -1,
		.pid = r->proc.pid,
	};

	if (r->accounted)
		return;
	r->accounted = true;
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

/* Sends a complete response: status_line, type and body (by default the
 * status line itself, the form 1.1.0 used for its errors). */
static void send_response(struct request *r, const char *status_line, const char *type, const char *body)
{
	char head[256];
	int n = snprintf(head, sizeof(head), "Status: %s\r\nContent-Type: %s\r\n\r\n", status_line, type);

	if (fcgi_out_stream(&r->out, FCGI_STDOUT, head, (size_t)n) < 0 ||
	    (body && fcgi_out_stream(&r->out, FCGI_STDOUT, body, strlen(body)) < 0) ||
	    (!body && (fcgi_out_stream(&r->out, FCGI_STDOUT, status_line, strlen(status_line)) < 0 ||
		       fcgi_out_stream(&r->out, FCGI_STDOUT, "\r\n", 2) < 0))) {
		r->conn_broken = true;
		return;
	}
	r->status = atoi(status_line);
}

static void send_error_body(struct request *r, const char *status_line)
{
	send_response(r, status_line, "text/plain", NULL);
}

/* Answers a request without a script (an error, the status or ping page):
 * drains the body first (nginx would stop sending it otherwise), then the
 * response and the end. */
static void respond(struct request *r, const char *status_line, const char *type, const char *body)
{
	if (drain_body(r) < 0 || fcgi_out_release(&r->out, r->wb->io, r->wb->io_size) < 0) {
		r->conn_broken = true;
		return;
	}
	send_response(r, status_line, type, body);
	account(r);
	if (!r->conn_broken && fcgi_out_end_request(&r->out, 0, FCGI_REQUEST_COMPLETE) < 0)
		r->conn_broken = true;
}

static void respond_error(struct request *r, const char *status_line)
{
	respond(r, status_line, "text/plain", NULL);
}

static void log_stderr_line(struct request *r, const char *line, size_t len)
{
	log_warnx("%s: %.*s", r->label, (int)len, line);
}

/* Script stderr without -f: one log line per line the script wrote. */
static void stderr_to_log(struct request *r, const char *data, size_t len)
{
	if (!r->errline) {
		r->errline = malloc(STDERR_LINE_MAX);
		if (!r->errline)
			return;
	}
	while (len > 0) {
		const char *nl = memchr(data, '\n', len);
		size_t take = nl ? (size_t)(nl - data) : len;
		if (take > STDERR_LINE_MAX - r->errline_len)
			take = STDERR_LINE_MAX - r->errline_len;
		memcpy(r->errline + r->errline_len, data, take);
		r->errline_len += take;
		data += take;
		len -= take;
		if (len > 0 && *data == '\n') {
			data++;
			len--;
			log_stderr_line(r, r->errline, r->errline_len);
			r->errline_len = 0;
		} else if (r->errline_len == STDERR_LINE_MAX) {
			log_stderr_line(r, r->errline, r->errline_len);
			r->errline_len = 0;
		}
	}
}

static void stderr_flush(struct request *r)
{
	if (r->errline_len > 0)
		log_stderr_line(r, r->errline, r->errline_len);
	r->errline_len = 0;
}

/* The script broke the CGI header rules: it is ended, its remaining output
 * dropped, and the client will get a 502 once the body has been read. */
static int on_stderr(struct request *r, const char *data, size_t len);

static void headers_failed(struct request *r)
{
	r->hstate = HDR_FAILED;
	log_warnx("%s: bad CGI response: %s", r->label, r->hdr.error);
	script_terminate(&r->proc, cfg.kill_grace_ms);
	/* What the script wrote to stderr before it ended usually says why
	 * its output was wrong: pass on what the pipe holds before closing. */
	if (r->proc.stderr_fd >= 0) {
		ssize_t n;
		while ((n = read(r->proc.stderr_fd, r->wb->io, r->wb->io_size)) > 0)
			on_stderr(r, r->wb->io, (size_t)n);
		stderr_flush(r);
	}
	script_proc_close(&r->proc);
}

/* Handles bytes from the script's stdout.  Returns -1 if the peer is gone. */
static int on_stdout(struct request *r, const char *data, size_t len)
{
	if (r->hstate == HDR_PARSING) {
		size_t used;
		switch (cgi_header_feed(&r->hdr, data, len, &used)) {
		case CGI_HEADER_MORE:
			return 0;
		case CGI_HEADER_ERROR:
			headers_failed(r);
			return 0;
		case CGI_HEADER_DONE: {
			/* The header and the body bytes read with it go out
			 * together: one record and one sendmsg for a small
			 * response. */
			struct iovec parts[2] = { { .iov_base = r->hdr.out, .iov_len = r->hdr.out_len },
						  { .iov_base = (char *)data + used, .iov_len = len - used } };
			r->hstate = HDR_DONE;
			r->status = r->hdr.status;
			return fcgi_out_streamv(&r->out, FCGI_STDOUT, parts, 2);
		}
		}
	}
	if (r->hstate == HDR_DONE && len > 0)
		return fcgi_out_stream(&r->out, FCGI_STDOUT, data, len);
	return 0;
}

static int on_stderr(struct request *r, const char *data, size_t len)
{
	if (cfg.stderr_to_fastcgi)
		return fcgi_out_stream(&r->out, FCGI_STDERR, data, len);
	stderr_to_log(r, data, len);
	return 0;
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/* Writes pending body bytes to the script; a script that closed its stdin
 * gets no more (the rest of the body is read and dropped). */
static void feed_script(struct request *r)
{
	while (r->proc.stdin_fd >= 0 && r->body_off < r->body_len) {
		ssize_t n = write(r->proc.stdin_fd, r->wb->body + r->body_off, r->body_len - r->body_off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				return;
			/* EPIPE: the script does not want the rest. */
			close_fd(&r->proc.stdin_fd);
			break;
		}
		r->body_off += (size_t)n;
		r->last_activity = monotonic_ms();
	}
	if (r->proc.stdin_fd < 0)
		r->body_off = r->body_len = 0;
	if (r->stdin_ended && r->body_off == r->body_len)
		close_fd(&r->proc.stdin_fd);
}

/* Reads what the script wrote to *fd and hands it to handler.  Returns 1
 * when the pipe has ended (and closes it), 0 after data or nothing, -1 if
 * the handler could not pass the data on. */
static int read_pipe(struct request *r, int *fd,
		     int (*handler)(struct request *r, const char *data, size_t len))
{
	ssize_t n = read(*fd, r->wb->io, r->wb->io_size);

	if (n > 0) {
		r->last_activity = monotonic_ms();
		return handler(r, r->wb->io, (size_t)n) < 0 ? -1 : 0;
	}
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return 0;
	close_fd(fd);
	return 1;
}

/* After FCGI_STDIN has ended the peer has nothing more to send for this
 * request: anything readable is a close, an FCGI_ABORT_REQUEST or a
 * protocol violation, and each of them ends the request. */
static const char *peer_abort_reason(int fd)
{
	unsigned char h[FCGI_HEADER_LEN];
	ssize_t n = recv(fd, h, sizeof(h), MSG_PEEK | MSG_DONTWAIT);

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return NULL;
	if (n <= 0)
		return "the web server closed the connection";
	if (n >= 2 && h[1] == FCGI_ABORT_REQUEST)
		return "the web server aborted the request";
	return "unexpected data from the web server";
}

static void abort_request(struct request *r, const char *why)
{
	atomic_fetch_add(&stats.aborts, 1);
	log_info("%s: %s; ending the script", r->label, why);
	script_terminate(&r->proc, cfg.kill_grace_ms);
	r->conn_broken = true;
}

/* Ends a request the web server is still waiting for (timeout, stop): the
 * script's group is ended, then the client gets status_line if no header
 * was sent yet, else the response ends where it is.  Output held so far is
 * sent first.  A body not read to its end makes the connection unusable
 * for another request. */
static void end_early(struct request *r, const char *status_line, const char *why)
{
	log_warnx("%s: %s (pid %d); ending it", r->label, why, (int)r->proc.pid);
	script_terminate(&r->proc, cfg.kill_grace_ms);
	if (!r->stdin_ended)
		r->conn_broken = true;
	if (fcgi_out_release(&r->out, r->wb->io, r->wb->io_size) < 0) {
		r->conn_broken = true;
		return;
	}
	if (r->hstate != HDR_DONE)
		send_error_body(r, status_line);
	account(r);
	if (fcgi_out_end_request(&r->out, (uint32_t)script_exit_code(r->proc.wait_status),
				 FCGI_REQUEST_COMPLETE) < 0)
		r->conn_broken = true;
}

/* How long the relay may wait before a limit is reached (-1: no limit),
 * or 0 with *why set when one has been reached. */
static int time_left(struct request *r, const char **why)
{
	long long now = monotonic_ms(), left = -1;

	*why = NULL;
	if (cfg.slow_log_ms && !r->slow_logged) {
		long long slow_at = r->start_ms + cfg.slow_log_ms;
		if (now >= slow_at) {
			r->slow_logged = true;
			atomic_fetch_add(&stats.slow, 1);
			log_warnx("%s: slow request: running for %lld s (pid %d)", r->label, (now - r->start_ms) / 1000,
				  (int)r->proc.pid);
		} else {
			left = slow_at - now;
		}
	}
	if (r->deadline) {
		if (now >= r->deadline) {
			*why = "timed out (-t)";
			return 0;
		}
		if (left < 0 || r->deadline - now < left)
			left = r->deadline - now;
	}
	if (cfg.inactivity_timeout_ms) {
		long long idle_end = r->last_activity + cfg.inactivity_timeout_ms;
		if (now >= idle_end) {
			*why = "no input or output for --inactivity-timeout";
			return 0;
		}
		if (left < 0 || idle_end - now < left)
			left = idle_end - now;
	}
	return left < 0 ? -1 : (int)(left < INT_MAX ? left : INT_MAX);
}

/* The body has ended: a CONTENT_LENGTH that does not match it is worth a
 * line (the script got the body as it came, all of it). */
static void check_content_length(struct request *r)
{
	const char *cl = cgi_env_get(r->fcgx->envp, "CONTENT_LENGTH");
	char *end;
	unsigned long long want;

	if (!cl || !*cl)
		return;
	want = strtoull(cl, &end, 10);
	if (*end || want != r->bytes_in)
		log_warnx("%s: CONTENT_LENGTH is %s but the body had %llu bytes", r->label, cl, r->bytes_in);
}

/* Why reading the body failed, for the log line. */
static const char *body_error(FCGX_Stream *in)
{
	switch (FCGX_GetError(in)) {
	case EAGAIN:
		return "the web server sent no body bytes for --peer-timeout";
	case FCGX_PROTOCOL_ERROR:
		return "the web server closed the connection or aborted the request during the body";
	case FCGX_UNSUPPORTED_VERSION:
		return "malformed record (bad version) in the body";
	default:
		return "the connection failed while the body was read";
	}
}

/* Runs the relay until the request is complete.  Returns 0, or -1 when the
 * request was aborted or ended early (the script has been ended then, and
 * whatever answer was possible has been sent). */
static int relay(struct request *r)
{
	struct script_proc *p = &r->proc;
	int conn = r->fcgx->ipcFd;
	unsigned body_pieces = 0;

	r->hstate = HDR_PARSING;
	for (;;) {
		struct pollfd pfd[6];
		int np = 0, i_out = -1, i_err = -1, i_in = -1, i_pid = -1, i_conn = -1, i_kill, timeout;
		bool want_body = !r->stdin_ended && r->body_off == r->body_len;
		const char *limit;

		timeout = time_left(r, &limit);
		if (limit) {
			atomic_fetch_add(&stats.timeouts, 1);
			end_early(r, "504 Gateway Timeout", limit);
			return -1;
		}
		if (want_body) {
			bool ended;
			ssize_t n = read_body_batch(r, &ended);
			if (n < 0) {
				abort_request(r, body_error(r->fcgx->in));
				return -1;
			}
			if (n > 0) {
				r->last_activity = monotonic_ms();
				r->bytes_in += (size_t)n;
			}
			r->body_off = 0;
			r->body_len = (size_t)n;
			r->stdin_ended = ended;
			/* Closes the script's stdin once the body has ended and
			 * all of it was written. */
			feed_script(r);
			if (ended) {
				check_content_length(r);
				if (fcgi_out_release(&r->out, r->wb->io, r->wb->io_size) < 0) {
					abort_request(r, "the web server stopped taking the response");
					return -1;
				}
			}
			want_body = !r->stdin_ended && r->body_off == r->body_len;
		}
		if (r->stdin_ended && p->stdout_fd < 0 && p->stderr_fd < 0 && script_try_reap(p))
			return 0;
		/* While the body streams in and the script takes it as fast,
		 * its other fds are looked at once every BODY_POLL_EVERY
		 * pieces, not after each: its output is only held until the
		 * body ends anyway, and a script that stops reading makes the
		 * next write fail with EAGAIN, which polls at once. */
		if (want_body && ++body_pieces % BODY_POLL_EVERY != 0)
			continue;

		if (p->stdout_fd >= 0) {
			pfd[np] = (struct pollfd){ .fd = p->stdout_fd, .events = POLLIN };
			i_out = np++;
		}
		if (p->stderr_fd >= 0) {
			pfd[np] = (struct pollfd){ .fd = p->stderr_fd, .events = POLLIN };
			i_err = np++;
		}
		if (p->stdin_fd >= 0 && r->body_off < r->body_len) {
			pfd[np] = (struct pollfd){ .fd = p->stdin_fd, .events = POLLOUT };
			i_in = np++;
		}
		if (!p->reaped && p->pidfd >= 0) {
			pfd[np] = (struct pollfd){ .fd = p->pidfd, .events = POLLIN };
			i_pid = np++;
		}
		if (r->stdin_ended) {
			pfd[np] = (struct pollfd){ .fd = conn, .events = POLLIN };
			i_conn = np++;
		}
		pfd[np] = (struct pollfd){ .fd = workers_kill_fd(), .events = POLLIN };
		i_kill = np++;
		/* When body bytes are wanted, only look at what is ready now and
		 * go back to reading the body (libfcgi may hold decoded bytes that
		 * poll() cannot see). */
		if (poll(pfd, (nfds_t)np, want_body ? 0 : timeout) < 0) {
			if (errno == EINTR)
				continue;
			abort_request(r, "poll failed");
			return -1;
		}
		if (pfd[i_kill].revents) {
			end_early(r, "503 Service Unavailable", "the daemon is stopping");
			return -1;
		}
		if (i_in >= 0 && pfd[i_in].revents)
			feed_script(r);
		if (i_out >= 0 && pfd[i_out].revents) {
			int rc = read_pipe(r, &p->stdout_fd, on_stdout);
			if (rc < 0) {
				abort_request(r, "the web server stopped taking the response");
				return -1;
			}
			if (rc > 0 && r->hstate == HDR_PARSING) {
				cgi_header_eof(&r->hdr);
				headers_failed(r);
			}
		}
		/* headers_failed() may have closed stderr meanwhile. */
		if (i_err >= 0 && p->stderr_fd >= 0 && pfd[i_err].revents) {
			int rc = read_pipe(r, &p->stderr_fd, on_stderr);
			if (rc < 0) {
				abort_request(r, "the web server stopped taking the response");
				return -1;
			}
			if (rc > 0)
				stderr_flush(r);
		}
		if (i_pid >= 0 && pfd[i_pid].revents && script_try_reap(p))
			close_fd(&p->pidfd);
		if (i_conn >= 0 && pfd[i_conn].revents) {
			const char *why = peer_abort_reason(conn);
			if (why) {
				abort_request(r, why);
				return -1;
			}
		}
	}
}

/* Set while script starts fail for lack of resources (one log line per
 * episode, not per request). */
static atomic_bool resource_shortage;
/* Set while requests time out waiting for a script slot. */
static atomic_bool overloaded;

static bool is_resource_shortage(int err)
{
	return err == EAGAIN || err == EMFILE || err == ENFILE || err == ENOMEM;
}

/* Where the script runs: FCGI_CHDIR if sent ("-" for the daemon's own
 * directory), else the script's directory.  Returns 0, or -1 with *why. */
static int choose_directory(struct request *r, char *const *params, const char **why)
{
	const char *want = cgi_env_get(params, "FCGI_CHDIR");
	const char *slash;
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
		r->dir = slash == r->loc.filename ? strdup("/")
						  : strndup(r->loc.filename, (size_t)(slash - r->loc.filename));
	}
	if (!r->dir) {
		*why = "out of memory";
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

static void log_exit_status(struct request *r)
{
	int st = r->proc.wait_status;

	if (WIFEXITED(st) && WEXITSTATUS(st) != 0)
		log_warnx("%s: exited with status %d", r->label, WEXITSTATUS(st));
	else if (WIFSIGNALED(st))
		log_warnx("%s: killed by signal %d (%s)", r->label, WTERMSIG(st), strsignal(WTERMSIG(st)));
}

/* How a request named its script, for log lines before it is resolved. */
static const char *named_script(char *const *params)
{
	const char *name = cgi_env_get(params, "SCRIPT_FILENAME");

	if (!name || !*name)
		name = cgi_env_get(params, "SCRIPT_NAME");
	return name && *name ? name : "(none)";
}

/* --status-path and --ping-path: answered by the daemon itself.  Returns
 * true if the request was one of them. */
static bool serve_builtin_page(struct request *r, char *const *params)
{
	const char *name = cgi_env_get(params, "SCRIPT_NAME");
	const char *query = cgi_env_get(params, "QUERY_STRING");
	const char *type, *format = "text";
	char *page;

	if (!name)
		return false;
	if (cfg.ping_path && strcmp(name, cfg.ping_path) == 0) {
		r->label = cfg.ping_path;
		respond(r, "200 OK", "text/plain", "pong\n");
		return true;
	}
	if (!cfg.status_path || strcmp(name, cfg.status_path) != 0)
		return false;
	r->label = cfg.status_path;
	if (query && strstr(query, "json"))
		format = "json";
	else if (query && strstr(query, "openmetrics"))
		format = "openmetrics";
	page = stats_render(format, cfg.max_active, &type);
	if (page)
		respond(r, "200 OK", type, page);
	else
		respond_error(r, "500 Internal Server Error");
	free(page);
	return true;
}

/* Serves the request FCGX_Accept_r() has just read.  Returns true if the
 * connection is still usable for another request. */
static bool handle_request(FCGX_Request *fcgx, struct worker_buffers *wb)
{
	struct request r;
	char *const *params = fcgx->envp;
	struct env_override ov[2 + cfg.n_set_env];
	size_t nov = 0;
	const char *why = NULL, *step;
	int rc;

	request_init(&r, fcgx, wb);
	if (fcgx->role != FCGI_RESPONDER) {
		log_warnx("FastCGI role %d refused: only the responder role is served", fcgx->role);
		r.out.holding = false;
		fcgi_out_end_request(&r.out, 0, FCGI_UNKNOWN_ROLE);
		r.conn_broken = true;
		goto done;
	}

	if (serve_builtin_page(&r, params))
		goto done;
	switch (script_resolve(cgi_env_get(params, "SCRIPT_FILENAME"),
			       cgi_env_get(params, "DOCUMENT_ROOT"), cgi_env_get(params, "SCRIPT_NAME"),
			       file_probe_stat, NULL, &r.loc, &why)) {
	case SCRIPT_FOUND:
		break;
	case SCRIPT_NOT_FOUND:
		log_warnx("%s: script not found: %s", named_script(params), why);
		respond_error(&r, "404 Not Found");
		goto done;
	case SCRIPT_FORBIDDEN:
		log_warnx("%s: script refused: %s", named_script(params), why);
		respond_error(&r, "403 Forbidden");
		goto done;
	}
	r.label = r.loc.filename;
	{
		const char *sf = cgi_env_get(params, "SCRIPT_FILENAME");
		const char *root = sf && *sf ? NULL : cgi_env_get(params, "DOCUMENT_ROOT");
		if (script_policy_check(&cfg.policy, r.loc.filename, root, &why) < 0) {
			log_warnx("%s: script refused: %s", r.label, why);
			respond_error(&r, "403 Forbidden");
			goto done;
		}
	}
	if (choose_directory(&r, params, &why) < 0) {
		log_warnx("%s: script refused: %s", r.label, why);
		respond_error(&r, "403 Forbidden");
		goto done;
	}
	if (r.loc.script_name) {
		ov[nov++] = (struct env_override){ "SCRIPT_NAME", r.loc.script_name };
		ov[nov++] = (struct env_override){ "PATH_INFO", r.loc.path_info };
	}
	for (size_t i = 0; i < cfg.n_set_env; i++)
		ov[nov++] = cfg.set_env[i];
	r.env = cgi_env_build(params, cfg.inherited_env, ov, nov);
	if (!r.env || absolutize(&r) < 0) {
		log_err("%s: cannot prepare the environment", r.label);
		respond_error(&r, "502 Bad Gateway");
		goto done;
	}
	/* -c: a script slot, waited for at most --queue-timeout. */
	atomic_fetch_add(&stats.queued, 1);
	rc = workers_acquire_script_slot(cfg.queue_timeout_ms);
	atomic_fetch_sub(&stats.queued, 1);
	switch (rc) {
	case 0: {
		unsigned running = atomic_fetch_add(&stats.scripts, 1) + 1;
		unsigned max = atomic_load(&stats.max_scripts);
		while (running > max && !atomic_compare_exchange_weak(&stats.max_scripts, &max, running))
			;
		r.has_slot = true;
		if (atomic_exchange(&overloaded, false))
			log_info("script slots are available again");
		break;
	}
	case -1:
		atomic_fetch_add(&stats.overloaded, 1);
		if (!atomic_exchange(&overloaded, true))
			log_warnx("all %u script slots (-c) stayed busy for --queue-timeout; answering 503 "
				  "until one frees in time", cfg.max_active);
		respond_error(&r, "503 Service Unavailable");
		goto done;
	default:
		respond_error(&r, "503 Service Unavailable");
		goto done;
	}
	rc = script_spawn(r.loc.filename, r.env, r.dir, &r.proc, &step);
	if (rc != 0)
		atomic_fetch_add(&stats.spawn_failures, 1);
	if (rc != 0 && is_resource_shortage(rc)) {
		/* Out of processes, fds or memory: say so once per episode,
		 * answer 503, and let the next request try again. */
		if (!atomic_exchange(&resource_shortage, true))
			log_errx("cannot start scripts (%s: %s); answering 503 until resources return", step,
				 strerror(rc));
		respond_error(&r, "503 Service Unavailable");
		goto done;
	}
	if (rc != 0) {
		if (strcmp(step, "exec") == 0)
			log_warnx("%s: cannot execute script: %s", r.label, strerror(rc));
		else
			log_warnx("%s: cannot start script (%s): %s", r.label, step, strerror(rc));
		respond_error(&r, "502 Bad Gateway");
		goto done;
	}
	if (atomic_exchange(&resource_shortage, false))
		log_info("scripts can be started again");

	if (relay(&r) < 0)
		goto done;
	log_exit_status(&r);
	if (r.hstate != HDR_DONE)
		send_error_body(&r, "502 Bad Gateway");
	account(&r);
	if (!r.conn_broken &&
	    fcgi_out_end_request(&r.out, (uint32_t)script_exit_code(r.proc.wait_status),
				 FCGI_REQUEST_COMPLETE) < 0)
		r.conn_broken = true;
done:
	if (r.proc.pid > 0 && !r.proc.reaped)
		script_terminate(&r.proc, cfg.kill_grace_ms);
	account(&r);
	if (r.bytes_in > TRIM_ABOVE || r.out.stdout_bytes > TRIM_ABOVE)
		worker_buffers_trim(wb);
	request_free(&r);
	return !r.conn_broken;
}

/* Waits until fd has bytes to read.  Returns false on timeout, on error,
 * or when the daemon stops while nothing has arrived: a request already
 * sent is still served during a stop. */
static bool wait_readable(int fd, int timeout_ms)
{
	struct pollfd pfd[2] = { { .fd = fd, .events = POLLIN },
				 { .fd = workers_stop_fd(), .events = POLLIN } };
	int rc;

	do
		rc = poll(pfd, 2, timeout_ms);
	while (rc < 0 && errno == EINTR);
	return rc > 0 && pfd[0].revents;
}

/* Waits until the connection has sent a complete request head (see
 * fcgi_head.c), within --peer-timeout.  Returns 0, or -1 after logging why
 * the connection is given up (a peer that closed between requests is not
 * worth a line). */
static int await_request_head(int fd, struct worker_buffers *wb, bool first)
{
	long long deadline = monotonic_ms() + cfg.peer_timeout_ms;
	size_t want = 16 * 1024;
	int pause_ms = 1;

	for (;;) {
		ssize_t n = recv(fd, wb->head, want, MSG_PEEK | MSG_DONTWAIT);
		size_t head_len;
		const char *why = NULL;
		long long left;

		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
			if (n < 0 || !first)
				return -1; /* closed between requests: the usual end */
			log_info("connection closed before a complete request");
			return -1;
		}
		if (n > 0) {
			switch (fcgi_head_scan(wb->head, (size_t)n, &head_len, &why)) {
			case FCGI_HEAD_COMPLETE:
				return 0;
			case FCGI_HEAD_INVALID:
				log_warnx("closing a connection: %s", why);
				return -1;
			case FCGI_HEAD_INCOMPLETE:
				if ((size_t)n == want && want < FCGI_HEAD_MAX + FCGI_HEADER_LEN) {
					want = FCGI_HEAD_MAX + FCGI_HEADER_LEN;
					continue; /* the head is longer than the first look */
				}
				break;
			}
		}
		left = deadline - monotonic_ms();
		if (left <= 0) {
			log_warnx("closing a connection: no complete request within --peer-timeout (%zd bytes sent)",
				  n > 0 ? n : 0);
			return -1;
		}
		/* Part of a head is there, so poll() would return at once:
		 * sleep a little (at most 100 ms) before looking again.  Normal
		 * peers send a head in one write and never get here. */
		if (n > 0) {
			poll(NULL, 0, (int)(left < pause_ms ? left : pause_ms));
			if (pause_ms < 100)
				pause_ms *= 2;
		} else if (!wait_readable(fd, (int)left)) {
			if (monotonic_ms() >= deadline)
				continue; /* report the timeout above */
			return -1; /* the daemon is stopping */
		}
	}
}

void serve_connection(int fd, struct worker_buffers *wb)
{
	FCGX_Request fcgx;
	struct timeval tv = { .tv_sec = cfg.peer_timeout_ms / 1000,
			      .tv_usec = (cfg.peer_timeout_ms % 1000) * 1000 };
	bool first = true;

	/* libfcgi's blocking reads of the body give up after --peer-timeout:
	 * a peer that stops mid-record holds this worker for that long at
	 * most. */
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));

	/* listen_sock -1: libfcgi must never accept() itself.  When it hits
	 * a protocol error in FCGX_Accept_r it closes ipcFd and tries to
	 * accept a new connection, which then fails at once. */
	FCGX_InitRequest(&fcgx, -1, 0);
	/* Relies on FCGX_Request.ipcFd: a connection already open is used as
	 * it is (this is how libfcgi itself continues a kept connection). */
	fcgx.ipcFd = fd;
	for (;;) {
		bool keep;
		/* Between requests, a kept connection may idle for
		 * KEEPALIVE_TIMEOUT_MS; the stop of the daemon closes it. */
		if (!first && !wait_readable(fcgx.ipcFd, KEEPALIVE_TIMEOUT_MS))
			break;
		if (await_request_head(fcgx.ipcFd, wb, first) < 0)
			break;
		first = false;
		/* FCGX_Accept_r starts with FCGX_Finish_r, which closes ipcFd
		 * unless keepConnection is set: set it, so that closing stays
		 * ours to decide (relies on FCGX_Request.keepConnection). */
		fcgx.keepConnection = 1;
		if (FCGX_Accept_r(&fcgx) < 0)
			break; /* libfcgi has closed the connection (ipcFd is -1) */
		keep = handle_request(&fcgx, wb);
		/* Free libfcgi's request state without letting it write or
		 * close anything: the response is complete already. */
		FCGX_Free(&fcgx, 0);
		/* Relies on FCGX_Request.keepConnection (FCGI_KEEP_CONN). */
		if (!keep || !fcgx.keepConnection)
			break;
	}
	workers_connection_ending();
	if (fcgx.ipcFd >= 0)
		close(fcgx.ipcFd);
}
