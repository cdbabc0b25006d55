/* The buffers a worker thread owns and reuses for every request it
 * serves: one anonymous mapping, touched only as far as requests need;
 * and the eventfd its requests wait on for a slot. */
#ifndef FCGIWRAP_WORKER_BUFFERS_H
#define FCGIWRAP_WORKER_BUFFERS_H

#include <stdbool.h>
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
	int wake_fd; /* for slot waits (slots.h): made once, not a wait */
};

/* Maps the buffers and makes the eventfd.  Returns 0, or -1 with errno. */
int worker_buffers_init(struct worker_buffers *wb);

/* Gives their pages back to the system (they read as zeros when next
 * touched): after a large request only, or a worker that once served an
 * upload would keep them resident for as long as it lives. */
void worker_buffers_trim(struct worker_buffers *wb);

/* While a request waits: gives back the scratch buffer's pages, and the
 * input buffer's when nothing unread is in it. */
void worker_buffers_trim_idle(struct worker_buffers *wb, bool input_empty);

void worker_buffers_free(struct worker_buffers *wb);

/* Gives back the pages of the calling thread's stack below its caller's
 * frames, what deeper calls left there: a request that waits long (a
 * script that sleeps, a long poll) keeps only the frames it stands on.
 * Their next use faults them in again, zeroed. */
void worker_stack_trim(void);

#endif
