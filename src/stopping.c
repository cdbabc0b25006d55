/* The stop as workers see it (see stopping.h).  An eventfd written once
 * stays readable: every poll() that includes it returns, in any thread,
 * with no list of waiters to keep. */
#include "config.h"

#include <stdint.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "log.h"
#include "stopping.h"

static int stop_fd = -1, kill_fd = -1;

int stopping_init(void)
{
	stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	kill_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	return stop_fd < 0 || kill_fd < 0 ? -1 : 0;
}

static void raise_fd(int fd, const char *what)
{
	uint64_t one = 1;

	if (write(fd, &one, sizeof(one)) < 0)
		log_warn("cannot wake %s", what);
}

void stopping_begin(void)
{
	raise_fd(stop_fd, "idle connections");
}

int stopping_stop_fd(void)
{
	return stop_fd;
}

void stopping_end_requests(void)
{
	raise_fd(kill_fd, "running requests");
}

int stopping_kill_fd(void)
{
	return kill_fd;
}
