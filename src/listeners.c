/* The listening sockets: opened from -s URLs, taken from systemd or fd 0,
 * accepted on (with --allow-from checked before a byte is read), and
 * closed at the stop with the socket files the daemon created. */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "clock.h"
#include "listeners.h"
#include "log.h"
#include "peer_acl.h"
#include "privileges.h"
#include "sd_lazy.h"
#include "settings.h"
#include "socket_url.h"
#include "stats.h"
#include "upgrade.h"

struct listener {
	int fd;
	int family;
	char *unix_path;   /* socket file we created and remove at exit */
	dev_t dev;
	ino_t ino;
};

static struct listener listeners[LISTENERS_MAX];
static size_t n_listeners;
static bool inherited;

/* Adds a listening socket; its address family comes from the socket. */
static void add_listener(int fd, const char *unix_path)
{
	struct listener *l;
	struct stat st;
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	int family = -1;

	if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0) {
		family = ss.ss_family;
		/* Sockets passed in (systemd, fd 0) follow the same rule as -s. */
		if (!addr_is_loopback((struct sockaddr *)&ss) && cfg.n_allow_from == 0)
			fatalx("fd %d: refusing to serve a socket that is not loopback without --allow-from", fd);
	}

	if (n_listeners == LISTENERS_MAX)
		fatalx("too many listening sockets (at most %d)", LISTENERS_MAX);
	l = &listeners[n_listeners++];
	l->fd = fd;
	l->family = family;
	l->unix_path = NULL;
	if (unix_path && lstat(unix_path, &st) == 0) {
		l->unix_path = strdup(unix_path);
		l->dev = st.st_dev;
		l->ino = st.st_ino;
	}
	if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0 || fcntl(fd, F_SETFL, O_NONBLOCK) < 0)
		fatal("cannot configure listening socket");
}

/* A unix socket file left by a daemon that died cannot be bound again.
 * It is removed only if it is a socket nobody accepts on. */
static bool remove_stale_socket(const char *path)
{
	struct sockaddr_un sun;
	struct stat st;
	int fd, rc;

	if (lstat(path, &st) < 0 || !S_ISSOCK(st.st_mode))
		return false;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return false;
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path)) {
		close(fd);
		return false;
	}
	memcpy(sun.sun_path, path, strlen(path) + 1);
	rc = connect(fd, (struct sockaddr *)&sun, sizeof(sun));
	close(fd);
	if (rc == 0 || errno != ECONNREFUSED)
		return false;
	log_info("removing stale socket %s", path);
	return unlink(path) == 0;
}

/* --socket-owner.  Done as root on a path in a directory others may
 * write to: what is given away is the file the path names now, taken
 * without following a symlink and only if it is a socket, so that a
 * symlink or another file put there since bind() is never chowned. */
static void chown_socket(const char *path)
{
	char *user = strdup(cfg.socket_owner), *colon;
	struct stat st;
	uid_t uid;
	gid_t gid;
	int fd = -1;

	if (!user)
		fatalx("out of memory");
	colon = strchr(user, ':');
	if (colon)
		*colon++ = '\0';
	privileges_lookup(user, colon, &uid, &gid);
	fd = open(path, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0)
		fatal("%s: cannot give the socket to %s", path, cfg.socket_owner);
	if (!S_ISSOCK(st.st_mode))
		fatalx("%s: cannot give the socket to %s: no longer a socket", path, cfg.socket_owner);
	if (fchownat(fd, "", uid, gid, AT_EMPTY_PATH) < 0)
		fatal("%s: cannot give the socket to %s", path, cfg.socket_owner);
	close(fd);
	free(user);
}

