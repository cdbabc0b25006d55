/* Worker threads.  A connection is accepted and then served start to end
 * by the same thread: idle workers wait on one epoll set holding the
 * listening sockets, each armed for one wake-up at a time (EPOLLONESHOT),
 * so a new connection wakes exactly one idle worker and nothing is handed
 * from thread to thread.
 *
 * Threads are started on demand: the worker that takes a connection
 * starts another one when it was the last idle worker, up to the
 * connection limit.  A busy daemon creates none per request; a worker idle
 * for WORKER_IDLE_EXIT_S exits unless it is the last idle one, which must
 * stay to accept. */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/epoll.h>
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
/* A worker idle this long exits (unless it is the last idle one). */
#define WORKER_IDLE_EXIT_S 10
/* After running out of fds, a listener is looked at again this much
 * later (by one worker: the others are not woken meanwhile). */
#define ACCEPT_BACKOFF_MS 100
/* epoll data of the stop eventfd; listeners use their index. */
#define STOP_TAG UINT32_MAX

/* lock: thread creation and exit, script slots.  accept_lock: held for
 * reading around each accept, for writing by workers_stop(), so that no
 * listener is used once the stop has begun.  The counters are atomic so
 * that taking a connection needs neither in the common case. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_rwlock_t accept_lock = PTHREAD_RWLOCK_INITIALIZER;
static workers_accept_fn accept_one;
static int epfd = -1;
static int listener_fds[WORKERS_MAX_LISTENERS];
static unsigned n_listeners;
static unsigned max_threads;
static atomic_uint active;  /* connections being served */
static unsigned threads;    /* worker threads alive (lock) */
static atomic_uint idle;    /* of them, waiting for a connection */
static atomic_bool stopping;
static int done_fd = -1, stop_fd = -1, kill_fd = -1;

/* Script slots (-c): taken before a script starts, given back at the end
 * of its request. */
static pthread_cond_t slot_free;
static unsigned slots_free;
static bool killed;

int workers_init(unsigned max_connections, unsigned max_scripts, workers_accept_fn fn)
{
	pthread_condattr_t ca;
	struct epoll_event ev = { .events = EPOLLIN, .data.u32 = STOP_TAG };

	max_threads = max_connections;
	accept_one = fn;
	slots_free = max_scripts;
	/* Waits are timed on the monotonic clock, as every timeout. */
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&slot_free, &ca);
	pthread_condattr_destroy(&ca);
	done_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	kill_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	epfd = epoll_create1(EPOLL_CLOEXEC);
	if (done_fd < 0 || stop_fd < 0 || kill_fd < 0 || epfd < 0)
		return -1;
	/* Level-triggered and not one-shot: once stopping, every idle
	 * worker sees it. */
	return epoll_ctl(epfd, EPOLL_CTL_ADD, stop_fd, &ev);
}

static int arm(unsigned i, int op)
{
	struct epoll_event ev = { .events = EPOLLIN | EPOLLONESHOT, .data.u32 = i };
	return epoll_ctl(epfd, op, listener_fds[i], &ev);
}

int workers_add_listener(int fd)
{
	if (n_listeners == WORKERS_MAX_LISTENERS)
		return -1;
	listener_fds[n_listeners] = fd;
	return arm(n_listeners++, EPOLL_CTL_ADD);
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

static void *worker_main(void *arg);

/* Starts one more worker.  Called with the lock held. */
static int start_thread(void)
{
	pthread_attr_t attr;
	pthread_t tid;
	int rc;

	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, WORKER_STACK_SIZE);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	rc = pthread_create(&tid, &attr, worker_main, NULL);
	pthread_attr_destroy(&attr);
	if (rc == 0)
		threads++;
	return rc;
}

/* Takes a connection from listener i, which woke this worker, and
 * re-arms the listener.  Returns the fd or -1. */
static int take_connection(unsigned i)
{
	bool backoff = false;
	int fd = -1;

	pthread_rwlock_rdlock(&accept_lock);
	if (!atomic_load(&stopping))
		fd = accept_one(i, &backoff);
	if (backoff) {
		/* Out of fds: wait before this listener can wake anyone
		 * again, rather than spin on it. */
		pthread_rwlock_unlock(&accept_lock);
		poll(NULL, 0, ACCEPT_BACKOFF_MS);
		pthread_rwlock_rdlock(&accept_lock);
	}
	/* Re-armed after one accept: another connection waiting there
	 * wakes the next idle worker. */
	if (!atomic_load(&stopping) && arm(i, EPOLL_CTL_MOD) < 0)
		log_warn("cannot watch a listening socket");
	pthread_rwlock_unlock(&accept_lock);
	if (fd < 0)
		return -1;
	atomic_fetch_add(&active, 1);
	/* This was the last idle worker: start the next one, which will
	 * accept while this one serves. */
	if (atomic_load(&idle) == 0) {
		pthread_mutex_lock(&lock);
		if (atomic_load(&idle) == 0 && threads < max_threads && start_thread() != 0)
			log_warnx("cannot start a worker thread; new connections wait for a busy one");
		pthread_mutex_unlock(&lock);
	}
	return fd;
}

static void *worker_main(void *arg)
{
	struct worker_buffers wb;
	uint64_t one = 1;

	(void)arg;
	if (worker_buffers_init(&wb) < 0)
		log_errx("worker: out of memory");
	for (;;) {
		struct epoll_event ev;
		int n, fd;

		atomic_fetch_add(&idle, 1);
		n = epoll_wait(epfd, &ev, 1, WORKER_IDLE_EXIT_S * 1000);
		atomic_fetch_sub(&idle, 1);
		if (atomic_load(&stopping))
			break;
		if (n == 0) {
			/* Idle long enough: exit if another thread not serving a
			 * connection remains to accept.  Counted under the lock,
			 * so that of two leaving at once one stays. */
			bool leave;
			pthread_mutex_lock(&lock);
			leave = threads - atomic_load(&active) > 1;
			if (leave)
				threads--;
			pthread_mutex_unlock(&lock);
			if (leave)
				goto out;
			continue;
		}
		if (n < 0 || ev.data.u32 == STOP_TAG)
			continue;
		fd = take_connection(ev.data.u32);
		if (fd < 0)
			continue;

		atomic_fetch_add(&stats.connections, 1);
		if (wb.io)
			serve_connection(fd, &wb);
		else
			close(fd);
		atomic_fetch_sub(&stats.connections, 1);

		atomic_fetch_sub(&active, 1);
		/* Only a stopping daemon waits for connections to end. */
		if (atomic_load(&stopping) && write(done_fd, &one, sizeof(one)) < 0) {
			/* The counter cannot overflow in practice; nothing to do. */
		}
	}
	pthread_mutex_lock(&lock);
	threads--;
	pthread_mutex_unlock(&lock);
out:
	/* Give back the thread and its buffers; a busy period starts new
	 * ones. */
	worker_buffers_free(&wb);
	return NULL;
}

int workers_start(void)
{
	int rc;

	pthread_mutex_lock(&lock);
	rc = start_thread();
	pthread_mutex_unlock(&lock);
	return rc == 0 ? 0 : -1;
}

unsigned workers_active(void)
{
	return atomic_load(&active);
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

	pthread_rwlock_wrlock(&accept_lock);
	atomic_store(&stopping, true);
	for (unsigned i = 0; i < n_listeners; i++)
		epoll_ctl(epfd, EPOLL_CTL_DEL, listener_fds[i], NULL);
	pthread_rwlock_unlock(&accept_lock);
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
