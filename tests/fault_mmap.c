/* An LD_PRELOAD shim for one black-box test: while the file named by
 * FAULT_MMAP_FLAG exists, the daemon's own anonymous mappings of at least
 * FAULT_MMAP_MIN bytes fail with ENOMEM.  Only calls from the program go
 * through here (glibc's own, for thread stacks and malloc, do not), so it
 * is the worker buffers' mapping that fails, as when memory runs out. */
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/types.h>
#include <unistd.h>

void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off);

void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	static void *(*real)(void *, size_t, int, int, int, off_t);
	const char *flag = getenv("FAULT_MMAP_FLAG"), *min = getenv("FAULT_MMAP_MIN");

	if (flag && min && (flags & MAP_ANONYMOUS) && len >= strtoul(min, NULL, 10) && access(flag, F_OK) == 0) {
		errno = ENOMEM;
		return MAP_FAILED;
	}
	if (!real)
		*(void **)&real = dlsym(RTLD_NEXT, "mmap");
	return real(addr, len, prot, flags, fd, off);
}
