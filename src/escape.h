/* Escaping bytes that could forge a log line.  Pure: no I/O. */
#ifndef FCGIWRAP_ESCAPE_H
#define FCGIWRAP_ESCAPE_H

#include <stddef.h>

/* Copies in[0..len) to out (size bytes, always NUL-terminated), writing
 * each byte below 0x20, 0x7f, the backslash and each byte of extra (may be
 * NULL) as \xHH.  Stops before a byte or escape that would not fit.
 * Returns the length written. */
size_t escape_bytes(char *out, size_t size, const char *in, size_t len, const char *extra);

#endif
