/* Worker threads.  A connection is served start to end by one thread;
 * threads are started on demand up to the maximum and then kept, so a busy
 * daemon creates none per request and an idle one holds only the threads it
 * once needed (each with a small stack and two reusable buffers). */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "request.h"
#include "stats.h"
#include "workers.h"

/* Plenty for the relay's call depth; the default 8 MiB would only cost
 * address space, but a small one makes thread creation cheaper too. */
#define WORKER_STACK_SIZE (256 * 1024)
/* A worker idle this long exits. */
#define WORKER_IDLE_EXIT_S 10

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t work_ready;
static int *queue; /* ring of accepted fds waiting for a worker */
static unsigned queue_cap, queue_head, queue_len;
static unsigned active, threads;
/* Workers inside a connection that is not ending yet.  threads - busy are
 * idle, just started, or about to loop back: all about to take work. */
static unsigned busy;
static int done_fd = -1, stop_fd = -1, kill_fd = -1;

/* Script slots (-c): taken before a script starts, given back at the end
 * of its request. */
static pthread_cond_t slot_free;
static unsigned slots_free;
static bool killed;
static bool stopping;

int workers_init(unsigned max_connections, unsigned max_scripts)
{
	pthread_condattr_t ca;

	queue = calloc(max_connections, sizeof(*queue));
	queue_cap = max_connections;
	slots_free = max_scripts;
	/* Waits are timed on the monotonic clock, as every timeout. */
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&slot_free, &ca);
	pthread_cond_init(&work_ready, &ca);
	pthread_condattr_destroy(&ca);
	done_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	kill_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (!queue || done_fd < 0 || stop_fd < 0 || kill_fd < 0)
		return -1;
	return 0;
}

int workers_acquire_script_slot(int timeout_ms)
{
	struct timespec until;
	int rc = 0;

	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += timeout_ms / 1000;
	until.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
	if (until.tv_nsec >= 1000000000) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&lock);
	while (slots_free == 0 && !killed && rc == 0)
		rc = pthread_cond_timedwait(&slot_free, &lock, &until);
	if (killed) {
		rc = -2;
	} else if (slots_free > 0) {
		slots_free--;
		rc = 0;
	} else {
		rc = -1;
	}
	pthread_mutex_unlock(&lock);
	return rc;
}

void workers_release_script_slot(void)
{
	pthread_mutex_lock(&lock);
	slots_free++;
	pthread_cond_signal(&slot_free);
	pthread_mutex_unlock(&lock);
}

static void *worker_main(void *arg)
{
	struct worker_buffers wb;
	uint64_t one = 1;

	(void)arg;
	if (worker_buffers_init(&wb) < 0)
		log_errx("worker: out of memory");
	pthread_mutex_lock(&lock);
	for (;;) {
		int fd;
		while (queue_len == 0) {
			struct timespec until;
			int rc;
			clock_gettime(CLOCK_MONOTONIC, &until);
			until.tv_sec += WORKER_IDLE_EXIT_S;
			rc = pthread_cond_timedwait(&work_ready, &lock, &until);
			if (rc == ETIMEDOUT && queue_len == 0) {
				/* Idle long enough: give back the thread and its
				 * buffers; a busy period starts new ones. */
				threads--;
				pthread_mutex_unlock(&lock);
				worker_buffers_free(&wb);
				return NULL;
			}
		}
		fd = queue[queue_head];
		queue_head = (queue_head + 1) % queue_cap;
		queue_len--;
		busy++;
		pthread_mutex_unlock(&lock);

		atomic_fetch_add(&stats.connections, 1);
		if (wb.io)
			serve_connection(fd, &wb);
		else
			close(fd);

		atomic_fetch_sub(&stats.connections, 1);
		pthread_mutex_lock(&lock);
		/* The main loop only waits for this when it stopped accepting
		 * at the limit, or is stopping: no wake-up per request. */
		if ((active-- == queue_cap || stopping) && write(done_fd, &one, sizeof(one)) < 0) {
			/* The counter cannot overflow in practice; nothing to do. */
		}
	}
	return NULL;
}

int workers_submit(int fd)
{
	int rc = 0;

	pthread_mutex_lock(&lock);
	if (queue_len == queue_cap) {
		pthread_mutex_unlock(&lock);
		return -1;
	}
	queue[(queue_head + queue_len) % queue_cap] = fd;
	queue_len++;
	active++;
	/* A new thread only if the threads not busy cannot take the queue:
	 * a worker finishing its connection takes the next one within
	 * microseconds, and starting a thread for it would only add one. */
	if (threads - busy < queue_len) {
		pthread_attr_t attr;
		pthread_t tid;
		pthread_attr_init(&attr);
		pthread_attr_setstacksize(&attr, WORKER_STACK_SIZE);
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		rc = pthread_create(&tid, &attr, worker_main, NULL);
		pthread_attr_destroy(&attr);
		if (rc == 0) {
			threads++;
		} else if (threads == 0) {
			/* No thread at all to take it: give it back. */
			queue_len--;
			active--;
			pthread_mutex_unlock(&lock);
			errno = rc;
			return -1;
		}
		/* Otherwise a busy worker will take it when done. */
	}
	pthread_cond_signal(&work_ready);
	pthread_mutex_unlock(&lock);
	return 0;
}

unsigned workers_active(void)
{
	unsigned n;
	pthread_mutex_lock(&lock);
	n = active;
	pthread_mutex_unlock(&lock);
	return n;
}

int workers_done_fd(void)
{
	return done_fd;
}

void workers_ack_done(void)
{
	uint64_t v;
	if (read(done_fd, &v, sizeof(v)) < 0) {
		/* EAGAIN: nothing new. */
	}
}

void workers_connection_ending(void)
{
	pthread_mutex_lock(&lock);
	busy--;
	pthread_mutex_unlock(&lock);
}

int workers_stop_fd(void)
{
	return stop_fd;
}

int workers_kill_fd(void)
{
	return kill_fd;
}

void workers_stop(void)
{
	uint64_t one = 1;

	pthread_mutex_lock(&lock);
	stopping = true;
	pthread_mutex_unlock(&lock);
	if (write(stop_fd, &one, sizeof(one)) < 0)
		log_warn("cannot wake idle connections");
}

void workers_kill(void)
{
	uint64_t one = 1;
	pthread_mutex_lock(&lock);
	killed = true;
	pthread_cond_broadcast(&slot_free);
	pthread_mutex_unlock(&lock);
	if (write(kill_fd, &one, sizeof(one)) < 0)
		log_warn("cannot wake running requests");
}
