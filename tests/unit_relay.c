/* Unit tests of the relay and the response, built without a daemon: the
 * relay runs real shell scripts between a body source and an output sink
 * that stand in for the connection and the response; the response writes
 * its records into a socketpair read back here.
 * Prints one line per failure and a closing "N passed, N failed". */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/pidfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fastcgi.h>

#include "../src/clock.h"
#include "../src/relay.h"
#include "../src/response.h"
#include "unit.h"

/* ---- a script, started as the daemon starts one ---- */

struct child {
	pid_t pid;
	int in, out, err, pidfd; /* pidfd: -1 until the relay asks */
	int exit_asks;           /* times the relay asked whether it exited */
};

static int nonblocking(int fd)
{
	return fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

/* Starts /bin/sh -c cmd with three pipes, our ends non-blocking. */
static int child_start(struct child *c, const char *cmd)
{
	int in[2], out[2], err[2];

	if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0)
		return -1;
	c->pid = fork();
	if (c->pid < 0)
		return -1;
	if (c->pid == 0) {
		dup2(in[0], 0);
		dup2(out[1], 1);
		dup2(err[1], 2);
		signal(SIGPIPE, SIG_DFL);
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	close(err[1]);
	c->in = in[1];
	c->out = out[0];
	c->err = err[0];
	nonblocking(c->in);
	nonblocking(c->out);
	nonblocking(c->err);
	return 0;
}

/* The relay's look at the child's exit, as the daemon's: a waitid() that
 * keeps the zombie, and a pidfd opened only if it still runs. */
static bool child_exited(void *ctx, int *fd)
{
	struct child *c = ctx;
	siginfo_t si = { 0 };

	c->exit_asks++;
	if (waitid(P_PID, (id_t)c->pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid == c->pid)
		return true;
	if (c->pidfd < 0)
		c->pidfd = pidfd_open(c->pid, 0);
	*fd = c->pidfd;
	return false;
}

/* Ends it (if it still runs) and reaps it; its exit status. */
static int child_end(struct child *c)
{
	int st = -1;

	kill(c->pid, SIGKILL);
	waitpid(c->pid, &st, 0);
	for (int *fd = &c->in; fd <= &c->pidfd; fd++)
		if (*fd >= 0)
			close(*fd);
	return st;
}

/* ---- the connection's stand-in: a body in pieces ---- */

struct fake_body {
	const char *data;   /* the whole body */
	size_t len, piece;  /* handed over piece bytes per read */
	size_t delivered;
	char buf[256];      /* the body buffer, small to be filled */
	size_t buf_len, taken;
	bool never_ends;    /* the peer sends nothing more, ever */
	enum body_status fail; /* what read() says from the first read */
	int efd;            /* always readable: a peer with more to send */
	int reads, splice_offs;
};

static short fb_poll_events(void *ctx)
{
	struct fake_body *b = ctx;

	return b->never_ends || (b->delivered == b->len && b->fail == BODY_OK) ? 0 : POLLIN;
}

static enum body_status fb_read(void *ctx, short revents, size_t *got, const char **why)
{
	struct fake_body *b = ctx;
	size_t n = b->len - b->delivered;

	(void)revents;
	b->reads++;
	if (b->fail != BODY_OK) {
		*why = "the fake peer failed";
		return b->fail;
	}
	if (b->never_ends)
		return BODY_OK;
	if (n > b->piece)
		n = b->piece;
	if (n > sizeof(b->buf) - b->buf_len)
		n = sizeof(b->buf) - b->buf_len;
	memcpy(b->buf + b->buf_len, b->data + b->delivered, n);
	b->buf_len += n;
	b->delivered += n;
	*got = n;
	return BODY_OK;
}

static size_t fb_pending(void *ctx, const char **data, bool *full)
{
	struct fake_body *b = ctx;

	*data = b->buf + b->taken;
	*full = b->buf_len >= sizeof(b->buf);
	return b->buf_len - b->taken;
}

static void fb_taken(void *ctx, size_t n)
{
	struct fake_body *b = ctx;

	b->taken += n;
	if (b->taken >= b->buf_len)
		b->taken = b->buf_len = 0;
}

static bool fb_ended(void *ctx)
{
	struct fake_body *b = ctx;

	return !b->never_ends && b->delivered == b->len;
}

static void fb_set_splice(void *ctx, bool on)
{
	struct fake_body *b = ctx;

	b->splice_offs += !on;
}

static ssize_t fb_splice(void *ctx, int pipe_fd, bool *pipe_full)
{
	(void)ctx;
	(void)pipe_fd;
	*pipe_full = false;
	errno = EINVAL; /* as a socket that cannot splice */
	return -1;
}

static void fb_bound_sends(void *ctx, long long deadline)
{
	(void)ctx;
	(void)deadline;
}

static const struct body_source_ops fake_body_ops = { fb_poll_events, fb_read,	     fb_pending,     fb_taken,
						      fb_ended,	      fb_set_splice, fb_splice, fb_bound_sends };

/* ---- the response's stand-in: what the script wrote ---- */

struct fake_sink {
	char out[1 << 16], err[4096];
	size_t out_len, err_len;
	bool body_ended, out_ended, err_ended;
	bool out_before_body_end; /* stdout data came before body_ended() */
	enum output_status verdict; /* what stdout_data() answers */
};

static void append(char *buf, size_t cap, size_t *len, const char *data, size_t n)
{
	if (n > cap - *len)
		n = cap - *len;
	memcpy(buf + *len, data, n);
	*len += n;
}

static enum output_status fs_stdout(void *ctx, const char *data, size_t len)
{
	struct fake_sink *s = ctx;

	s->out_before_body_end |= !s->body_ended;
	append(s->out, sizeof(s->out), &s->out_len, data, len);
	return s->verdict;
}

static enum output_status fs_stderr(void *ctx, const char *data, size_t len)
{
	struct fake_sink *s = ctx;

	append(s->err, sizeof(s->err), &s->err_len, data, len);
	return OUTPUT_OK;
}

static enum output_status fs_stdout_ended(void *ctx)
{
	((struct fake_sink *)ctx)->out_ended = true;
	return OUTPUT_OK;
}

static enum output_status fs_stderr_ended(void *ctx)
{
	((struct fake_sink *)ctx)->err_ended = true;
	return OUTPUT_OK;
}

static enum output_status fs_body_ended(void *ctx)
{
	((struct fake_sink *)ctx)->body_ended = true;
	return OUTPUT_OK;
}

static const struct output_sink_ops fake_sink_ops = { fs_stdout, fs_stderr, fs_stdout_ended, fs_stderr_ended,
						      fs_body_ended };

static int slow_notes, starts;
static long long started_at;
static bool started_waiting, fake_on_cpu;

static void count_slow(void *ctx)
{
	(void)ctx;
	slow_notes++;
}

static void note_start(void *ctx, bool waits)
{
	(void)ctx;
	if (!starts++) {
		started_at = monotonic_ms();
		started_waiting = waits;
	}
}

static bool on_cpu(void *ctx)
{
	(void)ctx;
	return fake_on_cpu;
}

/* One relay's stand-ins, and what it came to. */
struct trial {
	struct fake_body b;
	struct fake_sink s;
	struct relay rl;   /* as it ended */
	const char *why;
	long long ms;      /* how long it took */
	int exit_asks;     /* times the relay asked whether the script exited */
	bool exit_fd_opened; /* and was given its pidfd to watch */
};

/* One relay: cmd run with t's body and sink, within lim (start_ms set
 * here).  Returns its end. */
static enum request_end relay_once(const char *cmd, struct trial *t, struct relay_limits lim)
{
	struct fake_body *b = &t->b;
	static char io[4096];
	struct child c = { .pid = -1, .in = -1, .out = -1, .err = -1, .pidfd = -1 };
	struct relay_setup set;
	struct relay_script script;
	enum request_end end;
	long long t0;

	b->efd = eventfd(1, EFD_CLOEXEC);
	if (!b->piece)
		b->piece = 100;
	lim.start_ms = t0 = monotonic_ms();
	/* A relay that hangs fails its test instead of the run. */
	if (!lim.deadline)
		lim.deadline = t0 + 10000;
	if (!lim.peer_timeout_ms)
		lim.peer_timeout_ms = 10000;
	if (!lim.start_window_ms)
		lim.start_window_ms = 10000;
	if (!lim.start_check_ms)
		lim.start_check_ms = 10000;
	starts = 0;
	set = (struct relay_setup){ .body = { .fd = b->efd, .ctx = b, .ops = &fake_body_ops },
				    .out = { .ctx = &t->s, .ops = &fake_sink_ops },
				    .lim = lim,
				    .io = io,
				    .io_size = sizeof(io),
				    .note_slow = count_slow,
				    .started = note_start,
				    .on_cpu = on_cpu };
	t->why = NULL;
	relay_init(&t->rl, &set);
	if (child_start(&c, cmd) < 0) {
		CHECK(0, "cannot start %s", cmd);
		return END_PEER_GONE;
	}
	script = (struct relay_script){ .stdin_fd = &c.in, .stdout_fd = &c.out, .stderr_fd = &c.err,
					.exited = child_exited, .ctx = &c };
	end = relay_run(&t->rl, &script, &t->why);
	t->ms = monotonic_ms() - t0;
	t->exit_asks = c.exit_asks;
	t->exit_fd_opened = c.pidfd >= 0;
	child_end(&c);
	close(b->efd);
	return end;
}

/* The body goes to the script in pieces through a buffer smaller than
 * it, the output to the sink, and the request ends when the script has
 * exited, its output ended and the body been read. */
static void test_relay_passes_through(void)
{
	static char body[5000];
	struct trial t = { .b = { .data = body, .len = sizeof(body), .piece = 300 }, .s = { .verdict = OUTPUT_OK } };

	for (size_t i = 0; i < sizeof(body); i++)
		body[i] = (char)('a' + i % 26);
	CHECK(relay_once("cat; echo oops >&2", &t, (struct relay_limits){ .kill_fd = -1 }) ==
		      END_COMPLETE,
	      "cat did not complete: %s", t.why ? t.why : "");
	CHECK(t.s.out_len == sizeof(body) && memcmp(t.s.out, body, sizeof(body)) == 0, "cat's output differs (%zu bytes)",
	      t.s.out_len);
	CHECK(t.s.err_len == 5 && memcmp(t.s.err, "oops\n", 5) == 0 && t.s.err_ended && t.s.out_ended,
	      "stderr not passed on or not ended");
	CHECK(t.rl.bytes_in == sizeof(body) && t.rl.stdin_ended && t.s.body_ended, "body counted %llu, ended %d",
	      t.rl.bytes_in, t.rl.stdin_ended);
	CHECK(t.b.splice_offs > 0, "splice never turned off after the relay");
}

/* A script that closes its stdin at once: the rest of the body is read
 * and dropped, never a hang on a full pipe. */
static void test_relay_script_ignores_body(void)
{
	static char body[200000];
	struct trial t = { .b = { .data = body, .len = sizeof(body), .piece = 256 }, .s = { .verdict = OUTPUT_OK } };

	CHECK(relay_once("exec 0<&-; echo done", &t, (struct relay_limits){ .kill_fd = -1, .deadline = 0 }) == END_COMPLETE,
	      "a script that closed its stdin did not complete: %s", t.why ? t.why : "");
	CHECK(t.rl.bytes_in == sizeof(body) && t.s.out_len == 5, "body %llu bytes, output %zu", t.rl.bytes_in, t.s.out_len);
}

/* Each limit ends the relay with its own end and reason, in time. */
static void test_relay_limits(void)
{
	struct trial t = { .b = { .data = "", .len = 0 }, .s = { .verdict = OUTPUT_OK } };
	int efd = eventfd(1, EFD_CLOEXEC);

	CHECK(relay_once("sleep 10", &t, (struct relay_limits){ .kill_fd = -1, .deadline = monotonic_ms() + 200 }) ==
			      END_TIMED_OUT &&
		      t.why && strcmp(t.why, "timed out (-t)") == 0 && t.ms < 5000,
	      "-t: %s after %lld ms", t.why ? t.why : "no end", t.ms);

	t.b = (struct fake_body){ .data = "", .len = 0 };
	CHECK(relay_once("sleep 10", &t, (struct relay_limits){ .kill_fd = -1, .inactivity_ms = 200 }) == END_TIMED_OUT &&
		      t.why && strstr(t.why, "--inactivity-timeout") && t.ms < 5000,
	      "--inactivity-timeout: %s after %lld ms", t.why ? t.why : "no end", t.ms);

	t.b = (struct fake_body){ .data = "", .len = 0, .never_ends = true };
	CHECK(relay_once("cat", &t, (struct relay_limits){ .kill_fd = -1, .peer_timeout_ms = 200 }) == END_PEER_GONE &&
		      t.why && strstr(t.why, "--peer-timeout") && t.ms < 5000,
	      "--peer-timeout: %s after %lld ms", t.why ? t.why : "no end", t.ms);

	t.b = (struct fake_body){ .data = "", .len = 0 };
	CHECK(relay_once("sleep 10", &t, (struct relay_limits){ .kill_fd = efd }) == END_STOPPING &&
		      t.ms < 5000,
	      "the daemon's stop: %s after %lld ms", t.why ? t.why : "no end", t.ms);
	close(efd);

	slow_notes = 0;
	t.b = (struct fake_body){ .data = "", .len = 0 };
	CHECK(relay_once("sleep 0.4", &t, (struct relay_limits){ .kill_fd = -1, .slow_ms = 100 }) ==
			      END_COMPLETE &&
		      slow_notes == 1,
	      "--slow-log: noted %d times", slow_notes);
}

/* What the peer and the sink say ends the relay: an abort, a close, a bad
 * header block (at once, though the script runs on), a failed output. */
static void test_relay_ends(void)
{
	struct trial t = { .b = { .data = "x", .len = 1, .fail = BODY_ABORTED }, .s = { .verdict = OUTPUT_OK } };

	CHECK(relay_once("sleep 10", &t, (struct relay_limits){ .kill_fd = -1 }) == END_ABORTED,
	      "an abort did not end the relay");
	t.b = (struct fake_body){ .data = "x", .len = 1, .fail = BODY_CLOSED };
	CHECK(relay_once("sleep 10", &t, (struct relay_limits){ .kill_fd = -1 }) == END_PEER_GONE &&
		      t.why && strstr(t.why, "during the body"),
	      "a close during the body: %s", t.why ? t.why : "no reason");
	t.b = (struct fake_body){ .data = "", .len = 0 };
	t.s = (struct fake_sink){ .verdict = OUTPUT_BAD_HEADER };
	CHECK(relay_once("echo bad; sleep 10", &t, (struct relay_limits){ .kill_fd = -1 }) ==
			      END_COMPLETE &&
		      t.ms < 5000,
	      "a bad header block did not end the relay at once (%lld ms)", t.ms);
	t.b = (struct fake_body){ .data = "", .len = 0 };
	t.s = (struct fake_sink){ .verdict = OUTPUT_FAILED };
	CHECK(relay_once("echo x; sleep 10", &t, (struct relay_limits){ .kill_fd = -1 }) ==
			      END_OUTPUT_FAILED &&
		      t.ms < 5000,
	      "a failed output did not end the relay");
}

/* A script that ends its output and runs on: its exit, watched from
 * then on through the fd the relay was given, ends the request, not the
 * EXIT_AFTER_EOF_MS (500 ms) it would otherwise wait for. */
static void test_relay_exit_after_output(void)
{
	struct trial t = { .b = { .data = "", .len = 0 }, .s = { .verdict = OUTPUT_OK } };

	CHECK(relay_once("echo x; exec >&- 2>&-; sleep 0.1", &t, (struct relay_limits){ .kill_fd = -1 }) ==
			      END_COMPLETE &&
		      t.rl.exited && t.exit_fd_opened && t.exit_asks >= 1 && t.ms < 450,
	      "exited %d, fd opened %d, asked %d times, %lld ms", t.rl.exited, t.exit_fd_opened, t.exit_asks, t.ms);
}

/* A body that comes a byte at a time is read on until it has ended, and
 * the sink is told so (holding output until then is the sink's job). */
static void test_relay_body_end_reported(void)
{
	struct trial t = { .b = { .data = "abc", .len = 3, .piece = 1 }, .s = { .verdict = OUTPUT_OK } };

	CHECK(relay_once("cat", &t, (struct relay_limits){ .kill_fd = -1 }) == END_COMPLETE &&
		      t.s.body_ended && t.s.out_len == 3 && t.b.reads >= 3,
	      "body_ended %d, %zu bytes out, %d reads", t.s.body_ended, t.s.out_len, t.b.reads);
}

/* A script counts as starting until its first output, its exit, or its
 * start window, whichever comes first, and is told so once. */
static void test_relay_start_window(void)
{
	struct trial t = { .b = { .data = "", .len = 0 }, .s = { .verdict = OUTPUT_OK } };
	long long t0 = monotonic_ms();

	CHECK(relay_once("echo x; sleep 0.5", &t, (struct relay_limits){ .kill_fd = -1 }) ==
			      END_COMPLETE &&
		      starts == 1 && started_at - t0 < 400,
	      "first output: started %d times, after %lld ms", starts, started_at - t0);
	t.b = (struct fake_body){ .data = "", .len = 0 };
	t0 = monotonic_ms();
	CHECK(relay_once("exit 0", &t, (struct relay_limits){ .kill_fd = -1 }) == END_COMPLETE &&
		      starts == 1 && started_at - t0 < 5000,
	      "exit: started %d times", starts);
	t.b = (struct fake_body){ .data = "", .len = 0 };
	t0 = monotonic_ms();
	fake_on_cpu = true;
	CHECK(relay_once("sleep 0.6; echo x", &t,
			 (struct relay_limits){ .kill_fd = -1, .start_window_ms = 100, .start_check_ms = 20 }) ==
			      END_COMPLETE &&
		      starts == 1 && started_waiting && started_at - t0 >= 100 && started_at - t0 < 550,
	      "window: started %d times, after %lld ms", starts, started_at - t0);
	/* Seen waiting at the first look. */
	t.b = (struct fake_body){ .data = "", .len = 0 };
	t0 = monotonic_ms();
	fake_on_cpu = false;
	CHECK(relay_once("sleep 0.6; echo x", &t,
			 (struct relay_limits){ .kill_fd = -1, .start_window_ms = 5000, .start_check_ms = 20 }) ==
			      END_COMPLETE &&
		      starts == 1 && started_waiting && started_at - t0 >= 20 && started_at - t0 < 550,
	      "seen waiting: started %d times, after %lld ms", starts, started_at - t0);
}

/* ---- the response, into a socketpair ---- */

struct wire {
	unsigned char buf[1 << 16];
	size_t len;
};

/* Reads what is in the socket now. */
static void wire_read(int fd, struct wire *w)
{
	ssize_t n;

	while ((n = recv(fd, w->buf + w->len, sizeof(w->buf) - w->len, MSG_DONTWAIT)) > 0)
		w->len += (size_t)n;
}

/* The payload of the records of type in w, joined; the records' count. */
static int wire_stream(const struct wire *w, int type, char *out, size_t cap, size_t *out_len)
{
	size_t pos = 0;
	int records = 0;

	*out_len = 0;
	while (pos + FCGI_HEADER_LEN <= w->len) {
		const FCGI_Header *h = (const FCGI_Header *)(w->buf + pos);
		size_t len = (size_t)h->contentLengthB1 << 8 | h->contentLengthB0;
		if (h->type == type) {
			records++;
			if (*out_len + len <= cap) {
				memcpy(out + *out_len, w->buf + pos + FCGI_HEADER_LEN, len);
				*out_len += len;
			}
		}
		pos += FCGI_HEADER_LEN + len + h->paddingLength;
	}
	return records;
}

static char response_io[4096];

/* A response writing into one end of a socketpair, the test reading the
 * other: the web server's side. */
struct response_rig {
	int sv[2];
	struct peer_wait pw;
	struct response o;
	struct output_sink sink;
	struct wire w;
	char got[4096];
	size_t got_len;
};

static int rig_open(struct response_rig *t, uint64_t spool_max, bool stderr_fcgi)
{
	memset(t, 0, sizeof(*t));
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, t->sv) < 0) {
		CHECK(0, "socketpair");
		return -1;
	}
	t->pw = (struct peer_wait){ .progress_ms = 5000, .deadline = 0, .cancel_fd = -1 };
	response_init(&t->o, &(struct response_setup){ .fd = t->sv[0], .id = 1, .wait = &t->pw,
						       .spool_max = spool_max, .stderr_to_fastcgi = stderr_fcgi,
						       .io = response_io, .io_size = sizeof(response_io) });
	t->sink = response_sink(&t->o);
	return 0;
}

