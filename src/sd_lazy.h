/* libsystemd, loaded only when systemd started the daemon. */
#ifndef FCGIWRAP_SD_LAZY_H
#define FCGIWRAP_SD_LAZY_H

#include <stdint.h>

/* Loads libsystemd if the environment holds anything it would act on
 * (LISTEN_FDS, NOTIFY_SOCKET, WATCHDOG_USEC).  Exits with a message if
 * it is needed and cannot be loaded.  Call once, before any chroot. */
void sd_lazy_init(void);

/* libsystemd's functions of the same names, or, when it was not needed,
 * what they return without systemd: no sockets, no notification, no
 * watchdog. */
int sdl_listen_fds_with_names(int unset_environment, char ***names);
int sdl_is_socket(int fd, int family, int type, int listening);
int sdl_notify(int unset_environment, const char *state);
int sdl_watchdog_enabled(int unset_environment, uint64_t *usec);

#endif
