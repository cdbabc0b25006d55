/* Admission: the script slots a request holds while its script runs,
 * taken and given back here and nowhere else.  A script of a
 * --script-limit class takes one of its class's slots first, then one of
 * the -c slots; both are waited for, first come first served, within one
 * --queue-timeout (and the request's -t). */
#ifndef FCGIWRAP_ADMISSION_H
#define FCGIWRAP_ADMISSION_H

#include <stdbool.h>

#include "relay_ports.h"
#include "request_end.h"

struct script_class;

struct admission {
	struct script_class *class; /* the script's class, or NULL */
	bool class_slot;            /* holds one of its slots */
	bool slot;                  /* holds one of the -c slots */
	bool starting;              /* holds a --start-limit place */
};

/* How long a started script may hold its --start-limit place at most:
 * long enough for a small program's start (a few ms) and a shell's.  One
 * that waits (sleeps, waits on I/O or a child) gives it back when seen
 * so, looked at every START_CHECK_MS, so that it never holds back
 * others' starts for long. */
#define START_WINDOW_MS 50
#define START_CHECK_MS 5

/* --start-limit's default, a CPU. */
#define START_LIMIT_PER_CPU 2

/* Sets the --start-limit (once, before any request). */
void admission_init(unsigned start_limit);

/* What else a wait for a slot watches: the web server's socket, read on
 * meanwhile (service() returns -1 with how the request must end), and
 * the daemon's stop. */
struct admission_wait {
	const struct body_source *peer;
	int (*service)(void *ctx, short revents, enum request_end *end, const char **why);
	void *ctx;
	int stop_fd;
	int wake_fd; /* the worker's eventfd for its waits (slots.h) */
};

/* Takes the slots for a script of class (NULL: none), then a place among
 * the scripts starting (--start-limit), waiting for them in arrival order
 * until --queue-timeout or deadline (0: none).  Returns 1 with them all,
 * 0 when they stayed busy for --queue-timeout (logged once per episode),
 * or -1 with how the request must end. */
int admission_take(struct admission *a, struct script_class *class, long long deadline,
		   const struct admission_wait *w, enum request_end *end, const char **why);

/* The script has started: its first output, its exit, or START_WINDOW_MS
 * since its start.  Its --start-limit place goes to the next in line. */
void admission_started(struct admission *a);

/* Gives back the slots a holds, at once to the requests waiting. */
void admission_give_back(struct admission *a);

#endif
