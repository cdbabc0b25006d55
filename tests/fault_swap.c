/* An LD_PRELOAD shim for one black-box test: each realpath() call of the
 * daemon runs with two directory entries exchanged (FAULT_SWAP_A and
 * FAULT_SWAP_B, renameat2 RENAME_EXCHANGE), and exchanged back after it:
 * a symlink on the script's path that is a plain directory for the length
 * of the call, as an attacker racing the daemon would make it. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>

char *realpath(const char *path, char *resolved);

static void exchange(const char *a, const char *b)
{
	renameat2(AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE);
}

char *realpath(const char *path, char *resolved)
{
	static char *(*real)(const char *, char *);
	const char *a = getenv("FAULT_SWAP_A"), *b = getenv("FAULT_SWAP_B");
	char *r;

	if (!real)
		*(void **)&real = dlsym(RTLD_NEXT, "realpath");
	if (!a || !b)
		return real(path, resolved);
	exchange(a, b);
	r = real(path, resolved);
	exchange(a, b);
	return r;
}
