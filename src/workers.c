/* Worker threads.  A connection is served start to end by one thread;
 * threads are started on demand up to the maximum and then kept, so a busy
 * daemon creates none per request and an idle one holds only the threads it
 * once needed (each with a small stack and its buffers, worker_buffers.c). */
#include "config.h"

#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "fcgi_conn.h"
#include "log.h"
#include "serve.h"
#include "settings.h"
#include "stats.h"
#include "stopping.h"
#include "worker_buffers.h"
#include "workers.h"

/* Plenty for the relay's call depth; the default 8 MiB would only cost
 * address space, but a small one makes thread creation cheaper too. */
#define WORKER_STACK_SIZE (256 * 1024)
/* A worker's stack is mapped here, not by glibc, which would keep the
 * stacks of exited threads in a cache with their top pages resident
 * (about 1.3 MiB after a burst of 300 connections had ended). */
struct worker_stack {
	pthread_t tid;
	void *base;   /* the mapping: a guard page, then the stack */
	size_t len;
};
/* A worker idle this long exits. */
#define WORKER_IDLE_EXIT_S 10
/* Threads beyond -c: for the requests that run no script (the status
 * page, refusals) and those about to.  A thread per connection without
 * a bound would let a burst of connections (1000 at once) cost a thread
 * each, with its stack and buffers, only to wait for a script slot; they
 * wait as accepted sockets instead, in arrival order. */
#define WORKERS_SPARE 64

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t work_ready;
static int *queue; /* ring of accepted fds waiting for a worker */
static unsigned queue_cap, queue_head, queue_len;
static unsigned active, threads, max_threads;
/* Workers inside a connection that is not ending yet.  threads - busy are
 * idle, just started, or about to loop back: all about to take work. */
static unsigned busy;
static int done_fd = -1;
static bool stopping;
/* Set while new workers cannot map their buffers (one line an episode). */
static bool buffers_short;
/* Set while threads cannot be started (one line an episode). */
static bool threads_short;
/* The last worker that exited: the next to exit joins it and unmaps its
 * stack, so that at most one exited worker's stack is left mapped. */
static struct worker_stack *last_exited;

int workers_init(unsigned max_connections, unsigned max_scripts)
{
	pthread_condattr_t ca;

	max_threads = max_scripts + WORKERS_SPARE;
	queue = calloc(max_connections, sizeof(*queue));
	queue_cap = max_connections;
	/* Waits are timed on the monotonic clock, as every timeout. */
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&work_ready, &ca);
	pthread_condattr_destroy(&ca);
	done_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (!queue || done_fd < 0)
		return -1;
	return 0;
}

/* Takes the next queued connection (the lock held). */
static int dequeue(void)
{
	int fd = queue[queue_head];

	queue_head = (queue_head + 1) % queue_cap;
	queue_len--;
	return fd;
}

/* A connection has closed (the lock held).  The main loop only waits for
 * this when it stopped accepting at the limit, is stopping, or counts
 * idle time for --idle-exit from the last close: no wake-up per request. */
static void connection_closed(void)
{
	uint64_t one = 1;
	bool was_full = active == queue_cap;

	active--;
	if ((was_full || stopping || (active == 0 && cfg.idle_exit_ms)) && write(done_fd, &one, sizeof(one)) < 0) {
		/* The counter cannot overflow in practice; nothing to do. */
	}
}

/* The end of a worker thread (the lock not held): joins the worker that
 * exited before it and unmaps that one's stack, then leaves its own for
 * the next. */
static void *worker_exit(struct worker_stack *me)
{
	struct worker_stack *prev;

	pthread_mutex_lock(&lock);
	prev = last_exited;
	last_exited = me;
	pthread_mutex_unlock(&lock);
	if (prev) {
		pthread_join(prev->tid, NULL);
		munmap(prev->base, prev->len);
		free(prev);
	}
	return NULL;
}

