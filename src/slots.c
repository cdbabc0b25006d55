/* Script slots (see slots.h).  A slot given back goes straight to the
 * request that has waited longest, so a request arriving meanwhile cannot
 * take it first, and slots are only free while nobody waits. */
#include "config.h"

#include <pthread.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "slots.h"

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned free_slots;
static struct slot_waiter *head, *tail;

void slots_init(unsigned n)
{
	free_slots = n;
}

bool slots_try_take(void)
{
	bool taken = false;

	pthread_mutex_lock(&lock);
	if (free_slots > 0) {
		free_slots--;
		taken = true;
	}
	pthread_mutex_unlock(&lock);
	return taken;
}

int slots_wait_begin(struct slot_waiter *w)
{
	w->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	w->granted = false;
	w->next = NULL;
	if (w->efd < 0)
		return -1;
	pthread_mutex_lock(&lock);
	if (free_slots > 0) {
		/* One came free since slots_try_take(). */
		free_slots--;
		w->granted = true;
	} else if (tail) {
		tail->next = w;
		tail = w;
	} else {
		head = tail = w;
	}
	pthread_mutex_unlock(&lock);
	return 0;
}

bool slots_wait_end(struct slot_waiter *w)
{
	bool granted;

	pthread_mutex_lock(&lock);
	granted = w->granted;
	if (!granted) {
		struct slot_waiter **pp = &head, *prev = NULL;
		while (*pp && *pp != w) {
			prev = *pp;
			pp = &(*pp)->next;
		}
		if (*pp) {
			*pp = w->next;
			if (tail == w)
				tail = prev;
		}
	}
	pthread_mutex_unlock(&lock);
	close(w->efd);
	w->efd = -1;
	return granted;
}

void slots_release(void)
{
	struct slot_waiter *w;
	uint64_t one = 1;

	pthread_mutex_lock(&lock);
	w = head;
	if (w) {
		head = w->next;
		if (!head)
			tail = NULL;
		w->granted = true;
		/* Under the lock: the waiter closes its eventfd only after
		 * taking the lock in slots_wait_end(). */
		if (write(w->efd, &one, sizeof(one)) < 0) {
			/* Cannot fail on a fresh eventfd; the waiter's poll
			 * timeout would find granted set anyway. */
		}
	} else {
		free_slots++;
	}
	pthread_mutex_unlock(&lock);
}
