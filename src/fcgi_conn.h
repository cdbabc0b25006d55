/* One FastCGI connection as the daemon holds it: a non-blocking socket, the
 * bytes read from it, the record reader that decodes them, and the bounds
 * on every wait for the peer.  The request being served reads its head
 * and body through it; management records are answered here whenever
 * they come. */
#ifndef FCGIWRAP_FCGI_CONN_H
#define FCGIWRAP_FCGI_CONN_H

#include <stdbool.h>
#include <stddef.h>

#include "fcgi_out.h"
#include "fcgi_reader.h"
#include "relay_ports.h"

struct fcgi_conn {
	int fd;
	unsigned char *in;       /* bytes read from the peer ... */
	size_t in_cap;
	size_t in_pos, in_len;   /* ... in[in_pos..in_len) not decoded yet */
	struct fcgi_reader rd;
	struct peer_wait wait;   /* bounds sends; the request keeps deadline current */
	bool eof;                /* the peer closed its side */
	bool ignored_logged;
	unsigned long long received; /* bytes read since the last request ended */
	size_t body_taken;       /* of rd.body_len body bytes, those passed on */
	bool splice_body;        /* body content goes socket to pipe: read
				  * record headers only (fcgi_conn_splice) */
	bool no_splice;          /* the socket cannot splice */
	const char *why;         /* why the last pump failed */
	char why_buf[160];
};

enum fcgi_conn_status {
	CONN_OK,       /* nothing more now: would block, body buffer full, or
			* an event the caller reads off rd.state */
	CONN_ABORTED,  /* FCGI_ABORT_REQUEST for the active request */
	CONN_CLOSED,   /* the peer closed the connection */
	CONN_FAILED,   /* broken protocol, or a failed read or send: see why */
};

/* Takes fd (connected and non-blocking); in and head are buffers of
 * in_cap and head_cap bytes the connection reads into.  cancel_fd ends
 * every wait when readable. */
void fcgi_conn_init(struct fcgi_conn *c, int fd, unsigned char *in, size_t in_cap, unsigned char *head,
		    size_t head_cap, unsigned max_conns, int peer_timeout_ms, int cancel_fd);

/* Reads what the peer has sent, without waiting, and decodes it: body
 * bytes into rd.body, management records answered.  Stops at the end of a
 * request head, at the end of the body, when rd.body is full, or when
 * nothing more has arrived. */
enum fcgi_conn_status fcgi_conn_pump(struct fcgi_conn *c);

/* Whether the request's body is known to be empty and ended, from what
 * has been read (fcgi_reader_body_ends_empty()).  Only looks: the record
 * is decoded as ever, later. */
bool fcgi_conn_body_known_empty(const struct fcgi_conn *c);

/* While a request is under way: the events to poll the socket for.  Body
 * bytes are read while the body buffer has room; while it is full, more is
 * read into the input buffer as far as it has room, to see an
 * FCGI_ABORT_REQUEST behind the body; after the body, whatever comes. */
short fcgi_conn_poll_events(const struct fcgi_conn *c);

/* Acts on what poll() returned for the socket: fcgi_conn_pump(), the look
 * behind a full body buffer, or the peer's close seen while not reading. */
enum fcgi_conn_status fcgi_conn_service(struct fcgi_conn *c, short revents);

/* Moves body content straight from the socket into pipe_fd (the script's
 * stdin) with splice(2), when the reader stands before it and nothing is
 * buffered: no copy through the daemon.  Returns the bytes moved (> 0), 0
 * when nothing can move now (*pipe_full says whether the pipe or the
 * socket is the reason, -1 with errno (EPIPE: the script closed its
 * stdin; EINVAL: this socket cannot splice), or -2 at the peer's end. */
ssize_t fcgi_conn_splice(struct fcgi_conn *c, int pipe_fd, bool *pipe_full);

/* The active request's body, offered through the interface the relay
 * takes (relay_ports.h), decoded into buf (cap bytes, the caller's). */
struct body_source fcgi_conn_body(struct fcgi_conn *c, char *buf, size_t cap);

/* Waits for the next request's head: the first on a new connection
 * (first), or the next on a kept one, which may idle idle_ms first.  A
 * head must be whole within --peer-timeout of its first byte (of the
 * connection, for the first).  Returns 1 when rd holds a head, 0 when the
 * connection ends quietly (closed between requests, idle, the daemon
 * stopping), -1 after logging why it was given up. */
int fcgi_conn_await_head(struct fcgi_conn *c, bool first, int idle_ms, int stop_fd);

/* Reads and drops the rest of the request body: each wait for the next
 * body bytes lasts up to --peer-timeout (from the call, then from the last
 * byte), none past c->wait.deadline.  Returns 0 once FCGI_STDIN has ended,
 * or -1 with c->why. */
int fcgi_conn_drain_body(struct fcgi_conn *c, char *scratch, size_t size);

/* Sends an FCGI_END_REQUEST for the active request outside any response
 * (an abort before the head ended).  Returns 0 or -1. */
int fcgi_conn_end_request(struct fcgi_conn *c, unsigned char protocol_status);

/* The request has been answered: its id is inactive from now on. */
void fcgi_conn_request_done(struct fcgi_conn *c);

/* Closes the connection.  If the peer has sent bytes not read, reads them
 * first for a moment (at most 100 ms and 64 KiB), so that TCP does not
 * answer the close with a reset that destroys the last records sent. */
void fcgi_conn_close(struct fcgi_conn *c);

#endif
