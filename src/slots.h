/* Script slots (-c): one is taken before a script starts and given back
 * at the end of its request.  Requests that find none wait in one queue,
 * first come, first served, each on an eventfd of its own, so the wait
 * can be polled together with the connection and the daemon's stop. */
#ifndef FCGIWRAP_SLOTS_H
#define FCGIWRAP_SLOTS_H

#include <stdbool.h>

struct slot_waiter {
	int efd;                  /* readable once a slot is handed over */
	bool granted;
	struct slot_waiter *next; /* the queue (slots.c's) */
};

void slots_init(unsigned n);

/* Takes a slot if one is free.  Returns true if taken. */
bool slots_try_take(void);

/* Joins the queue.  Returns 0, or -1 with errno (no eventfd). */
int slots_wait_begin(struct slot_waiter *w);

/* Leaves the queue, once w->efd became readable or the wait is over.
 * Returns true if a slot was handed over (it is the caller's then). */
bool slots_wait_end(struct slot_waiter *w);

/* Gives a slot back: to the first request waiting, or to the free ones. */
void slots_release(void);

#endif
