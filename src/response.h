/* What goes back to the web server for a request: the script's output
 * turned into records (its CGI header block checked first), its stderr
 * logged or forwarded, and the one path by which every request ends. */
#ifndef FCGIWRAP_RESPONSE_H
#define FCGIWRAP_RESPONSE_H

#include <stddef.h>

#include "request.h"

/* How a request ended. */
enum request_end {
	END_COMPLETE,  /* the script has exited and its output ended (a 502 if
			* its header block was missing or bad) */
	END_REFUSED,   /* answered without a script: response_refuse(),
			* response_page() */
	END_TIMED_OUT, /* -t or --inactivity-timeout: 504 if no header was sent */
	END_STOPPING,  /* the daemon ends its requests: 503 if no header was sent */
	END_SPOOL_FAILED, /* output to hold until the body ends could not be
			   * held (--spool-limit, disk full): 502 or 503 */
	END_ABORTED,   /* FCGI_ABORT_REQUEST: FCGI_END_REQUEST, no more output */
	END_PEER_GONE, /* the connection closed or failed: nothing to answer */
};

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

/* Ends a request, whatever ended it: ends the script's process group if it
 * still runs, gives its slot back, answers what can still be answered,
 * counts and logs the request, and sends FCGI_END_REQUEST.  why names the
 * cause in the log line (NULL: nothing worth a line). */
void request_finish(struct request *r, enum request_end how, const char *why);

/* Refuses a request with status_line (after reading its body): a log line
 * "LABEL: why" and the status as the response. */
void response_refuse(struct request *r, const char *status_line, const char *why);

/* Answers a request with a page of the daemon's own (status, ping). */
void response_page(struct request *r, const char *type, const char *body);

#endif
