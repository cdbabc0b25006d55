/* libsystemd on demand.
 *
 * The daemon needs four functions of libsystemd, and only under systemd.
 * Debian 12's libsystemd links libgcrypt, libgpg-error, liblzma, libzstd,
 * liblz4 and libcap, whose pages were about 1 MiB of the daemon's 2.9 MiB
 * idle RSS; started any other way (a terminal, runit, a container, spawn-
 * fcgi) the daemon now maps none of them.  Under systemd it is loaded at
 * start and used exactly as if linked. */
#include "config.h"

#include <dlfcn.h>
#include <stdbool.h>
#include <stdlib.h>
#include <systemd/sd-daemon.h>

#include "log.h"
#include "sd_lazy.h"

static struct {
	__typeof__(sd_listen_fds_with_names) *listen_fds_with_names;
	__typeof__(sd_is_socket) *is_socket;
	__typeof__(sd_notify) *notify;
	__typeof__(sd_watchdog_enabled) *watchdog_enabled;
} sd;

static void *symbol(void *lib, const char *name)
{
	void *p = dlsym(lib, name);
	if (!p)
		fatalx("%s: %s not found", LIBSYSTEMD_SONAME, name);
	return p;
}

void sd_lazy_init(void)
{
	static const char *const vars[] = { "LISTEN_FDS", "NOTIFY_SOCKET", "WATCHDOG_USEC" };
	void *lib;
	bool wanted = false;

	for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++) {
		const char *v = getenv(vars[i]);
		wanted = wanted || (v && *v);
	}
	if (!wanted)
		return;
	lib = dlopen(LIBSYSTEMD_SONAME, RTLD_NOW | RTLD_LOCAL);
	if (!lib)
		fatalx("started by systemd, but cannot load %s: %s", LIBSYSTEMD_SONAME, dlerror());
	sd.listen_fds_with_names = symbol(lib, "sd_listen_fds_with_names");
	sd.is_socket = symbol(lib, "sd_is_socket");
	sd.notify = symbol(lib, "sd_notify");
	sd.watchdog_enabled = symbol(lib, "sd_watchdog_enabled");
}

int sdl_listen_fds_with_names(int unset_environment, char ***names)
{
	if (!sd.listen_fds_with_names) {
		if (names)
			*names = NULL;
		return 0;
	}
	return sd.listen_fds_with_names(unset_environment, names);
}

int sdl_is_socket(int fd, int family, int type, int listening)
{
	/* Only asked about sockets sdl_listen_fds_with_names() returned. */
	return sd.is_socket ? sd.is_socket(fd, family, type, listening) : 0;
}

int sdl_notify(int unset_environment, const char *state)
{
	return sd.notify ? sd.notify(unset_environment, state) : 0;
}

int sdl_watchdog_enabled(int unset_environment, uint64_t *usec)
{
	return sd.watchdog_enabled ? sd.watchdog_enabled(unset_environment, usec) : 0;
}
