/* The worker threads that serve connections. */
#ifndef FCGIWRAP_WORKERS_H
#define FCGIWRAP_WORKERS_H

#include <stdbool.h>

/* Prepares the pool for up to max_connections connections at once, served
 * by at most max_scripts + WORKERS_SPARE threads (a connection beyond
 * waits for one, first come, first served).  Returns 0 or -1. */
int workers_init(unsigned max_connections, unsigned max_scripts);

/* The most worker threads the pool runs with these limits. */
unsigned workers_max_threads(unsigned max_connections, unsigned max_scripts);

/* The main loop's accepting: a place among --max-connections is reserved
 * before each accept (false: none left, or stopping), given back with
 * workers_unreserve() when nothing was accepted, or taken by
 * workers_submit(), which hands the connection to a worker, starting one
 * if none is idle.  It returns 0, or -1 if no worker could take it (the
 * place is given back; the caller closes the connection). */
bool workers_reserve(void);
void workers_unreserve(void);
int workers_submit(int fd);

/* Workers waiting for a connection: while there are, they accept, and the
 * main loop does not (see workers.c). */
unsigned workers_idle(void);

/* Connections accepted and not yet closed. */
unsigned workers_active(void);

/* Readable when a connection has closed while the limit of connections
 * was reached (the main loop re-enables accepting), when no worker is
 * left to accept (the main loop does), or after workers_stop() (it checks
 * whether the stop is complete); drained by workers_ack_done(). */
int workers_done_fd(void);
void workers_ack_done(void);

/* For --idle-exit: if no connection is open, stops the workers accepting
 * (what waits in the backlog stays for the next start) and returns true;
 * else false, and nothing changes. */
bool workers_stop_if_idle(void);

/* The daemon is stopping: no worker accepts any more (when this returns,
 * none waits on the listening sockets), connections kept open between
 * requests are closed, requests in progress finish (see stopping.h). */
void workers_stop(void);

/* End running requests now: scripts are ended and clients answered. */
void workers_kill(void);

#endif
