/* Admission (see admission.h): the slot pools of slots.c, as a request
 * takes and gives back its slots, with the figures of the status page
 * and the log lines of an overload. */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <stdatomic.h>

#include "admission.h"
#include "clock.h"
#include "log.h"
#include "script_classes.h"
#include "settings.h"
#include "slots.h"
#include "stats.h"

/* Set while requests time out waiting for a -c slot. */
static atomic_bool overloaded;
/* Places of the scripts starting (--start-limit): CPU-bound starts take
 * their turns in arrival order instead of all competing at once, which
 * leaves the unlucky ones of a burst waiting longest (the p99). */
static struct slot_pool start_gate;

void admission_init(unsigned start_limit)
{
	slot_pool_init(&start_gate, start_limit);
}

/* Takes one of pool's slots, waiting in its queue until `until` if none is
 * free, with w watched meanwhile.  Returns 1 with the slot, 0 when the
 * time is up, -1 with how the request must end. */
static int take_from(struct slot_pool *pool, long long until, const struct admission_wait *w,
		     enum request_end *end, const char **why)
{
	struct slot_waiter me = { .efd = w->wake_fd };
	int rc = 0;

	if (slot_try_take(pool))
		return 1;
	slot_wait_begin(pool, &me);
	atomic_fetch_add(&stats.queued, 1);
	for (;;) {
		short events = w->peer->ops->poll_events(w->peer->ctx);
		struct pollfd pfd[3] = { { .fd = me.efd, .events = POLLIN },
					 { .fd = events ? w->peer->fd : -1, .events = events },
					 { .fd = w->stop_fd, .events = POLLIN } };
		long long left = until - monotonic_ms();
		if (left <= 0)
			break;
		if (poll(pfd, 3, (int)left) < 0 && errno != EINTR)
			break;
		if (pfd[0].revents)
			break;
		if (pfd[2].revents) {
			*end = END_STOPPING;
			*why = "the daemon is stopping";
			rc = -1;
			break;
		}
		if (pfd[1].revents && w->service(w->ctx, pfd[1].revents, end, why) < 0) {
			rc = -1;
			break;
		}
	}
	atomic_fetch_sub(&stats.queued, 1);
	if (!slot_wait_end(pool, &me))
		return rc;
	if (rc < 0) {
		slot_release(pool);
		return -1;
	}
	return 1;
}

/* Logs the first 503 of a run of them, and the end of the run. */
static void note_overload(atomic_bool *flag, bool now, const struct script_class *class)
{
	if (now && !atomic_exchange(flag, true)) {
		if (class)
			log_warnx("all %u slots of --script-limit %s stayed busy for --queue-timeout; answering 503 "
				  "until one frees in time", class->pool.limit, class->path);
		else
			log_warnx("all %u script slots (-c) stayed busy for --queue-timeout (or %u scripts kept "
				  "starting: --start-limit); answering 503 until one frees in time",
				  cfg.max_active, start_gate.limit);
	} else if (!now && atomic_exchange(flag, false)) {
		log_info("%s slots are available again", class ? class->path : "script");
	}
}

/* A script slot is held: the status page's figures. */
static void count_running(void)
{
	unsigned running = atomic_fetch_add(&stats.scripts, 1) + 1;
	unsigned max = atomic_load(&stats.max_scripts);

	while (running > max && !atomic_compare_exchange_weak(&stats.max_scripts, &max, running))
		;
}

int admission_take(struct admission *a, struct script_class *class, long long deadline,
		   const struct admission_wait *w, enum request_end *end, const char **why)
{
	long long until = monotonic_ms() + cfg.queue_timeout_ms;
	bool class_full;
	int rc;

	if (deadline && deadline < until)
		until = deadline;
	a->class = class;
	rc = class ? take_from(&class->pool, until, w, end, why) : 1;
	class_full = rc == 0;
	if (rc > 0) {
		a->class_slot = class != NULL;
		if (class)
			note_overload(&class->overloaded, false, class);
		rc = take_from(&script_slots, until, w, end, why);
		if (rc > 0) {
			a->slot = true;
			count_running();
			rc = take_from(&start_gate, until, w, end, why);
			a->starting = rc > 0;
		}
		if (rc <= 0)
			admission_give_back(a);
	}
	if (rc == 0 && deadline && monotonic_ms() >= deadline) {
		*end = END_TIMED_OUT;
		*why = "timed out (-t)";
		return -1;
	}
	if (rc == 0) {
		atomic_fetch_add(&stats.overloaded, 1);
		note_overload(class_full ? &class->overloaded : &overloaded, true, class_full ? class : NULL);
		return 0;
	}
	if (rc < 0)
		return -1;
	note_overload(&overloaded, false, NULL);
	return 1;
}

void admission_started(struct admission *a)
{
	if (a->starting)
		slot_release(&start_gate);
	a->starting = false;
}

void admission_give_back(struct admission *a)
{
	admission_started(a);
	if (a->class_slot)
		slot_release(&a->class->pool);
	if (a->slot) {
		slot_release(&script_slots);
		atomic_fetch_sub(&stats.scripts, 1);
	}
	a->class_slot = a->slot = false;
}
