/* The sockets fcgiwrap listens on. */
#ifndef FCGIWRAP_LISTENERS_H
#define FCGIWRAP_LISTENERS_H

#include <stdbool.h>
#include <stddef.h>

#define LISTENERS_MAX 64

/* Opens the sockets: those systemd passes (then -s is ignored, as in
 * 1.1.0), else every -s URL, else a listening socket on fd 0.  Fatal with
 * a message when none can be had. */
void listeners_open(void);

size_t listeners_count(void);
int listeners_fd(size_t i); /* -1 once closed */

/* Accepts the next connection waiting on socket i that --allow-from lets
 * in (refusing, and logging, those it does not).  Returns its fd, or -1
 * when none waits; sets *backoff when fds ran out (the caller pauses). */
int listeners_accept(size_t i, bool *backoff);

/* The sockets came from systemd or from the copy this one upgraded: they
 * outlive the daemon, which never removes them. */
bool listeners_inherited(void);

/* Stops listening: closes every socket, and with remove_files removes the
 * socket files the daemon created (not when they are handed over). */
void listeners_close(bool remove_files);

#endif
