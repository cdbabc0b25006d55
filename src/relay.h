/* The relay: moves a request's body to its script and the script's output
 * on, until the script is done or a limit ends it.  It works on a struct
 * of its own, through the two ports of relay_ports.h, with the limits it
 * is handed: no connection, no response, no global. */
#ifndef FCGIWRAP_RELAY_H
#define FCGIWRAP_RELAY_H

#include <stdbool.h>
#include <stddef.h>

#include "activity.h"
#include "relay_ports.h"
#include "request_end.h"

/* The bounds of one request's relay, in monotonic ms (0: none). */
struct relay_limits {
	long long start_ms;    /* when the request began */
	long long deadline;    /* -t */
	int inactivity_ms;     /* --inactivity-timeout */
	int peer_timeout_ms;   /* --peer-timeout: body bytes awaited */
	int slow_ms;           /* --slow-log */
	int start_window_ms;   /* a script counts as starting until its first
				* output, its exit, or this long, or until it
				* is seen waiting (a look every
				* start_check_ms) */
	int start_check_ms;
	int kill_fd;           /* readable: the daemon stops its requests */
};

/* The script's ends (its pipes, non-blocking); the relay closes stdin
 * once the body has gone, stdout and stderr at their end.  exited(ctx,
 * fd) says, without waiting, whether the script has exited; if not, *fd
 * is an fd readable once it has (its pidfd), or -1.  The relay asks once
 * the script's output has ended. */
struct relay_script {
	int *stdin_fd, *stdout_fd, *stderr_fd;
	bool (*exited)(void *ctx, int *fd);
	void *ctx;
};

/* What a relay is given when its request begins. */
struct relay_setup {
	struct body_source body;
	struct output_sink out;
	struct relay_limits lim;
	char *io;               /* a buffer for the script's output */
	size_t io_size;
	struct activity *activity; /* on the status page, or NULL */
	void (*note_slow)(void *ctx); /* past --slow-log, once */
	void (*started)(void *ctx, bool waits); /* the script has started (see
				       * start_window_ms), once (waits: without
				       * output yet); or NULL */
	void (*still_waiting)(void *ctx); /* after started(ctx, true): the
				       * body has ended since, and the script
				       * still waits without output; or NULL */
	bool (*on_cpu)(void *ctx);    /* whether the script is on a CPU now */
	void *ctx;
};

struct relay {
	struct relay_setup set;
	struct relay_script script;
	bool stdin_ended;       /* FCGI_STDIN has ended */
	bool pipe_full;         /* the script's stdin pipe took no more */
	bool exited;            /* the script has exited */
	int exit_fd;            /* readable once it has (relay_script), or -1 */
	bool slow_noted;
	bool start_noted;
	bool waiting;           /* seen waiting, and no output or exit since */
	long long script_start; /* when relay_run() began */
	long long start_check;  /* the next look at whether it waits */
	unsigned long long bytes_in; /* request body bytes read */
	long long last_activity; /* last byte to or from the script */
	long long body_wait_since; /* since when the script waits on the peer */
	long long output_ended_at; /* its stdout and stderr ended, it runs on */
};

/* Prepares the relay of a request that has just begun (its body is read
 * while it waits for a script slot). */
void relay_init(struct relay *rl, const struct relay_setup *setup);

/* Runs the relay for a request whose script has started.  Returns how the
 * request ended (END_COMPLETE: the script exited, its output ended, and
 * the body has been read, or its header block was bad), with *why for the
 * log line otherwise. */
enum request_end relay_run(struct relay *rl, const struct relay_script *script, const char **why);

/* Reads what the web server sent (revents from poll() on body.fd, or
 * POLLIN to read without a poll), and once the body has ended lets held
 * output go.  Returns 0, or -1 with how the request must end.  Also used
 * while the request waits for a script slot. */
int relay_read_peer(struct relay *rl, short revents, enum request_end *end, const char **why);

#endif
