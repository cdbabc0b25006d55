/* Worker threads.  A connection is served start to end by one thread;
 * threads are started on demand up to the maximum and then kept, so a busy
 * daemon creates none per request and an idle one holds only the threads it
 * once needed (each with a small stack and its buffers, worker_buffers.c).
 *
 * Accepting: idle workers wait together in one epoll set holding the
 * listening sockets, each armed for one event at a time (EPOLLONESHOT), so
 * a connection wakes one idle worker, which accepts it, arms the socket
 * again for the next idle one, and serves what it accepted.  A connection
 * so wakes one thread, where a main thread accepting and handing it over
 * woke two (in a profile at 32 clients the hand-over and its wake-ups took
 * about a tenth of the daemon's CPU).  The main thread accepts only while
 * no worker is idle: before the first, after the last idled out, or while
 * every thread is busy; it then fills the queue below, up to
 * --max-connections, as it always did, and the queue's eventfd in the same
 * set wakes a worker for each connection queued. */
#include "config.h"

#include <errno.h>
#include <malloc.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fcgi_conn.h"
#include "listeners.h"
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
/* What idle workers wait on: the listening sockets (one-shot, their event's
 * data their index + 1) and queue_fd (data 0). */
static int epoll_fd = -1;
/* A semaphore eventfd: one count a connection the main thread queued. */
static int queue_fd = -1;
/* Workers waiting in epoll_wait(). */
static unsigned idle;
/* Workers accepting (between a socket's event and its arming again):
 * workers_stop() waits for none before the sockets are closed. */
static unsigned accepting;
static pthread_cond_t accepts_done;
/* Set when a worker left the sockets unarmed at --max-connections. */
static bool disarmed;
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

/* Arms listening socket i for one event (op: EPOLL_CTL_ADD or _MOD). */
static int arm(int op, size_t i)
{
	struct epoll_event ev = { .events = EPOLLIN | EPOLLONESHOT, .data.u32 = (uint32_t)i + 1 };

	return epoll_ctl(epoll_fd, op, listeners_fd(i), &ev);
}

unsigned workers_max_threads(unsigned max_connections, unsigned max_scripts)
{
	unsigned n = max_scripts + WORKERS_SPARE;

	/* Never more than one a connection: the idle one waiting for the
	 * next is only started below --max-connections. */
	return n < max_connections ? n : max_connections;
}

int workers_init(unsigned max_connections, unsigned max_scripts)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.u32 = 0 };

	max_threads = workers_max_threads(max_connections, max_scripts);
	queue = calloc(max_connections, sizeof(*queue));
	queue_cap = max_connections;
	pthread_cond_init(&accepts_done, NULL);
	done_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	queue_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK | EFD_SEMAPHORE);
	epoll_fd = epoll_create1(EPOLL_CLOEXEC);
	if (!queue || done_fd < 0 || queue_fd < 0 || epoll_fd < 0 ||
	    epoll_ctl(epoll_fd, EPOLL_CTL_ADD, queue_fd, &ev) < 0)
		return -1;
	for (size_t i = 0; i < listeners_count(); i++)
		if (arm(EPOLL_CTL_ADD, i) < 0)
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

/* Wakes the main loop: it looks at the pool again. */
static void wake_main(void)
{
	uint64_t one = 1;

	if (write(done_fd, &one, sizeof(one)) < 0) {
		/* The counter cannot overflow in practice; nothing to do. */
	}
}

/* A connection has closed (the lock held).  The main loop only waits for
 * this when it stopped accepting at the limit, is stopping, or counts
 * idle time for --idle-exit from the last close: no wake-up per request. */
static void connection_closed(void)
{
	bool was_full = active == queue_cap;

	active--;
	if (was_full && disarmed && !stopping) {
		disarmed = false;
		for (size_t i = 0; i < listeners_count(); i++)
			arm(EPOLL_CTL_MOD, i);
	}
	if (was_full || stopping || (active == 0 && cfg.idle_exit_ms))
		wake_main();
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
	/* It may have been started to wait for the next connection: the
	 * main loop does. */
	wake_main();
	pthread_mutex_unlock(&lock);
	return worker_exit(me);
}

static int start_worker(void);

/* The end of an idle worker (the lock held, and released): gives back
 * the thread and its buffers; a busy period starts new ones. */
static void *idle_exit(struct worker_stack *me, struct worker_buffers *wb)
{
	bool last = --threads == 0;

	/* Nobody left to accept: the main loop does. */
	if (idle == 0)
		wake_main();
	pthread_mutex_unlock(&lock);
	worker_buffers_free(wb);
	/* What the burst's requests left free in malloc's arenas goes back
	 * too. */
	if (last)
		malloc_trim(0);
	return worker_exit(me);
}

#define WAIT_IDLE (-2)

/* Takes a connection the main thread queued, if one is left (the lock
 * held; its count was read). */
static int from_queue(void)
{
	return queue_len > 0 ? dequeue() : -1;
}

/* Queues fd behind the connections the main thread queued (the lock
 * held, and room in the queue), and counts it for the workers. */
static void enqueue(int fd)
{
	queue[(queue_head + queue_len) % queue_cap] = fd;
	queue_len++;
	if (write(queue_fd, &(uint64_t){ 1 }, sizeof(uint64_t)) < 0) {
		/* Cannot overflow: at most queue_cap counts. */
	}
}

