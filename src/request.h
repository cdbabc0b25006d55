/* One request's state, from its head to its end: what the web server
 * asked (its parameters, parsed once), what runs for it, and what has gone
 * back, and its one end (request.c).  The phases that act on it live in
 * their own modules: serve.c (from head to script), relay.c (script and
 * connection), response.c (output). */
#ifndef FCGIWRAP_REQUEST_H
#define FCGIWRAP_REQUEST_H

#include <stdbool.h>
#include <stddef.h>

#include "activity.h"
#include "cgi_header.h"
#include "fcgi_conn.h"
#include "fcgi_out.h"
#include "fcgi_params.h"
#include "script_classes.h"
#include "script_path.h"
#include "spawn.h"
#include "worker_buffers.h"

enum header_state { HDR_PARSING, HDR_DONE, HDR_FAILED };

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

struct request {
	struct fcgi_conn *conn;
	struct worker_buffers *wb;
	struct request_params params;
	struct fcgi_out out;
	struct cgi_header hdr;
	enum header_state hstate;
	struct script_proc proc;
	struct script_location loc;
	int script_fd;          /* O_PATH fd of the script as checked last, -1 */
	dev_t script_dev;       /* and its identity */
	ino_t script_ino;
	const char *interpreter; /* the --interpreter that runs it, or NULL */
	char **env;             /* the script's environment */
	char *dir;              /* where the script runs, or NULL */
	const char *label;      /* names the request in log lines */
	size_t body_off;        /* of the conn->rd.body_len body bytes in
				 * wb->body, those written to the script */
	bool stdin_ended;       /* FCGI_STDIN has ended */
	bool pipe_full;         /* the script's stdin pipe took no more */
	bool conn_broken;       /* the connection cannot serve another request */
	bool has_slot;          /* holds one of the -c script slots */
	struct script_class *class; /* --script-limit class, or NULL */
	bool has_class_slot;    /* holds one of its slots */
	bool slow_logged;       /* --slow-log line written */
	bool accounted;         /* counted and logged */
	int status;             /* HTTP status sent to the web server, or 0 */
	unsigned long long bytes_in; /* request body bytes read */
	long long cpu_usec;     /* the script's CPU time (measure_script) */
	long long memory_kib;   /* its peak memory */
	long long start_ms;
	long long deadline;     /* -t: when the request is ended, or 0 */
	long long last_activity; /* last byte to or from the script */
	long long body_wait_since; /* since when the script waits on the peer */
	long long output_ended_at; /* its stdout and stderr ended, it runs on */
	char *errline;          /* partial stderr line (without -f) */
	size_t errline_len;
	char why_buf[160];      /* a formatted reason for the end */
	struct activity activity; /* on the status page's ?full */
	bool listed;            /* activity_begin() done */
};

/* Starts a request whose head conn has just read. */
void request_init(struct request *r, struct fcgi_conn *conn, struct worker_buffers *wb);

/* Frees what the request holds (the script must be reaped). */
void request_free(struct request *r);

/* Ends a request, whatever ended it: ends the script's process group if it
 * still runs, gives its slots back, answers what can still be answered,
 * counts and logs the request, and sends FCGI_END_REQUEST.  why names the
 * cause in the log line (NULL: nothing worth a line). */
void request_finish(struct request *r, enum request_end how, const char *why);

/* Refuses a request with status_line (after reading its body): a log line
 * "LABEL: why" and the status as the response. */
void request_refuse(struct request *r, const char *status_line, const char *why);

/* Answers a request with a page of the daemon's own (status, ping). */
void request_page(struct request *r, const char *type, const char *body);

#endif