static void open_socket_url(const char *url)
{
	struct socket_addr addr;
	const char *why;
	char name[256];
	int fd, one = 1, rc;
	mode_t old_umask;

	if (socket_url_parse(url, &addr, &why) < 0) {
		fprintf(stderr, "fcgiwrap: invalid socket URL '%s': %s\n%s", url, why, socket_url_help);
		exit(1);
	}
	socket_addr_format(&addr, name, sizeof(name));
	fd = socket(addr.family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		fatal("%s: cannot create socket", name);
	if (addr.family != AF_UNIX && setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0)
		fatal("%s: cannot set SO_REUSEADDR", name);
	if (!addr_is_loopback((struct sockaddr *)&addr.ss) && cfg.n_allow_from == 0)
		fatalx("%s: refusing to listen on an address that is not loopback without --allow-from "
		       "(whoever can connect can run scripts; --allow-from 0.0.0.0/0 allows everyone)", name);
	/* The socket file is created with socket_mode from the start: the
	 * umask decides its permissions at bind(), so there is no moment when
	 * others could connect. */
	old_umask = umask(0777 & ~(mode_t)cfg.socket_mode);
	rc = bind(fd, (struct sockaddr *)&addr.ss, addr.len);
	if (rc < 0) {
		const char *path = ((struct sockaddr_un *)&addr.ss)->sun_path;
		if (addr.family == AF_UNIX && errno == EADDRINUSE && remove_stale_socket(path))
			rc = bind(fd, (struct sockaddr *)&addr.ss, addr.len);
	}
	umask(old_umask);
	if (rc < 0) {
		if (errno == EADDRINUSE)
			fatalx("%s: address already in use (is another fcgiwrap running?)", name);
		fatal("%s: cannot bind", name);
	}
	if (addr.family == AF_UNIX && cfg.socket_owner)
		chown_socket(((struct sockaddr_un *)&addr.ss)->sun_path);
	if (listen(fd, SOMAXCONN) < 0)
		fatal("%s: cannot listen", name);
	add_listener(fd, addr.family == AF_UNIX ? ((struct sockaddr_un *)&addr.ss)->sun_path : NULL);
	log_debug("listening on %s", name);
}

static bool is_listening_socket(int fd)
{
	int v = 0;
	socklen_t len = sizeof(v);
	return getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &v, &len) == 0 && v;
}

/* Sockets from systemd come first, as in 1.1.0: with socket activation
 * any -s is ignored.  Then -s, then the FastCGI convention of a listening
 * socket on fd 0 (spawn-fcgi, inetd-style managers). */
void listeners_open(void)
{
	char **names = NULL;
	int n = sdl_listen_fds_with_names(1, &names);

	if (n < 0)
		log_warnx("ignoring systemd's sockets: %s", strerror(-n));
	if (n > 0) {
		/* An upgraded copy gets its sockets the same way, its -s
		 * being the old copy's. */
		if (cfg.n_socket_urls && !upgrade_inherited())
			log_warnx("sockets passed by systemd are served; -s is ignored");
		inherited = true;
		for (int i = 0; i < n; i++) {
			int fd = SD_LISTEN_FDS_START + i;
			const char *name = names && names[i] ? names[i] : "?";
			if (sdl_is_socket(fd, AF_UNSPEC, SOCK_STREAM, 1) <= 0) {
				log_warnx("socket '%s' (fd %d) from systemd is not a listening stream socket; skipped",
					  name, fd);
				continue;
			}
			add_listener(fd, NULL);
			log_debug("serving socket '%s' (fd %d) from %s", name, fd,
				  upgrade_inherited() ? "the copy upgraded" : "systemd");
		}
		for (int i = 0; names && i < n; i++)
			free(names[i]);
		free(names);
		if (n_listeners == 0)
			fatalx("no usable socket among those systemd passed");
		return;
	}
	for (size_t i = 0; i < cfg.n_socket_urls; i++)
		open_socket_url(cfg.socket_urls[i]);
	if (n_listeners > 0)
		return;
	if (is_listening_socket(0)) {
		/* Move it off fd 0, which scripts must not inherit anyway. */
		int fd = fcntl(0, F_DUPFD_CLOEXEC, 3);
		int devnull = open("/dev/null", O_RDONLY);
		if (fd < 0 || devnull < 0 || dup2(devnull, 0) < 0)
			fatal("cannot move the socket off fd 0");
		close(devnull);
		add_listener(fd, NULL);
		return;
	}
	fatalx("no socket to listen on: use -s URL, systemd socket activation, or a listening socket on fd 0");
}