/* What came on the wire so far, as the payload of the records of type
 * (in t->got, NUL-terminated); the records' count. */
static int rig_stream(struct response_rig *t, int type)
{
	int n;

	wire_read(t->sv[1], &t->w);
	n = wire_stream(&t->w, type, t->got, sizeof(t->got) - 1, &t->got_len);
	t->got[t->got_len] = '\0';
	return n;
}

static void rig_close(struct response_rig *t)
{
	response_free(&t->o);
	close(t->sv[0]);
	close(t->sv[1]);
}

static enum output_status feed(struct response_rig *t, const char *data, size_t len)
{
	return t->sink.ops->stdout_data(t->sink.ctx, data, len);
}

/* The header block is checked whole, nothing goes out before the body has
 * ended, and then the CGI header as HTTP status, the body, stderr as
 * FCGI_STDERR (-f), END_REQUEST with the exit code. */
static void test_response_held_then_sent(void)
{
	static const char script_out[] = "Status: 404 Not Found\r\nContent-Type: text/plain\r\n\r\nnot here";
	struct response_rig t;

	if (rig_open(&t, 0, true) < 0)
		return;
	CHECK(feed(&t, script_out, 10) == OUTPUT_OK && t.o.hstate == HDR_PARSING, "half a header block");
	CHECK(feed(&t, script_out + 10, sizeof(script_out) - 11) == OUTPUT_OK && t.o.hstate == HDR_DONE &&
		      t.o.status == 404,
	      "the header block: state %d, status %d", t.o.hstate, t.o.status);
	CHECK(t.sink.ops->stderr_data(t.sink.ctx, "warn\n", 5) == OUTPUT_OK, "stderr");
	rig_stream(&t, FCGI_STDOUT);
	CHECK(t.w.len == 0, "%zu bytes sent before the body ended", t.w.len);
	CHECK(t.sink.ops->body_ended(t.sink.ctx) == OUTPUT_OK && response_end(&t.o, 3) == 0, "release and end");
	rig_stream(&t, FCGI_STDOUT);
	CHECK(strncmp(t.got, "Status: 404 Not Found\r\n", 23) == 0 && strstr(t.got, "\r\n\r\nnot here"),
	      "stdout on the wire: %s", t.got);
	CHECK(rig_stream(&t, FCGI_STDERR) == 2 && t.got_len == 5, "FCGI_STDERR: the line and the empty record");
	CHECK(rig_stream(&t, FCGI_END_REQUEST) == 1 && t.got_len == 8 && t.got[3] == 3, "END_REQUEST with appStatus 3");
	rig_close(&t);
}

