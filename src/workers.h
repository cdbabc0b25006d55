/* The worker threads that serve connections. */
#ifndef FCGIWRAP_WORKERS_H
#define FCGIWRAP_WORKERS_H

#include <stdbool.h>

/* Prepares the pool for up to max_connections connections and
 * max_scripts running scripts at once.  Returns 0 or -1. */
int workers_init(unsigned max_connections, unsigned max_scripts);

/* Takes a script slot, waiting up to timeout_ms for one.  Returns 0, -1 on
 * timeout, or -2 if the daemon is ending its requests (workers_kill). */
int workers_acquire_script_slot(int timeout_ms);
void workers_release_script_slot(void);

/* Hands an accepted connection to a worker, starting one if none is idle.
 * Returns 0, or -1 if no worker could take it (the caller closes it). */
int workers_submit(int fd);

/* Called by a worker once its connection will serve no more requests
 * (just before closing it), so the pool counts it as available. */
void workers_connection_ending(void);

/* Connections accepted and not yet closed. */
unsigned workers_active(void);

/* Readable when a connection has closed while the limit of connections
 * was reached (the main loop re-enables accepting) or after
 * workers_stop() (it checks whether the stop is complete); drained by
 * workers_ack_done(). */
int workers_done_fd(void);
void workers_ack_done(void);

/* Tells workers the daemon is stopping: connections kept open between
 * requests are closed, requests in progress finish.  workers_stop_fd()
 * becomes readable. */
void workers_stop(void);
int workers_stop_fd(void);

/* Tells workers to end their requests now (stop deadline or a second
 * signal): scripts are ended and clients answered.  workers_kill_fd()
 * becomes readable. */
void workers_kill(void);
int workers_kill_fd(void);

#endif
