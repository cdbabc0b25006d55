/* The requests running now, for the status page's ?full: one record per
 * request, kept in a list while it runs. */
#ifndef FCGIWRAP_ACTIVITY_H
#define FCGIWRAP_ACTIVITY_H

#include <stdatomic.h>
#include <stdio.h>
#include <sys/types.h>

enum activity_state {
	ACTIVITY_QUEUED,  /* waiting for a script slot */
	ACTIVITY_BODY,    /* the script runs, taking the request body */
	ACTIVITY_RUNNING, /* the body has ended, nothing sent yet */
	ACTIVITY_SENDING, /* its output is going to the web server */
};

struct activity {
	struct activity *prev, *next;
	long long start_ms;
	const char *client, *method, *uri; /* the request's, while it runs */
	const char *script;                /* set through activity_set_script() */
	pid_t pid;
	atomic_ullong bytes_in, bytes_out;
	atomic_int state;
};

/* Lists a request; the strings must live until activity_end(). */
void activity_begin(struct activity *a, const char *client, const char *method, const char *uri);
void activity_set_script(struct activity *a, const char *script, pid_t pid);
void activity_end(struct activity *a);

/* Writes the list: "text" lines, or a JSON array ("json"). */
void activity_render(FILE *m, const char *format);

#endif
