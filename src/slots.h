/* Slot pools: a slot is taken before a script starts and given back at
 * the end of its request.  One pool holds the -c slots; each class of
 * --script-limit has its own.  Requests that find none free wait in the
 * pool's queue, first come, first served, each on an eventfd of its
 * waiter's (a worker's, made once: not one a wait), so the wait can be
 * polled together with the connection and the daemon's stop. */
#ifndef FCGIWRAP_SLOTS_H
#define FCGIWRAP_SLOTS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

struct slot_waiter {
	int efd;                  /* the waiter's, empty: readable once a slot
				   * is handed over, empty again after
				   * slot_wait_end() */
	bool granted;
	struct slot_waiter *next; /* the pool's queue */
};

struct slot_pool {
	pthread_mutex_t lock;
	unsigned free;            /* slots free (only while nobody waits) */
	unsigned limit;
	atomic_uint running, queued; /* for the status page */
	struct slot_waiter *head, *tail;
};

/* The -c slots. */
extern struct slot_pool script_slots;

void slot_pool_init(struct slot_pool *p, unsigned n);

/* Takes a slot if one is free.  Returns true if taken. */
bool slot_try_take(struct slot_pool *p);

/* Joins the queue, or takes a slot that came free since slot_try_take():
 * either way w->efd (set by the caller) turns readable once w has a slot. */
void slot_wait_begin(struct slot_pool *p, struct slot_waiter *w);

/* Leaves the queue, once w->efd became readable or the wait is over.
 * Returns true if a slot was handed over (it is the caller's then). */
bool slot_wait_end(struct slot_pool *p, struct slot_waiter *w);

/* Gives a slot back: to the first request waiting, or to the free ones. */
void slot_release(struct slot_pool *p);

#endif
