/* Escaping: bytes that could forge a log line, strings in the status
 * page's JSON and OpenMetrics. */
#ifndef FCGIWRAP_ESCAPE_H
#define FCGIWRAP_ESCAPE_H

#include <stddef.h>
#include <stdio.h>

/* Copies in[0..len) to out (size bytes, always NUL-terminated), writing
 * each byte below 0x20, 0x7f, the backslash and each byte of extra (may be
 * NULL) as \xHH.  Stops before a byte or escape that would not fit.
 * Returns the length written. */
size_t escape_bytes(char *out, size_t size, const char *in, size_t len, const char *extra);

/* The length escape_bytes() would write for in[0..len), with room enough
 * (without the NUL). */
size_t escaped_length(const char *in, size_t len, const char *extra);

/* Writes s as a JSON string, quotes included, always valid UTF-8: quotes,
 * backslashes and control bytes escaped, well-formed UTF-8 sequences as
 * they are, and each other byte as \ufffd. */
void escape_json_string(FILE *m, const char *s);

/* Writes s as an OpenMetrics label value, without its quotes: backslash,
 * double quote and newline escaped, as the format asks. */
void escape_metric_label(FILE *m, const char *s);

#endif
