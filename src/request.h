/* Serving one FastCGI connection: its requests, one after another. */
#ifndef FCGIWRAP_REQUEST_H
#define FCGIWRAP_REQUEST_H

#include <stddef.h>

/* Buffers a worker thread owns and reuses for every request it serves. */
struct worker_buffers {
	char *io;     /* script output and spool replay */
	size_t io_size;
	char *body;   /* request body on its way to the script */
	size_t body_size;
	unsigned char *head; /* a peek at the request head (fcgi_head.c) */
};

int worker_buffers_init(struct worker_buffers *wb);
void worker_buffers_free(struct worker_buffers *wb);

/* Serves the connection fd until it closes, fails, idles out or the daemon
 * stops, then closes it. */
void serve_connection(int fd, struct worker_buffers *wb);

#endif
