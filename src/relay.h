/* The relay: moves a request's body to its script and the script's output
 * to the web server, until the script is done or a limit ends it. */
#ifndef FCGIWRAP_RELAY_H
#define FCGIWRAP_RELAY_H

#include "request.h"
#include "response.h"

/* Runs the relay for a request whose script has started.  Returns how the
 * request ended (END_COMPLETE: the script exited, its output ended, and
 * the body has been read), with *why for the log line otherwise. */
enum request_end relay_run(struct request *r, const char **why);

/* Reads what the web server sent (revents from poll() on the connection,
 * or POLLIN to read without a poll): body bytes into the body buffer,
 * management records answered.  Returns 0, or -1 with how the request
 * must end.  Also used while the request waits for a script slot. */
int relay_read_conn(struct request *r, short revents, enum request_end *end, const char **why);

#endif
