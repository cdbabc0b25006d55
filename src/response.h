/* What goes back to the web server for a request: the script's output
 * turned into records (its CGI header block checked first), its stderr
 * logged or forwarded, and the daemon's own pages.  It works on a struct
 * of its own and offers the relay an output sink (relay_ports.h). */
#ifndef FCGIWRAP_RESPONSE_H
#define FCGIWRAP_RESPONSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "activity.h"
#include "cgi_header.h"
#include "fcgi_out.h"
#include "relay_ports.h"

enum header_state { HDR_PARSING, HDR_DONE, HDR_FAILED };

/* What a response is made with. */
struct response_setup {
	int fd;                 /* the connection */
	uint16_t id;            /* the request's */
	const struct peer_wait *wait; /* bounds every send */
	uint64_t spool_max;     /* --spool-limit */
	bool stderr_to_fastcgi; /* -f: stderr goes as FCGI_STDERR, not logged */
	char *io;               /* scratch for the spool's replay */
	size_t io_size;
	struct activity *activity; /* on the status page, or NULL */
};

struct response {
	struct fcgi_out out;
	struct cgi_header hdr;
	enum header_state hstate;
	int status;             /* the HTTP status sent, or 0 */
	const char *label;      /* names the request in log lines */
	struct response_setup set;
	char *errline;          /* partial stderr line (without -f) */
	size_t errline_len;
};

/* Prepares a response.  Output is held until response_release(). */
void response_init(struct response *o, const struct response_setup *setup);
void response_free(struct response *o);

/* The name its log lines start with (a string that outlives them). */
void response_name(struct response *o, const char *label);

/* The sink the relay passes the script's output to. */
struct output_sink response_sink(struct response *o);

/* FCGI_STDIN has ended: output held until now goes out.  Returns -1 when
 * it cannot reach the web server. */
int response_release(struct response *o);

/* A whole answer of the daemon's own (body NULL: the status line itself).
 * Returns 0 or -1. */
int response_page(struct response *o, const char *status_line, const char *type, const char *body);

/* Drops what is held: the web server wants no more of it, or the spool
 * failed and a clean error goes instead (forget_error: the spool's
 * failure, which does not stop that error). */
void response_discard(struct response *o, bool forget_error);

/* After a bad header block: what the script wrote to stderr before it
 * ended (stderr_fd, non-blocking) usually says why, so it is passed on. */
void response_drain_stderr(struct response *o, int stderr_fd);

/* Ends the response with FCGI_END_REQUEST.  Returns 0 or -1. */
int response_end(struct response *o, uint32_t app_status);

#endif
