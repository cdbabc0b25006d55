/* The worker threads that serve connections. */
#ifndef FCGIWRAP_WORKERS_H
#define FCGIWRAP_WORKERS_H

#include <stdbool.h>

#define WORKERS_MAX_LISTENERS 64

/* Accepts one connection from listening socket number i (in the order of
 * workers_add_listener), without blocking.  Returns the connection, or -1
 * (nothing waiting, or refused), with *backoff set when accepting should
 * pause (out of fds).  Called by one worker at a time for a given
 * listener; several listeners may be served at once. */
typedef int (*workers_accept_fn)(unsigned i, bool *backoff);

/* Prepares the pool for up to max_connections connections and
 * max_scripts running scripts at once; workers take connections through
 * accept_one.  Returns 0 or -1. */
int workers_init(unsigned max_connections, unsigned max_scripts, workers_accept_fn accept_one);

/* Adds a non-blocking listening socket, the next index.  Returns 0 or -1. */
int workers_add_listener(int fd);

/* Starts the first worker, which starts the others as needed.  Returns 0
 * or -1. */
int workers_start(void);

/* Takes a script slot, waiting up to timeout_ms for one.  Returns 0, -1 on
 * timeout, or -2 if the daemon is ending its requests (workers_kill). */
int workers_acquire_script_slot(int timeout_ms);
void workers_release_script_slot(void);

/* Connections accepted and not yet closed. */
unsigned workers_active(void);

/* Readable whenever a connection has closed after workers_stop() (the
 * main loop checks whether the stop is complete); drained by
 * workers_ack_done(). */
int workers_done_fd(void);
void workers_ack_done(void);

/* Tells workers the daemon is stopping: no connection is accepted any
 * more (the caller may close the listening sockets once this returns),
 * connections kept open between requests are closed, requests in progress
 * finish.  workers_stop_fd() becomes readable. */
void workers_stop(void);
int workers_stop_fd(void);

/* Tells workers to end their requests now (stop deadline or a second
 * signal): scripts are ended and clients answered.  workers_kill_fd()
 * becomes readable. */
void workers_kill(void);
int workers_kill_fd(void);

#endif
