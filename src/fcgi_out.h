/* FastCGI output of one request: STDOUT/STDERR records and the closing
 * END_REQUEST, written straight to the connection, or held in a spool
 * while the request body is still arriving. */
#ifndef FCGIWRAP_FCGI_OUT_H
#define FCGIWRAP_FCGI_OUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

/* Output held in memory before it moves to an unlinked temporary file. */
#define SPOOL_MEM_MAX (64 * 1024)

/* How long a wait on the web server may last: every send to it waits
 * under these (the connection owns one; its request keeps it current). */
struct peer_wait {
	int progress_ms;    /* --peer-timeout: longest wait without progress */
	long long deadline; /* monotonic ms past which no wait goes; 0: none */
	int cancel_fd;      /* readable: stop waiting at once; -1: none */
};

/* Sends all of iov[0..iovcnt) on the non-blocking socket fd, waiting for
 * room as w allows.  Returns 0, or -1 with errno (ETIMEDOUT when the peer
 * stopped taking bytes or the deadline came, ECANCELED when cancel_fd
 * became readable). */
int peer_send_all(int fd, struct iovec *iov, int iovcnt, const struct peer_wait *w);

struct fcgi_out {
	int fd;              /* the connection (not owned) */
	uint16_t request_id;
	const struct peer_wait *wait; /* bounds every send (not owned) */
	bool holding;        /* spool rather than send */
	char *mem;           /* spool in memory */
	size_t mem_len;
	int file_fd;         /* spool on disk, -1 until needed */
	off_t file_len;
	bool stderr_used;    /* an FCGI_STDERR record was produced */
	uint64_t stdout_bytes; /* payload bytes of STDOUT records */
	uint64_t spool_max;  /* most bytes the spool may hold; 0: no limit */
	int error;           /* errno of the first failure; output stops */
	int spool_error;     /* the same, when the failure was the spool's
			      * (EFBIG: spool_max reached), not the peer's */
};

void fcgi_out_init(struct fcgi_out *o, int fd, uint16_t request_id, const struct peer_wait *wait);
void fcgi_out_free(struct fcgi_out *o);

/* Queues or sends len bytes as records of type (FCGI_STDOUT or
 * FCGI_STDERR).  Returns 0 or -1 (o->error says why). */
int fcgi_out_stream(struct fcgi_out *o, int type, const void *data, size_t len);

/* The same for the bytes of parts[0..nparts-1] (at most
 * FCGI_OUT_MAX_PARTS) taken in order, in as few records, and system
 * calls, as their length allows. */
#define FCGI_OUT_MAX_PARTS 4
int fcgi_out_streamv(struct fcgi_out *o, int type, const struct iovec *parts, int nparts);

/* A whole response of the daemon's own on FCGI_STDOUT: the status, a type,
 * and a body (NULL: the status line itself, the form 1.1.0 used for its
 * errors).  Returns 0 or -1, as fcgi_out_streamv(). */
int fcgi_out_status(struct fcgi_out *o, const char *status_line, const char *type, const char *body);

/* Stops holding: sends what the spool holds (using buf as scratch) and
 * sends directly from then on.  Returns 0 or -1. */
int fcgi_out_release(struct fcgi_out *o, char *buf, size_t bufsize);

/* Stops holding and drops what the spool holds (the web server wants no
 * more of this response). */
void fcgi_out_discard(struct fcgi_out *o);

/* Ends the streams and the request.  Returns 0 or -1. */
int fcgi_out_end_request(struct fcgi_out *o, uint32_t app_status, uint8_t protocol_status);

#endif
