/* A worker's buffers (see worker_buffers.h).
 *
 * All four share one anonymous mapping: pages are only taken when touched,
 * and all of it goes back to the system when an idle worker exits (malloc
 * would keep it in the thread's arena).  A page with no access on each
 * side makes an overrun fault rather than corrupt, and keeps the mapping
 * apart from its neighbours in /proc/PID/smaps (the kernel merges adjacent
 * mappings of the same kind), where a test finds it by its size. */
#include "config.h"

#include <pthread.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include "worker_buffers.h"

#define BUFFERS_LEN (WB_IO_SIZE + WB_BODY_SIZE + WB_HEAD_SIZE + WB_IN_SIZE)

static size_t page_size(void)
{
	return (size_t)sysconf(_SC_PAGESIZE);
}

static size_t buffers_span(void)
{
	size_t page = page_size();
	return (BUFFERS_LEN + page - 1) / page * page;
}

int worker_buffers_init(struct worker_buffers *wb)
{
	size_t page = page_size(), span = buffers_span();
	char *base = mmap(NULL, span + 2 * page, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *p = base == MAP_FAILED ? NULL : base + page;

	wb->wake_fd = p ? eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK) : -1;
	if (p && (wb->wake_fd < 0 || mprotect(p, span, PROT_READ | PROT_WRITE) < 0)) {
		munmap(base, span + 2 * page);
		p = NULL;
	}
	if (!p) {
		if (wb->wake_fd >= 0)
			close(wb->wake_fd);
		wb->wake_fd = -1;
		wb->io = wb->body = NULL;
		wb->head = wb->in = NULL;
		return -1;
	}
	wb->io = p;
	wb->body = p + WB_IO_SIZE;
	wb->head = (unsigned char *)p + WB_IO_SIZE + WB_BODY_SIZE;
	wb->in = wb->head + WB_HEAD_SIZE;
	return 0;
}

void worker_buffers_trim(struct worker_buffers *wb)
{
	madvise(wb->io, buffers_span(), MADV_DONTNEED);
}

void worker_buffers_trim_idle(struct worker_buffers *wb, bool input_empty)
{
	madvise(wb->io, WB_IO_SIZE, MADV_DONTNEED);
	if (input_empty)
		madvise(wb->in, WB_IN_SIZE, MADV_DONTNEED);
}

void worker_buffers_free(struct worker_buffers *wb)
{
	if (wb->io)
		munmap(wb->io - page_size(), buffers_span() + 2 * page_size());
	if (wb->wake_fd >= 0)
		close(wb->wake_fd);
	wb->wake_fd = -1;
	wb->io = wb->body = NULL;
	wb->head = wb->in = NULL;
}

void worker_stack_trim(void)
{
	static __thread char *low; /* the thread's stack's lowest address */
	char here;
	size_t page = page_size();
	char *end;

	if (!low) {
		pthread_attr_t attr;
		void *addr;
		size_t size;
		if (pthread_getattr_np(pthread_self(), &attr) != 0)
			return;
		if (pthread_attr_getstack(&attr, &addr, &size) == 0)
			low = addr;
		pthread_attr_destroy(&attr);
		if (!low)
			return;
	}
	/* The page of this frame stays, for the calls about to follow. */
	end = (char *)((uintptr_t)&here & ~(uintptr_t)(page - 1));
	if (end > low)
		madvise(low, (size_t)(end - low), MADV_DONTNEED);
}
