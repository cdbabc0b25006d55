/* The main loop's timers: due times, periods, and the poll timeout they
 * add up to.  Pure: the time is passed in. */
#include "config.h"

#include <limits.h>

#include "timers.h"

void timer_start(struct timer *t, long long due)
{
	t->armed = true;
	t->due = due;
}

void timer_stop(struct timer *t)
{
	t->armed = false;
}

bool timer_fire(struct timer *t, long long now)
{
	if (!t->armed || now < t->due)
		return false;
	if (t->period == TIMER_ONCE)
		t->armed = false;
	else
		t->due = now + t->period;
	return true;
}

int timers_poll_timeout(const struct timer *t, size_t n, long long now)
{
	bool any = false;
	long long nearest = 0;

	for (size_t i = 0; i < n; i++) {
		if (t[i].armed && (!any || t[i].due < nearest)) {
			nearest = t[i].due;
			any = true;
		}
	}
	if (!any)
		return -1;
	if (nearest <= now)
		return 0;
	/* A far due time (a huge WatchdogSec): wake up earlier, not never. */
	return nearest - now > INT_MAX ? INT_MAX : (int)(nearest - now);
}