/* Accepts on listening socket i, whose event this worker got, and arms
 * it again for the next (the lock held, released meanwhile).  Returns the
 * connection to serve, or -1. */
static int accept_on(size_t i)
{
	bool backoff = false;
	int fd;

	if (stopping)
		return -1; /* the sockets are being closed */
	if (active >= queue_cap) {
		/* At --max-connections: armed again when one closes. */
		disarmed = true;
		return -1;
	}
	active++; /* the place taken before the lock is let go */
	accepting++;
	pthread_mutex_unlock(&lock);
	fd = listeners_accept(i, &backoff);
	if (backoff)
		poll(NULL, 0, 100); /* let fds come back */
	arm(EPOLL_CTL_MOD, i);
	pthread_mutex_lock(&lock);
	if (--accepting == 0 && stopping)
		pthread_cond_broadcast(&accepts_done);
	if (fd < 0) {
		connection_closed();
		return -1;
	}
	/* Older connections first: those the main thread queued came in
	 * before this one.  (There is room: this one's place was reserved,
	 * and the queue holds only reserved ones.) */
	if (queue_len > 0 && queue_len < queue_cap) {
		enqueue(fd);
		fd = dequeue();
	}
	return fd;
}

/* An idle worker's wait (the lock held, released meanwhile), at most
 * WORKER_IDLE_EXIT_S.  Returns a connection to serve, -1 without one, or
 * WAIT_IDLE when the time was up. */
static int wait_for_work(void)
{
	struct epoll_event ev;
	uint64_t one;
	int n;

	idle++;
	pthread_mutex_unlock(&lock);
	n = epoll_wait(epoll_fd, &ev, 1, WORKER_IDLE_EXIT_S * 1000);
	if (n == 1 && ev.data.u32 == 0 && read(queue_fd, &one, sizeof(one)) < 0)
		n = -1; /* another worker took the count */
	pthread_mutex_lock(&lock);
	idle--;
	if (n == 0)
		return WAIT_IDLE;
	if (n < 0)
		return -1;
	return ev.data.u32 == 0 ? from_queue() : accept_on(ev.data.u32 - 1);
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
		int fd = wait_for_work();
		if (fd == WAIT_IDLE && queue_len == 0)
			return idle_exit(arg, &wb);
		if (fd < 0)
			continue;
		/* Someone must wait for the next connection: an idle worker,
		 * else a new one, else the main loop (which queues what it
		 * accepts).  The main loop does not look while a worker is idle,
		 * and this one was.  None at --max-connections: the worker of
		 * the next connection to close waits then. */
		if (idle == 0 && !stopping && active < queue_cap &&
		    (threads >= max_threads || start_worker() != 0))
			wake_main();
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

bool workers_reserve(void)
{
	bool ok;

	pthread_mutex_lock(&lock);
	ok = !stopping && active < queue_cap;
	if (ok)
		active++;
	pthread_mutex_unlock(&lock);
	return ok;
}

void workers_unreserve(void)
{
	pthread_mutex_lock(&lock);
	connection_closed();
	pthread_mutex_unlock(&lock);
}

int workers_submit(int fd)
{
	int rc = 0;

	pthread_mutex_lock(&lock);
	/* Its place was reserved, so the queue has room. */
	enqueue(fd);
	/* A new thread only if the threads not busy cannot take the queue:
	 * a worker finishing its connection takes the next one within
	 * microseconds, and starting a thread for it would only add one. */
	if (threads - busy < queue_len && threads < max_threads) {
		rc = start_worker();
		if (rc != 0 && threads == 0) {
			/* No thread at all to take it: give it back (and its
			 * place: the caller closes it). */
			queue_len--;
			connection_closed();
			pthread_mutex_unlock(&lock);
			errno = rc;
			return -1;
		}
		/* Otherwise a busy worker will take it when done. */
	}
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

unsigned workers_idle(void)
{
	unsigned n;
	pthread_mutex_lock(&lock);
	n = idle;
	pthread_mutex_unlock(&lock);
	return n;
}

/* No worker accepts from now on, and none is accepting when this returns
 * (the lock held). */
static void stop_accepting(void)
{
	stopping = true;
	for (size_t i = 0; i < listeners_count(); i++)
		epoll_ctl(epoll_fd, EPOLL_CTL_DEL, listeners_fd(i), NULL);
	while (accepting > 0)
		pthread_cond_wait(&accepts_done, &lock);
}

bool workers_stop_if_idle(void)
{
	bool idle_now;

	pthread_mutex_lock(&lock);
	/* A worker reserves its place before it accepts: with none taken,
	 * none is accepting, and from here on none will. */
	idle_now = active == 0;
	if (idle_now)
		stop_accepting();
	pthread_mutex_unlock(&lock);
	return idle_now;
}

void workers_stop(void)
{
	pthread_mutex_lock(&lock);
	/* The listening sockets are closed next: out of the set first, and
	 * no worker accepting on them by then. */
	stop_accepting();
	pthread_mutex_unlock(&lock);
	stopping_begin();
}

void workers_kill(void)
{
	stopping_end_requests();
}
