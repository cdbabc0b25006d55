/* The FastCGI record reader: bytes from the web server in, protocol events
 * out.  Pure: no I/O, no allocation, every length checked against a limit
 * before it is believed.
 *
 * The caller reads the socket into a buffer of its own and hands the bytes
 * to fcgi_reader_run() in any pieces; the reader keeps its place between
 * calls (a record may arrive one byte at a time).  It serves one request
 * at a time, as nginx and every other FastCGI client use a connection:
 *  - management records (request id 0) are answered at any moment:
 *    FCGI_GET_VALUES with one bounded FCGI_GET_VALUES_RESULT, any other
 *    type with FCGI_UNKNOWN_TYPE;
 *  - FCGI_BEGIN_REQUEST of another id while a request is active gets
 *    FCGI_END_REQUEST with FCGI_CANT_MPX_CONN;
 *  - other records of an id that is not active are ignored, as the
 *    specification asks (section 3.3), and counted;
 *  - the active request's PARAMS stream is gathered into the head buffer
 *    (at most head_cap bytes), its FCGI_STDIN content is copied into the
 *    body buffer, the caller's only copy of it. */
#ifndef FCGIWRAP_FCGI_READER_H
#define FCGIWRAP_FCGI_READER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The largest reply the reader produces (a GET_VALUES_RESULT naming the
 * three variables the specification defines, with their values). */
#define FCGI_REPLY_MAX 128

enum fcgi_reader_state {
	FCGI_READER_IDLE,   /* no request active: waiting for FCGI_BEGIN_REQUEST */
	FCGI_READER_PARAMS, /* FCGI_BEGIN_REQUEST read; FCGI_PARAMS streaming */
	FCGI_READER_BODY,   /* head complete; FCGI_STDIN streaming */
	FCGI_READER_ENDED,  /* FCGI_STDIN has ended; the response is under way */
};

enum fcgi_event {
	FCGI_EV_MORE,      /* every byte given was used: read more */
	FCGI_EV_REPLY,     /* reply[] holds a record to send: send it, then
			    * call fcgi_reader_reply_sent() */
	FCGI_EV_HEAD,      /* a request's head is complete: id, role,
			    * keep_conn, head[0..head_len) */
	FCGI_EV_BODY_FULL, /* the body buffer is full: empty it, call again */
	FCGI_EV_BODY_END,  /* FCGI_STDIN has ended */
	FCGI_EV_ABORT,     /* FCGI_ABORT_REQUEST for the active request */
	FCGI_EV_ERROR,     /* the peer broke the protocol: error says how;
			    * nothing more is read */
};

/* What the content of the record being read is for. */
enum fcgi_record_use {
	FCGI_USE_SKIP,       /* ignored, or only its end matters */
	FCGI_USE_BEGIN,      /* FCGI_BEGIN_REQUEST starting a request */
	FCGI_USE_BEGIN_MPX,  /* FCGI_BEGIN_REQUEST while another is active */
	FCGI_USE_PARAMS,
	FCGI_USE_STDIN,
	FCGI_USE_ABORT,
	FCGI_USE_GET_VALUES,
	FCGI_USE_UNKNOWN_MGMT,
};

/* A name-value pair scanner for FCGI_GET_VALUES, which reads the names
 * as they stream by without holding the record. */
struct fcgi_nv_scan {
	int phase;             /* 0, 1: name length, value length; 2, 3: name, value */
	unsigned char len[4];
	int len_have;
	uint32_t name_len, value_len, have;
	char name[16];         /* the longest name the specification defines is 15 */
};

struct fcgi_reader {
	/* Set by the caller. */
	unsigned max_conns;     /* FCGI_MAX_CONNS and FCGI_MAX_REQS in replies */
	unsigned char *head;    /* where the PARAMS stream is gathered */
	size_t head_cap;
	unsigned char *body;    /* where FCGI_STDIN content goes; the caller
				 * empties it by setting body_len to 0 */
	size_t body_cap, body_len;

	/* The request. */
	enum fcgi_reader_state state;
	uint16_t id;
	uint16_t role;
	bool keep_conn;
	size_t head_len;

	/* The record being read. */
	unsigned char hdr[8];
	size_t hdr_have;
	bool in_record;         /* header read; content and padding under way */
	unsigned type;
	uint16_t rec_id;
	size_t content_len, content_left, padding_left;
	enum fcgi_record_use use;
	unsigned char begin[8]; /* an FCGI_BEGIN_REQUEST body */
	struct fcgi_nv_scan gv;
	unsigned gv_asked;      /* GET_VALUES names seen, a bit each */

	unsigned char reply[FCGI_REPLY_MAX];
	size_t reply_len;

	unsigned long long ignored; /* records of ids not active */
	uint16_t ignored_id;        /* the first of them */
	unsigned ignored_type;
	const char *error;
	char error_buf[128];
};

/* Prepares rd for a new connection.  head and body are set by the caller
 * (body may change between calls). */
void fcgi_reader_init(struct fcgi_reader *rd, unsigned max_conns, unsigned char *head, size_t head_cap);

/* Reads as much of in[0..len) as it can.  Returns the bytes used and sets
 * *ev to why it stopped; bytes not used must be given again. */
size_t fcgi_reader_run(struct fcgi_reader *rd, const unsigned char *in, size_t len, enum fcgi_event *ev);

/* The reply in reply[] has been sent. */
void fcgi_reader_reply_sent(struct fcgi_reader *rd);

/* The active request has ended (its FCGI_END_REQUEST was sent): its id is
 * inactive from now on, and the body buffer is forgotten. */
void fcgi_reader_request_done(struct fcgi_reader *rd);

/* Content bytes of the active request's FCGI_STDIN record that the reader
 * stands before: the caller may move up to this many straight from the
 * socket to the script (splice), then report them with
 * fcgi_reader_body_moved().  0 when the next bytes are anything else. */
size_t fcgi_reader_body_pending(const struct fcgi_reader *rd);
void fcgi_reader_body_moved(struct fcgi_reader *rd, size_t n);

/* How many bytes the reader needs before the next record's content
 * starts (the rest of a header, and the padding before it); 0 inside
 * content.  Reading no more than that leaves the content in the socket. */
size_t fcgi_reader_header_need(const struct fcgi_reader *rd);

/* Whether an FCGI_ABORT_REQUEST for the active request lies whole in
 * in[0..len), the bytes that follow those fcgi_reader_run() has used.
 * Lets the caller see an abort behind body bytes it cannot take yet. */
bool fcgi_reader_abort_ahead(const struct fcgi_reader *rd, const unsigned char *in, size_t len);

/* Whether the active request's body is known to be empty and ended: its
 * FCGI_STDIN has ended with no content, or the empty end record is the
 * next one, whole in in[0..len) (the bytes that follow those
 * fcgi_reader_run() has used), as a web server sends a request without a
 * body: head and end in one write.  Only looks. */
bool fcgi_reader_body_ends_empty(const struct fcgi_reader *rd, const unsigned char *in, size_t len);

#endif
