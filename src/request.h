/* One request's state, from its head to its end, and its one end
 * (request.c).  What acts on it has a struct of its own here: the script
 * chosen and checked (serve.c), its slots (admission.c), the process
 * (spawn.c), the relay (relay.c) and the response (response.c).  Its own
 * fields are written by request.c alone. */
#ifndef FCGIWRAP_REQUEST_H
#define FCGIWRAP_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "activity.h"
#include "admission.h"
#include "fcgi_conn.h"
#include "fcgi_params.h"
#include "relay.h"
#include "request_end.h"
#include "response.h"
#include "script_path.h"
#include "spawn.h"
#include "worker_buffers.h"

/* The script a request runs, as chosen and checked (serve.c). */
struct script_choice {
	struct script_location loc;
	const char *interpreter; /* the --interpreter that runs it, or NULL */
	char *dir;              /* where it runs, or NULL */
	char **env;             /* its environment */
	int fd;                 /* O_PATH fd of the script as checked last, -1 */
	dev_t dev;              /* and its identity */
	ino_t ino;
};

struct request {
	struct fcgi_conn *conn;
	struct worker_buffers *wb;
	struct request_params params;
	struct script_choice script;
	struct admission slots;
	struct script_proc proc;
	struct script_usage usage; /* measured at its end */
	struct relay relay;
	struct response resp;
	struct activity activity; /* on the status page's ?full */
	long long start_ms;
	long long deadline;     /* -t: when the request is ended, or 0 */
	bool listed;            /* activity_begin() done */
	bool conn_broken;       /* the connection cannot serve another request */
	bool accounted;         /* counted and logged */
};

/* Starts a request whose head conn has just read. */
void request_init(struct request *r, struct fcgi_conn *conn, struct worker_buffers *wb);

/* Lists it on the status page, once its parameters are known. */
void request_list(struct request *r);

/* Frees what the request holds (the script must be reaped). */
void request_free(struct request *r);

/* What names the request in log lines: its script as resolved, or as the
 * request named it. */
const char *request_label(const struct request *r);

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