static void remove_socket_files(void)
{
	for (size_t i = 0; i < n_listeners; i++) {
		struct listener *l = &listeners[i];
		struct stat st;
		/* Only the file we created: a newer daemon may own the path. */
		if (l->unix_path && lstat(l->unix_path, &st) == 0 && st.st_dev == l->dev &&
		    st.st_ino == l->ino)
			unlink(l->unix_path);
	}
}

bool listeners_inherited(void)
{
	return inherited;
}

void listeners_close(bool remove_files)
{
	if (remove_files)
		remove_socket_files();
	for (size_t i = 0; i < n_listeners; i++) {
		if (listeners[i].fd >= 0)
			close(listeners[i].fd);
		listeners[i].fd = -1;
	}
}

/* A TCP peer not in --allow-from: refused before a byte is read, since
 * the socket is the trust boundary.  Logged at most once a second.  The
 * main thread and a worker may both be accepting (workers.c). */
static void refuse_peer(int fd, const struct sockaddr_storage *peer)
{
	static pthread_mutex_t refusing = PTHREAD_MUTEX_INITIALIZER;
	static long long last_log;
	static unsigned refused;
	char host[INET6_ADDRSTRLEN] = "?";

	close(fd);
	pthread_mutex_lock(&refusing);
	refused++;
	if (monotonic_ms() - last_log < 1000) {
		pthread_mutex_unlock(&refusing);
		return;
	}
	inet_ntop(peer->ss_family,
		  peer->ss_family == AF_INET ? (const void *)&((const struct sockaddr_in *)peer)->sin_addr
					     : (const void *)&((const struct sockaddr_in6 *)peer)->sin6_addr,
		  host, sizeof(host));
	log_warnx("refused a connection from %s (not in --allow-from; %u refused since the last line)", host,
		  refused);
	last_log = monotonic_ms();
	refused = 0;
	pthread_mutex_unlock(&refusing);
}

int listeners_accept(size_t i, bool *backoff)
{
	static atomic_bool fd_shortage_logged;
	const struct listener *l = &listeners[i];
	bool tcp = l->family == AF_INET || l->family == AF_INET6;

	/* Bounded: a flood of refused peers cannot hold the caller (a worker
	 * the stop waits for) for as long as it lasts. */
	for (unsigned refusals = 0; refusals < 64; refusals++) {
		struct sockaddr_storage peer;
		socklen_t peer_len = sizeof(peer);
		int one = 1, fd = accept4(l->fd, (struct sockaddr *)&peer, &peer_len, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
				if (!atomic_exchange(&fd_shortage_logged, true))
					log_warn("cannot accept connections for now");
				*backoff = true;
			}
			/* EAGAIN, or a connection reset before we took it. */
			return -1;
		}
		if (atomic_load(&fd_shortage_logged) && atomic_exchange(&fd_shortage_logged, false))
			log_info("accepting connections again");
		if (tcp && cfg.n_allow_from > 0 && !peer_allowed(cfg.allow_from, cfg.n_allow_from, (struct sockaddr *)&peer)) {
			refuse_peer(fd, &peer);
			continue;
		}
		/* Records are written whole; Nagle would only add delay. */
		if (tcp)
			setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		atomic_fetch_add(&stats.accepted, 1);
		return fd;
	}
	return -1;
}

size_t listeners_count(void)
{
	return n_listeners;
}

int listeners_fd(size_t i)
{
	return listeners[i].fd;
}
