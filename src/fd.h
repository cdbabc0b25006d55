/* Closing an fd that a struct holds. */
#ifndef FCGIWRAP_FD_H
#define FCGIWRAP_FD_H

#include <unistd.h>

/* Closes *fd if it is open, and marks it closed (-1). */
static inline void fd_close(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

#endif
