/* The buffers a worker thread owns and reuses for every request it
 * serves: one anonymous mapping, touched only as far as requests need. */
#ifndef FCGIWRAP_WORKER_BUFFERS_H
#define FCGIWRAP_WORKER_BUFFERS_H

#include <stddef.h>

/* Sizes.  The request head is limited to what its buffer holds. */
#define WB_IO_SIZE (64 * 1024)     /* script output, spool replay */
#define WB_BODY_SIZE (64 * 1024)   /* request body on its way to the script */
#define WB_HEAD_SIZE (128 * 1024)  /* a request's PARAMS stream */
#define WB_IN_SIZE (64 * 1024)     /* bytes read from the web server */

struct worker_buffers {
	char *io;
	char *body;
	unsigned char *head;
	unsigned char *in;
};

/* Maps the buffers.  Returns 0, or -1 with errno. */
int worker_buffers_init(struct worker_buffers *wb);

/* Gives their pages back to the system (they read as zeros when next
 * touched): after a large request only, or a worker that once served an
 * upload would keep them resident for as long as it lives. */
void worker_buffers_trim(struct worker_buffers *wb);

void worker_buffers_free(struct worker_buffers *wb);

#endif
