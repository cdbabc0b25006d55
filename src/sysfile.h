/* Small files of /proc and /sys (cgroup files among them), read or
 * written whole with one system call each. */
#ifndef FCGIWRAP_SYSFILE_H
#define FCGIWRAP_SYSFILE_H

#include <sys/types.h>

/* Reads up to size - 1 bytes of path into buf, NUL-terminated.  Returns
 * the length read, or -1. */
ssize_t sysfile_read(const char *path, char *buf, size_t size);

/* Writes text to path (which must exist).  Returns 0, or -1 when it could
 * not be opened or not all of text was taken. */
int sysfile_write(const char *path, const char *text);

#endif
