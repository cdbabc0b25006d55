/* What goes back to the web server for a request: the script's output
 * turned into records (its CGI header block checked first), its stderr
 * logged or forwarded. */
#ifndef FCGIWRAP_RESPONSE_H
#define FCGIWRAP_RESPONSE_H

#include <stddef.h>

#include "request.h"

/* Bytes the script wrote to stdout or stderr.  Return -1 when they cannot
 * reach the web server (the connection is then unusable). */
int response_stdout(struct request *r, const char *data, size_t len);
int response_stderr(struct request *r, const char *data, size_t len);

/* The script's stdout ended: before its header block did, that is a 502. */
void response_stdout_ended(struct request *r);

/* The script's stderr ended: logs a last line without its newline. */
void response_stderr_ended(struct request *r);

/* FCGI_STDIN has ended: output held until now goes out.  Returns -1 when
 * it cannot reach the web server. */
int response_release(struct request *r);


#endif
