/* Upgrade in place, as nginx upgrades its binary: on SIGUSR2 the daemon
 * starts its own binary again, read afresh from disk, with the same
 * arguments and its listening sockets handed over as systemd hands them
 * (LISTEN_FDS), waits until the new copy says it is serving, then stops
 * accepting and drains.
 *
 * The two copies talk over a socketpair whose end the new copy finds in
 * FCGIWRAP_UPGRADE_FD: the new copy writes 'R' once it serves; the old
 * one then makes it systemd's main process (MAINPID=, which only the main
 * process may send with the default NotifyAccess=main) and answers 'M'.
 * Until that answer the new copy sends systemd nothing. */
#ifndef FCGIWRAP_UPGRADE_H
#define FCGIWRAP_UPGRADE_H

#include <stdbool.h>
#include <stddef.h>

/* First thing in main: keeps the path of the binary and the arguments, and
 * in a copy started by an upgrade takes the channel to the old copy out of
 * the environment. */
void upgrade_init(int argc, char **argv);

/* This copy was started by an upgrade (its sockets came from the old one). */
bool upgrade_inherited(void);

/* This copy may notify systemd: it was not started by an upgrade, or the
 * old copy has made it the main process. */
bool upgrade_is_main(void);

/* Old copy: starts the new one with the listening sockets fds[0..n).
 * Returns 0, or -1 after logging why not (the daemon keeps serving). */
int upgrade_start(const int *fds, size_t n);

/* The fd to poll for the other copy (-1: none), and when upgrade_handle()
 * is due anyway (ms, -1: never): the end of the old copy's wait for the
 * new one, or a retry to reap one that failed. */
int upgrade_fd(void);
int upgrade_timeout_ms(void);

enum upgrade_event {
	UPGRADE_NOTHING,
	UPGRADE_HANDED_OVER, /* old copy: the new one serves; stop accepting */
	UPGRADE_FAILED,      /* old copy: the new one did not start (logged) */
	UPGRADE_TAKEN_OVER,  /* new copy: it is the main process now */
};

/* Reads what the other copy said, once upgrade_fd() is readable or the
 * timeout has passed. */
enum upgrade_event upgrade_handle(void);

/* Old copy, stopping: abandons an upgrade under way (the new copy gets
 * SIGTERM and serves what it accepted before it exits). */
void upgrade_abort(void);

/* New copy: tells the old one it serves. */
void upgrade_serving(void);

#endif