/* A header block that breaks the rules, or stdout ending before one
 * did, is a bad header: nothing of it is sent, the daemon's 502 is. */
static void test_response_bad_header(void)
{
	struct response_rig t;

	if (rig_open(&t, 0, false) < 0)
		return;
	CHECK(feed(&t, "no colon here\r\n\r\n", 17) == OUTPUT_BAD_HEADER && t.o.hstate == HDR_FAILED,
	      "a line without a colon passed as a header");
	CHECK(response_release(&t.o) == 0 && response_page(&t.o, "502 Bad Gateway", "text/plain", NULL) == 0 &&
		      t.o.status == 502,
	      "the 502");
	rig_stream(&t, FCGI_STDOUT);
	CHECK(strstr(t.got, "502 Bad Gateway") && !strstr(t.got, "no colon"), "on the wire: %s", t.got);
	rig_close(&t);

	if (rig_open(&t, 0, false) < 0)
		return;
	CHECK(feed(&t, "Content-Type: text/plain\r\n", 26) == OUTPUT_OK &&
		      t.sink.ops->stdout_ended(t.sink.ctx) == OUTPUT_BAD_HEADER,
	      "stdout ended inside the header block, and it passed");
	rig_close(&t);
}

/* Output held past --spool-limit fails the output, as the spool's
 * failure (EFBIG), which the request answers with a 502. */
static void test_response_spool_limit(void)
{
	static char big[20000];
	struct response_rig t;

	if (rig_open(&t, 8192, false) < 0)
		return;
	memset(big, 'x', sizeof(big));
	CHECK(feed(&t, "Content-Type: text/plain\r\n\r\n", 28) == OUTPUT_OK, "the header");
	CHECK(feed(&t, big, sizeof(big)) == OUTPUT_FAILED && t.o.out.spool_error == EFBIG,
	      "past --spool-limit: spool error %d", t.o.out.spool_error);
	response_discard(&t.o, true);
	CHECK(t.o.out.error == 0 && t.o.out.spool_error == 0, "the spool's failure not forgotten");
	rig_close(&t);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	test_relay_passes_through();
	test_relay_script_ignores_body();
	test_relay_exit_after_output();
	test_relay_limits();
	test_relay_ends();
	test_relay_body_end_reported();
	test_relay_start_window();
	test_response_held_then_sent();
	test_response_bad_header();
	test_response_spool_limit();
	printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
