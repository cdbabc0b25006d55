/* The worker threads that serve connections. */
#ifndef FCGIWRAP_WORKERS_H
#define FCGIWRAP_WORKERS_H

#include <stdbool.h>

/* Prepares the pool for up to max_connections connections at once, served
 * by at most max_scripts + WORKERS_SPARE threads (a connection beyond
 * waits for one, first come, first served).  Returns 0 or -1. */
int workers_init(unsigned max_connections, unsigned max_scripts);

/* Hands an accepted connection to a worker, starting one if none is idle.
 * Returns 0, or -1 if no worker could take it (the caller closes it). */
int workers_submit(int fd);

/* Connections accepted and not yet closed. */
unsigned workers_active(void);

/* Readable when a connection has closed while the limit of connections
 * was reached (the main loop re-enables accepting) or after
 * workers_stop() (it checks whether the stop is complete); drained by
 * workers_ack_done(). */
int workers_done_fd(void);
void workers_ack_done(void);

/* The daemon is stopping: connections kept open between requests are
 * closed, requests in progress finish (see stopping.h). */
void workers_stop(void);

/* End running requests now: scripts are ended and clients answered. */
void workers_kill(void);

#endif
