/* --interpreter SUFFIX=PROGRAM: files whose name ends in SUFFIX run as
 * "PROGRAM FILE", whether they are executable or not, as lighttpd's
 * cgi.assign runs them (php-cgi for .php, perl for .pl).  Pure, but for
 * interpreters_check(). */
#ifndef FCGIWRAP_INTERPRETERS_H
#define FCGIWRAP_INTERPRETERS_H

#include <stddef.h>

struct interpreter {
	char *suffix;  /* non-empty, without '/' */
	char *program; /* an absolute path */
};

struct interpreters {
	struct interpreter *v;
	size_t n;
};

/* Adds one SUFFIX=PROGRAM (the first '=' splits: a suffix holds none).
 * Returns 0, or -1 with *why: an empty or '/'-holding suffix, a program
 * that is not an absolute path, a suffix given twice, no memory. */
int interpreters_add(struct interpreters *m, const char *spec, const char **why);

/* The program that runs path: the mapping with the longest suffix that
 * ends path, or NULL when none does. */
const char *interpreters_find(const struct interpreters *m, const char *path);

/* At start, as the user scripts run as and where they run (in the
 * --chroot): each program must be a regular file that user may execute.
 * Returns 0, or -1 with *why naming the one that is not. */
int interpreters_check(const struct interpreters *m, char *why, size_t size);

#endif
