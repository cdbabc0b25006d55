/* The worker threads that serve connections. */
#ifndef FCGIWRAP_WORKERS_H
#define FCGIWRAP_WORKERS_H

#include <stdbool.h>

/* Prepares the pool for up to max connections at once.  Returns 0 or -1. */
int workers_init(unsigned max);

/* Hands an accepted connection to a worker, starting one if none is idle.
 * Returns 0, or -1 if no worker could take it (the caller closes it). */
int workers_submit(int fd);

/* Connections accepted and not yet closed. */
unsigned workers_active(void);

/* Readable whenever a connection has closed (the main loop re-enables
 * accepting and checks whether a stop is complete); drained by
 * workers_ack_done(). */
int workers_done_fd(void);
void workers_ack_done(void);

/* Tells workers the daemon is stopping: connections kept open between
 * requests are closed, requests in progress finish. */
void workers_stop(void);

#endif
