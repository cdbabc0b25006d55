/* Slot pools (see slots.h).  A slot given back goes straight to the
 * request that has waited longest, so a request arriving meanwhile cannot
 * take it first, and slots are only free while nobody waits. */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <unistd.h>

#include "slots.h"

struct slot_pool script_slots = { .lock = PTHREAD_MUTEX_INITIALIZER };

void slot_pool_init(struct slot_pool *p, unsigned n)
{
	pthread_mutex_init(&p->lock, NULL);
	p->free = p->limit = n;
	atomic_init(&p->running, 0);
	atomic_init(&p->queued, 0);
	p->head = p->tail = NULL;
}

bool slot_try_take(struct slot_pool *p)
{
	bool taken = false;

	pthread_mutex_lock(&p->lock);
	if (p->free > 0) {
		p->free--;
		taken = true;
	}
	pthread_mutex_unlock(&p->lock);
	if (taken)
		atomic_fetch_add(&p->running, 1);
	return taken;
}

/* Gives w a slot (under the lock): slot_wait_end() sees granted.  The
 * wake itself, wake(), is written after the lock is let go: written
 * under it, the woken waiter ran at once into the lock still held, and
 * the two threads met again in futex() (at 32 clients about one wait
 * and one wake a request, measured). */
static int hand_over(struct slot_waiter *w)
{
	w->granted = true;
	return w->efd;
}

/* Wakes the waiter whose slot it now is: its eventfd turns readable. */
static void wake(int efd)
{
	uint64_t one = 1;

	if (efd >= 0 && write(efd, &one, sizeof(one)) < 0) {
		/* Cannot fail on a fresh eventfd; the waiter's poll timeout
		 * would find granted set anyway (slot_wait_end()). */
	}
}

void slot_wait_begin(struct slot_pool *p, struct slot_waiter *w)
{
	int efd = -1;

	w->granted = false;
	w->next = NULL;
	pthread_mutex_lock(&p->lock);
	if (p->free > 0) {
		/* One came free since slot_try_take(): the caller polls
		 * before it looks, so it is woken like any other waiter. */
		p->free--;
		efd = hand_over(w);
	} else if (p->tail) {
		p->tail->next = w;
		p->tail = w;
	} else {
		p->head = p->tail = w;
	}
	pthread_mutex_unlock(&p->lock);
	wake(efd);
	atomic_fetch_add(&p->queued, 1);
}

/* Empties w's eventfd after a hand-over, for its next wait.  The wake
 * is written after the hand-over's lock is let go: a waiter that looked
 * for another reason (its time was up, its peer) may be here before it,
 * and waits for it, without a limit: nothing between that unlock and the
 * write can fail, and a wake left to land later would end this worker's
 * next wait at once, a false 503 (or hit its fd, reused after it exits). */
static void consume_wake(struct slot_waiter *w)
{
	uint64_t v;
	struct pollfd pfd = { .fd = w->efd, .events = POLLIN };

	while (read(w->efd, &v, sizeof(v)) < 0 && (errno == EAGAIN || errno == EINTR))
		poll(&pfd, 1, -1);
}

bool slot_wait_end(struct slot_pool *p, struct slot_waiter *w)
{
	bool granted;

	pthread_mutex_lock(&p->lock);
	granted = w->granted;
	if (!granted) {
		struct slot_waiter **pp = &p->head, *prev = NULL;
		while (*pp && *pp != w) {
			prev = *pp;
			pp = &(*pp)->next;
		}
		if (*pp) {
			*pp = w->next;
			if (p->tail == w)
				p->tail = prev;
		}
	}
	pthread_mutex_unlock(&p->lock);
	/* Empty again for the waiter's next wait: written to once, and only
	 * if a slot was handed over. */
	if (granted)
		consume_wake(w);
	atomic_fetch_sub(&p->queued, 1);
	if (granted)
		atomic_fetch_add(&p->running, 1);
	return granted;
}

void slot_release(struct slot_pool *p)
{
	struct slot_waiter *w;
	int efd = -1;

	atomic_fetch_sub(&p->running, 1);
	pthread_mutex_lock(&p->lock);
	w = p->head;
	if (w) {
		p->head = w->next;
		if (!p->head)
			p->tail = NULL;
		efd = hand_over(w);
	} else {
		p->free++;
	}
	pthread_mutex_unlock(&p->lock);
	wake(efd);
}