/* Serves one connection with this worker's buffers. */
static void serve_one(int fd, struct worker_buffers *wb)
{
	struct fcgi_conn c;

	atomic_fetch_add(&stats.connections, 1);
	fcgi_conn_init(&c, fd, wb->in, WB_IN_SIZE, wb->head, WB_HEAD_SIZE, cfg.max_connections, cfg.peer_timeout_ms,
		       stopping_kill_fd());
	serve_connection(&c, wb);
	/* Counted as available before the close is seen, so that a waiting
	 * connection handed over at once finds this thread. */
	pthread_mutex_lock(&lock);
	busy--;
	pthread_mutex_unlock(&lock);
	fcgi_conn_close(&c);
	atomic_fetch_sub(&stats.connections, 1);
}

/* A worker that could not map its buffers: closes what waits in the queue
 * (the web server sees the connections fail, not hang), then exits, so
 * that a later connection starts a thread that tries again.  All under the
 * lock, and no longer counted as a thread from the start: a connection
 * submitted meanwhile must find it gone (and start a thread of its own),
 * not find it idle and be closed by it after memory came back. */
static void *worker_without_buffers(struct worker_stack *me, int err)
{
	unsigned closed = 0;

	pthread_mutex_lock(&lock);
	threads--;
	while (queue_len > 0) {
		close(dequeue());
		closed++;
		connection_closed();
	}
	if (!buffers_short)
		log_errx("cannot map a worker's buffers (%s); closed %u connection(s)", strerror(err), closed);
	buffers_short = true;
	pthread_mutex_unlock(&lock);
	return worker_exit(me);
}

static void *worker_main(void *arg)
{
	struct worker_buffers wb;

	if (worker_buffers_init(&wb) < 0)
		return worker_without_buffers(arg, errno);
	pthread_mutex_lock(&lock);
	if (buffers_short) {
		buffers_short = false;
		log_info("workers can map their buffers again");
	}
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
				bool last = --threads == 0;
				pthread_mutex_unlock(&lock);
				worker_buffers_free(&wb);
				/* What the burst's requests left free in
				 * malloc's arenas goes back too. */
				if (last)
					malloc_trim(0);
				return worker_exit(arg);
			}
		}
		fd = dequeue();
		busy++;
		pthread_mutex_unlock(&lock);
		serve_one(fd, &wb);
		pthread_mutex_lock(&lock);
		connection_closed();
	}
	return NULL;
}

/* Starts a worker (the lock held).  Returns 0 or an errno value; a
 * failure is logged once per episode. */
static int start_worker(void)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	struct worker_stack *ws = malloc(sizeof(*ws));
	pthread_attr_t attr;
	int rc = ENOMEM;

	if (ws) {
		ws->len = WORKER_STACK_SIZE + page;
		ws->base = mmap(NULL, ws->len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
		rc = ws->base == MAP_FAILED ? errno : 0;
	}
	if (rc == 0) {
		/* The lowest page faults: an overflow cannot reach the
		 * mapping below. */
		mprotect(ws->base, page, PROT_NONE);
		pthread_attr_init(&attr);
		pthread_attr_setstack(&attr, (char *)ws->base + page, WORKER_STACK_SIZE);
		rc = pthread_create(&ws->tid, &attr, worker_main, ws);
		pthread_attr_destroy(&attr);
		if (rc != 0)
			munmap(ws->base, ws->len);
	}
	if (rc != 0)
		free(ws);
	if (rc == 0) {
		threads++;
		if (threads_short)
			log_info("worker threads can be started again");
		threads_short = false;
	} else if (!threads_short) {
		threads_short = true;
		log_errx("cannot start a worker thread: %s (%u running; connections wait for them)", strerror(rc),
			 threads);
	}
	return rc;
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
	if (threads - busy < queue_len && threads < max_threads) {
		rc = start_worker();
		if (rc != 0 && threads == 0) {
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

void workers_stop(void)
{
	pthread_mutex_lock(&lock);
	stopping = true;
	pthread_mutex_unlock(&lock);
	stopping_begin();
}

void workers_kill(void)
{
	stopping_end_requests();
}
