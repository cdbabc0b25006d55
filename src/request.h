/* One request's state, from its head to its end: what the web server
 * asked (its parameters, parsed once), what runs for it, and what has gone
 * back.  The phases that act on it live in their own modules: serve.c
 * (from head to script), relay.c (script and connection), response.c
 * (output and the end). */
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
	const char *answer_status; /* for a request answered without a script: */
	const char *answer_type, *answer_body; /* status, Content-Type, body */
	char why_buf[160];      /* a formatted reason for the end */
	struct activity activity; /* on the status page's ?full */
	bool listed;            /* activity_begin() done */
};

/* Starts a request whose head conn has just read. */
void request_init(struct request *r, struct fcgi_conn *conn, struct worker_buffers *wb);

/* Frees what the request holds (the script must be reaped). */
void request_free(struct request *r);

#endif
