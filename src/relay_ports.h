/* The relay's two sides, as small interfaces: where the request body
 * comes from (the connection, fcgi_conn.c) and where the script's output
 * goes (the response, response.c).  The relay knows neither module, and
 * a test can stand in for both. */
#ifndef FCGIWRAP_RELAY_PORTS_H
#define FCGIWRAP_RELAY_PORTS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

enum body_status {
	BODY_OK,      /* nothing wrong (nothing more now, or more read) */
	BODY_ABORTED, /* the web server aborted the request */
	BODY_CLOSED,  /* it closed the connection */
	BODY_FAILED,  /* the connection failed: see *why */
};

struct body_source_ops {
	/* The events to poll fd for now; 0: none. */
	short (*poll_events)(void *ctx);
	/* Reads what the web server sent (revents from poll(), or POLLIN
	 * to read without one): body bytes into the buffer; *got says how
	 * many came. */
	enum body_status (*read)(void *ctx, short revents, size_t *got, const char **why);
	/* The body bytes read and not taken yet; *full when no more fit. */
	size_t (*pending)(void *ctx, const char **data, bool *full);
	/* n of the pending bytes have been passed on. */
	void (*taken)(void *ctx, size_t n);
	/* Whether the body has ended (FCGI_STDIN's empty record read). */
	bool (*ended)(void *ctx);
	/* While on, body content may be moved socket to pipe by splice():
	 * returns the bytes moved (> 0), 0 when none can move now
	 * (*pipe_full: the pipe is why), -1 with errno, -2 at the peer's
	 * end. */
	void (*set_splice)(void *ctx, bool on);
	ssize_t (*splice)(void *ctx, int pipe_fd, bool *pipe_full);
	/* Sends to the web server may wait until deadline at most (0:
	 * --peer-timeout alone bounds them). */
	void (*bound_sends)(void *ctx, long long deadline);
};

struct body_source {
	int fd; /* what poll_events() is for */
	void *ctx;
	const struct body_source_ops *ops;
};

/* What output handlers return. */
enum output_status {
	OUTPUT_OK,
	OUTPUT_BAD_HEADER, /* the script broke the CGI header rules: it is
			    * ended, and answered with a 502 */
	OUTPUT_FAILED,     /* the output cannot go on (the peer, the spool) */
};

struct output_sink_ops {
	enum output_status (*stdout_data)(void *ctx, const char *data, size_t len);
	enum output_status (*stderr_data)(void *ctx, const char *data, size_t len);
	enum output_status (*stdout_ended)(void *ctx);
	enum output_status (*stderr_ended)(void *ctx);
	/* The body has ended: output held until now goes out. */
	enum output_status (*body_ended)(void *ctx);
};

struct output_sink {
	void *ctx;
	const struct output_sink_ops *ops;
};

#endif
