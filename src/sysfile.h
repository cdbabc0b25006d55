/* Small files of /proc and /sys (cgroup files among them), read or
 * written whole with one system call each. */
#ifndef FCGIWRAP_SYSFILE_H
#define FCGIWRAP_SYSFILE_H

#include <limits.h>
#include <stddef.h>
#include <sys/types.h>

/* Reads up to size - 1 bytes of path into buf, NUL-terminated.  Returns
 * the length read, or -1. */
ssize_t sysfile_read(const char *path, char *buf, size_t size);

/* Writes text to path (which must exist).  Returns 0, or -1 when it could
 * not be opened or not all of text was taken. */
int sysfile_write(const char *path, const char *text);

/* The mount points of file systems of this type (from /proc/mounts, so
 * as this process sees them), at most max.  Returns how many. */
size_t sysfile_mounts(const char *type, char (*paths)[PATH_MAX], size_t max);

#endif
