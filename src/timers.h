/* The main loop's timers: each is due at a time on the monotonic clock
 * (in ms), and may come back every period.  No clock is read here and
 * nothing is done: the loop passes the time, and does what is due. */
#ifndef FCGIWRAP_TIMERS_H
#define FCGIWRAP_TIMERS_H

#include <stdbool.h>
#include <stddef.h>

/* The period of a timer that fires once, and is disarmed then. */
#define TIMER_ONCE (-1)

struct timer {
	bool armed;       /* only an armed timer wakes the loop and fires;
			   * one disarmed keeps its due time */
	long long due;    /* when it is due, monotonic ms */
	long long period; /* once fired, due again so long after; TIMER_ONCE */
};

/* Arms t, due at due. */
void timer_start(struct timer *t, long long due);

/* Disarms t. */
void timer_stop(struct timer *t);

/* Whether t is armed and due at now.  If so it is due again a period
 * after now (a timer of no period, TIMER_ONCE, is disarmed). */
bool timer_fire(struct timer *t, long long now);

/* poll()'s timeout for the n timers at t: the ms from now until the
 * nearest armed one is due, 0 if one is due already (at most INT_MAX),
 * or -1 when none is armed. */
int timers_poll_timeout(const struct timer *t, size_t n, long long now);

#endif
