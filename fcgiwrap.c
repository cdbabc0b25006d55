/* fcgiwrap: runs CGI programs for a FastCGI web server.
 *
 * This file holds the daemon's life: options, listening sockets, signals,
 * the accept loop, and the graceful stop.  Requests are served by worker
 * threads (src/workers.c, src/request.c). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <getopt.h>
#include <grp.h>
#include <limits.h>
#include <malloc.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pwd.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "src/cgi_env.h"
#include "src/clock.h"
#include "src/access_log.h"
#include "src/log.h"
#include "src/peer_acl.h"
#include "src/rlimit_spec.h"
#include "src/settings.h"
#include "src/socket_url.h"
#include "src/spawn.h"
#include "src/sd_lazy.h"
#include "src/stats.h"
#include "src/slots.h"
#include "src/stopping.h"
#include "src/workers.h"

#define MAX_LISTENERS 64

struct settings cfg = {
	.max_active = DEFAULT_MAX_ACTIVE,
	.max_connections = DEFAULT_MAX_CONNECTIONS,
	.timeout_ms = DEFAULT_TIMEOUT_S * 1000,
	.inactivity_timeout_ms = DEFAULT_INACTIVITY_TIMEOUT_S * 1000,
	.kill_grace_ms = DEFAULT_KILL_GRACE_S * 1000,
	.peer_timeout_ms = DEFAULT_PEER_TIMEOUT_S * 1000,
	.queue_timeout_ms = DEFAULT_QUEUE_TIMEOUT_S * 1000,
	.shutdown_timeout_ms = DEFAULT_SHUTDOWN_TIMEOUT_S * 1000,
};

struct listener {
	int fd;
	int family;
	char *unix_path;   /* socket file we created and remove at exit */
	dev_t dev;
	ino_t ino;
};

static struct listener listeners[MAX_LISTENERS];
static size_t n_listeners;

/* Who may connect, who scripts run as: see SECURITY in the man page. */
static mode_t socket_mode = 0660;
static const char *socket_owner;  /* USER[:GROUP] for unix sockets */
static struct peer_rule *acl;     /* --allow-from */
static size_t n_acl;
static const char *run_user, *run_group, *chroot_dir;
static bool allow_root;

static const char usage_text[] =
	"Usage: fcgiwrap [OPTION]...\n"
	"Runs CGI programs for a FastCGI web server.\n"
	"\n"
	"Options:\n"
	"  -c, --concurrency=N         run up to N scripts at once (default 256)\n"
	"      --max-connections=N     serve up to N connections at once (default 1024)\n"
	"  -f, --stderr-to-fastcgi     send scripts' stderr to the web server (FCGI_STDERR)\n"
	"                              instead of fcgiwrap's own log\n"
	"  -s, --socket=URL            listen on URL (repeatable; '-s help' lists the forms)\n"
	"  -p, --allow-program=PATH    run only this script, or the scripts under this\n"
	"                              directory (repeatable)\n"
	"      --root=DIR              run only scripts whose real path is under DIR\n"
	"                              (repeatable)\n"
	"      --allow-symlinks-out    let a script found through DOCUMENT_ROOT be a\n"
	"                              symlink to a file outside it\n"
	"      --allow-writable        run scripts writable by group or others\n"
	"  -t, --timeout=SECONDS       end a request after this long (default 3600; 0: never)\n"
	"      --inactivity-timeout=SECONDS\n"
	"                              end a request when no byte went to or came from its\n"
	"                              script for this long (default 300; 0: never)\n"
	"      --kill-grace=SECONDS    from SIGTERM to SIGKILL of an ended script (default 3)\n"
	"      --peer-timeout=SECONDS  longest wait for the web server to send a request,\n"
	"                              the next body bytes, or take output (default 30)\n"
	"      --queue-timeout=SECONDS longest wait for a free script slot before 503\n"
	"                              (default 30)\n"
	"      --shutdown-timeout=SECONDS\n"
	"                              on SIGTERM, wait this long for running requests\n"
	"                              before ending them (default 60)\n"
	"      --rlimit=NAME=VALUE     resource limit for scripts, repeatable: as, core,\n"
	"                              cpu, data, fsize, nofile, nproc, stack\n"
	"      --user=USER             run as USER (and USER's groups) once the sockets\n"
	"                              are open; needed when started as root\n"
	"      --group=GROUP           run as GROUP instead of USER's primary group\n"
	"      --allow-root            let scripts run as root\n"
	"      --chroot=DIR            chroot to DIR once the sockets are open\n"
	"      --socket-mode=MODE      permissions of unix sockets (default 0660)\n"
	"      --socket-owner=USER[:GROUP]\n"
	"                              owner of unix sockets\n"
	"      --allow-from=ADDR[/PREFIX]\n"
	"                              accept TCP connections only from these peers\n"
	"                              (repeatable); needed to listen beyond loopback\n"
	"      --env=NAME=VALUE        set NAME in every script's environment (repeatable)\n"
	"      --pass-env=NAME         pass fcgiwrap's own NAME to scripts (repeatable)\n"
	"      --clear-env             pass none of fcgiwrap's environment but --pass-env\n"
	"      --access-log=FILE       log one line per request to FILE ('-': stdout)\n"
	"      --access-format=FORMAT  format of those lines (see the man page)\n"
	"      --slow-log=SECONDS      log requests still running after this long\n"
	"      --status-path=PATH      answer requests for SCRIPT_NAME PATH with live\n"
	"                              figures (text; ?json, ?openmetrics)\n"
	"      --ping-path=PATH        answer requests for SCRIPT_NAME PATH with 'pong'\n"
	"      --log-level=LEVEL       error, warning, info (default) or debug\n"
	"  -h, --help                  show this help and exit\n"
	"  -V, --version               show the version and exit\n"
	"\n"
	"With no -s, fcgiwrap serves the sockets passed by systemd, or the\n"
	"listening socket on file descriptor 0.\n";

static void usage_error(const char *what, const char *arg)
{
	fprintf(stderr, "fcgiwrap: %s '%s'\nTry 'fcgiwrap --help' for more information.\n", what, arg);
	exit(1);
}

static unsigned parse_count(const char *s, const char *what)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || end == s || v < 1 || v > 1000000 || *s == '-')
		usage_error(what, s);
	return (unsigned)v;
}

/* Seconds, with a fraction if wanted, from 0 to 1000000: to ms. */
static int parse_seconds(const char *s, const char *what)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || *end || end == s || !(v >= 0 && v <= 1000000))
		usage_error(what, s);
	return (int)(v * 1000 + 0.5);
}

static void add_rlimit(const char *spec)
{
	struct rlimit_setting r;
	struct rlimit cur;
	const char *why;

	if (rlimit_spec_parse(spec, &r, &why) < 0) {
		fprintf(stderr, "fcgiwrap: invalid --rlimit '%s': %s (names: %s)\n", spec, why,
			rlimit_spec_names);
		exit(1);
	}
	/* Only root may raise a hard limit: find out now, not per request. */
	if (geteuid() != 0 && getrlimit(r.resource, &cur) == 0 && cur.rlim_max != RLIM_INFINITY &&
	    (r.limit.rlim_max == RLIM_INFINITY || r.limit.rlim_max > cur.rlim_max))
		fatalx("--rlimit %s: above the current hard limit, which only root may raise", spec);
	cfg.rlimits = realloc(cfg.rlimits, (cfg.n_rlimits + 1) * sizeof(*cfg.rlimits));
	if (!cfg.rlimits)
		fatalx("out of memory");
	cfg.rlimits[cfg.n_rlimits++] = r;
}

/* -p and --root.  A directory (for -p: a path ending in '/' or naming a
 * directory) is stored canonical, so it is compared with the script's
 * canonical path; for --root without the trailing '/'.  A -p file is kept
 * as given and compared as 1.1.0 did, with the path as resolved. */
static void add_path(char ***list, size_t *n, const char *arg, bool is_root)
{
	char real[PATH_MAX], *entry;
	struct stat st;
	size_t len = strlen(arg);
	bool dir = is_root || (len > 0 && arg[len - 1] == '/') || (stat(arg, &st) == 0 && S_ISDIR(st.st_mode));

	if (dir) {
		if (!realpath(arg, real))
			fatal("%s %s", is_root ? "--root" : "-p", arg);
		if (asprintf(&entry, "%s%s", real, is_root || strcmp(real, "/") == 0 ? "" : "/") < 0)
			fatalx("out of memory");
	} else {
		entry = strdup(arg);
	}
	*list = realloc(*list, (*n + 1) * sizeof(char *));
	if (!*list || !entry)
		fatalx("out of memory");
	(*list)[(*n)++] = entry;
}

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
		if (!addr_is_loopback((struct sockaddr *)&ss) && n_acl == 0)
			fatalx("fd %d: refusing to serve a socket that is not loopback without --allow-from", fd);
	}

	if (n_listeners == MAX_LISTENERS)
		fatalx("too many listening sockets (at most %d)", MAX_LISTENERS);
	l = &listeners[n_listeners++];
	l->fd = fd;
	l->family = family;
	l->unix_path = NULL;
	if (unix_path && stat(unix_path, &st) == 0) {
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

/* USER[:GROUP] to ids; GROUP defaults to USER's primary group. */
static void lookup_user_group(const char *user, const char *group, uid_t *uid, gid_t *gid)
{
	struct passwd *pw = getpwnam(user);
	if (!pw)
		fatalx("unknown user '%s'", user);
	*uid = pw->pw_uid;
	*gid = pw->pw_gid;
	if (group) {
		struct group *gr = getgrnam(group);
		if (!gr)
			fatalx("unknown group '%s'", group);
		*gid = gr->gr_gid;
	}
}

static void chown_socket(const char *path)
{
	char *user = strdup(socket_owner), *colon;
	uid_t uid;
	gid_t gid;

	if (!user)
		fatalx("out of memory");
	colon = strchr(user, ':');
	if (colon)
		*colon++ = '\0';
	lookup_user_group(user, colon, &uid, &gid);
	if (chown(path, uid, gid) < 0)
		fatal("%s: cannot give the socket to %s", path, socket_owner);
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
	if (!addr_is_loopback((struct sockaddr *)&addr.ss) && n_acl == 0)
		fatalx("%s: refusing to listen on an address that is not loopback without --allow-from "
		       "(whoever can connect can run scripts; --allow-from 0.0.0.0/0 allows everyone)", name);
	/* The socket file is created with socket_mode from the start: the
	 * umask decides its permissions at bind(), so there is no moment when
	 * others could connect. */
	old_umask = umask(0777 & ~socket_mode);
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
	if (addr.family == AF_UNIX && socket_owner)
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
static void open_listeners(char **urls, size_t n_urls)
{
	char **names = NULL;
	int n = sdl_listen_fds_with_names(1, &names);

	if (n < 0)
		log_warnx("ignoring systemd's sockets: %s", strerror(-n));
	if (n > 0) {
		if (n_urls)
			log_warnx("sockets passed by systemd are served; -s is ignored");
		for (int i = 0; i < n; i++) {
			int fd = SD_LISTEN_FDS_START + i;
			const char *name = names && names[i] ? names[i] : "?";
			if (sdl_is_socket(fd, AF_UNSPEC, SOCK_STREAM, 1) <= 0) {
				log_warnx("socket '%s' (fd %d) from systemd is not a listening stream socket; skipped",
					  name, fd);
				continue;
			}
			add_listener(fd, NULL);
			log_debug("serving socket '%s' (fd %d) from systemd", name, fd);
		}
		for (int i = 0; names && i < n; i++)
			free(names[i]);
		free(names);
		if (n_listeners == 0)
			fatalx("no usable socket among those systemd passed");
		return;
	}
	for (size_t i = 0; i < n_urls; i++)
		open_socket_url(urls[i]);
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

/* Makes sure fds 0-2 are open, so no socket or pipe of ours ever lands on
 * them (posix_spawn's dup2 onto 0-2 would then be wrong). */
static void ensure_std_fds(void)
{
	for (int fd = 0; fd < 3; fd++) {
		if (fcntl(fd, F_GETFD) < 0) {
			int n = open("/dev/null", O_RDWR);
			if (n < 0)
				exit(1);
			if (n != fd) {
				dup2(n, fd);
				close(n);
			}
		}
	}
}

static void remove_socket_files(void)
{
	for (size_t i = 0; i < n_listeners; i++) {
		struct listener *l = &listeners[i];
		struct stat st;
		/* Only the file we created: a newer daemon may own the path. */
		if (l->unix_path && stat(l->unix_path, &st) == 0 && st.st_dev == l->dev &&
		    st.st_ino == l->ino)
			unlink(l->unix_path);
	}
}

static void close_listeners(void)
{
	remove_socket_files();
	for (size_t i = 0; i < n_listeners; i++) {
		if (listeners[i].fd >= 0)
			close(listeners[i].fd);
		listeners[i].fd = -1;
	}
}

/* Accepts what is waiting on l, up to --max-connections.  Running out of
 * fds is logged once per episode and paces accepting (*backoff).
 *
 * accept() is ours, not libfcgi's: FCGX_Accept_r would accept and then
 * read the request head with blocking reads, so one silent peer would hold
 * whoever waits on the accept lock.  Here accepting only hands the socket
 * to a worker, and a peer can hold nothing but its own worker, for at most
 * --peer-timeout. */
static void accept_connections(struct listener *l, bool *backoff)
{
	static bool fd_shortage_logged;

	while (workers_active() < cfg.max_connections) {
		struct sockaddr_storage peer;
		socklen_t peer_len = sizeof(peer);
		int fd = accept4(l->fd, (struct sockaddr *)&peer, &peer_len, SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
				if (!fd_shortage_logged)
					log_warn("cannot accept connections for now");
				fd_shortage_logged = true;
				*backoff = true;
			}
			/* EAGAIN, or a connection reset before we took it. */
			return;
		}
		if (fd_shortage_logged) {
			log_info("accepting connections again");
			fd_shortage_logged = false;
		}
		if ((l->family == AF_INET || l->family == AF_INET6) && n_acl > 0 &&
		    !peer_allowed(acl, n_acl, (struct sockaddr *)&peer)) {
			/* Refused before a byte is read: the socket is the trust
			 * boundary.  Logged at most once a second. */
			static long long last_log;
			static unsigned refused;
			char host[INET6_ADDRSTRLEN] = "?";
			refused++;
			if (monotonic_ms() - last_log >= 1000) {
				const void *a = peer.ss_family == AF_INET
					? (const void *)&((struct sockaddr_in *)&peer)->sin_addr
					: (const void *)&((struct sockaddr_in6 *)&peer)->sin6_addr;
				inet_ntop(peer.ss_family, a, host, sizeof(host));
				log_warnx("refused a connection from %s (not in --allow-from; %u refused since the "
					  "last line)", host, refused);
				last_log = monotonic_ms();
				refused = 0;
			}
			close(fd);
			continue;
		}
		if (l->family == AF_INET || l->family == AF_INET6) {
			int one = 1;
			/* Records are written whole; Nagle would only add delay. */
			setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		}
		atomic_fetch_add(&stats.accepted, 1);
		if (workers_submit(fd) < 0) {
			log_warn("no worker for a new connection");
			close(fd);
			*backoff = true;
			return;
		}
	}
}

/* Started as root: refuse unless told who to run as (or --allow-root).
 * Checked before any socket is created. */
static void check_privileges(void)
{
	if (geteuid() == 0) {
		if (!run_user && !allow_root)
			fatalx("refusing to run scripts as root: use --user USER (and --group GROUP), "
			       "or --allow-root if you mean it");
		return;
	}
	if (run_user || run_group || chroot_dir)
		fatalx("--user, --group and --chroot need fcgiwrap to be started as root");
}

/* After the sockets are open: --chroot, then become --user/--group, with
 * that user's supplementary groups, for good. */
static void drop_privileges(void)
{
	uid_t uid;
	gid_t gid;

	if (geteuid() != 0)
		return;
	if (chroot_dir && (chroot(chroot_dir) < 0 || chdir("/") < 0))
		fatal("--chroot %s", chroot_dir);
	if (!run_user)
		return;
	lookup_user_group(run_user, run_group, &uid, &gid);
	if (uid == 0 && !allow_root)
		fatalx("--user %s is root: add --allow-root if you mean it", run_user);
	if (initgroups(run_user, gid) < 0 || setgid(gid) < 0 || setuid(uid) < 0)
		fatal("cannot become %s", run_user);
	if (uid != 0 && setuid(0) == 0)
		fatalx("could regain root after dropping privileges");
	log_debug("running as %s (uid %u, gid %u)", run_user, (unsigned)uid, (unsigned)gid);
}

static int setup_signals(void)
{
	sigset_t set;
	struct sigaction sa;
	int fd;

	/* Writes to a closed pipe or socket must fail with EPIPE. */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);

	/* Every thread blocks these (threads inherit the mask); the main loop
	 * reads them from a signalfd.  SIGUSR1 is libfcgi's shutdown signal,
	 * whose handler would make its reads fail: taken over here too. */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGUSR1);
	if (pthread_sigmask(SIG_BLOCK, &set, NULL) != 0)
		fatalx("cannot block signals");
	fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	if (fd < 0)
		fatal("signalfd");
	return fd;
}

/* Under systemd: STATUS= with live counts when they change (at most every
 * 2 s), and WATCHDOG=1 at half the WatchdogSec interval.  Lowers *timeout
 * so the main loop wakes up for them. */
static void notify_systemd(int *timeout)
{
	static bool checked, enabled;
	static uint64_t watchdog_usec;
	static long long next_status, next_watchdog;
	static char last[160];
	long long now = monotonic_ms();
	long long next;

	if (!checked) {
		checked = true;
		enabled = getenv("NOTIFY_SOCKET") != NULL;
		if (sdl_watchdog_enabled(0, &watchdog_usec) <= 0)
			watchdog_usec = 0;
	}
	if (!enabled)
		return;
	if (now >= next_status) {
		char status[160];
		snprintf(status, sizeof(status), "STATUS=%u connections, %u scripts running, %u queued, %llu requests",
			 atomic_load(&stats.connections), atomic_load(&stats.scripts), atomic_load(&stats.queued),
			 (unsigned long long)atomic_load(&stats.requests));
		if (strcmp(status, last) != 0) {
			sdl_notify(0, status);
			strcpy(last, status);
		}
		next_status = now + 2000;
	}
	if (watchdog_usec && now >= next_watchdog) {
		sdl_notify(0, "WATCHDOG=1");
		next_watchdog = now + (long long)(watchdog_usec / 2000);
	}
	next = next_status;
	if (watchdog_usec && next_watchdog < next)
		next = next_watchdog;
	if (*timeout < 0 || next - now < *timeout)
		*timeout = (int)(next - now > 0 ? next - now : 0);
}

/* The main loop: accepts connections, and on SIGTERM or SIGINT stops
 * accepting and waits for requests to finish, at most
 * --shutdown-timeout; then, or on a second signal, ends them. */
static void serve(int sig_fd)
{
	bool stopping = false, killed = false;
	long long kill_at = 0;
	struct pollfd pfd[MAX_LISTENERS + 2];

	for (;;) {
		bool backoff = false, accepting = !stopping && workers_active() < cfg.max_connections;
		nfds_t np = 0;
		int rc, timeout = -1;

		pfd[np++] = (struct pollfd){ .fd = sig_fd, .events = POLLIN };
		pfd[np++] = (struct pollfd){ .fd = workers_done_fd(), .events = POLLIN };
		for (size_t i = 0; accepting && i < n_listeners; i++)
			pfd[np++] = (struct pollfd){ .fd = listeners[i].fd, .events = POLLIN };
		if (stopping && !killed) {
			long long left = kill_at - monotonic_ms();
			timeout = left > 0 ? (int)left : 0;
		}
		notify_systemd(&timeout);
		rc = poll(pfd, np, timeout);
		if (rc < 0) {
			if (errno != EINTR)
				fatal("poll");
			continue;
		}
		if (pfd[1].revents)
			workers_ack_done();
		if (pfd[0].revents) {
			struct signalfd_siginfo si;
			while (read(sig_fd, &si, sizeof(si)) == sizeof(si)) {
				if (si.ssi_signo == SIGHUP) {
					if (access_log_reopen() < 0)
						log_warn("SIGHUP: cannot reopen the access log");
					else
						log_info("SIGHUP: access log reopened");
				} else if (si.ssi_signo != SIGTERM && si.ssi_signo != SIGINT) {
					log_debug("signal %u ignored", si.ssi_signo);
				} else if (!stopping) {
					log_info("stopping: waiting up to %d s for %u connection(s) to finish",
						 cfg.shutdown_timeout_ms / 1000, workers_active());
					sdl_notify(0, "STOPPING=1");
					stopping = true;
					kill_at = monotonic_ms() + cfg.shutdown_timeout_ms;
					close_listeners();
					workers_stop();
				} else if (!killed) {
					log_info("second signal: ending running requests now");
					kill_at = monotonic_ms();
				}
			}
		}
		if (stopping) {
			if (workers_active() == 0)
				return;
			if (!killed && monotonic_ms() >= kill_at) {
				log_warnx("ending %u connection(s) still running", workers_active());
				workers_kill();
				killed = true;
			}
			continue;
		}
		for (size_t i = 2; i < np; i++) {
			if (pfd[i].revents)
				accept_connections(&listeners[i - 2], &backoff);
		}
		if (backoff)
			poll(NULL, 0, 100); /* let fds or threads come back */
	}
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "concurrency", required_argument, NULL, 'c' },
		{ "stderr-to-fastcgi", no_argument, NULL, 'f' },
		{ "socket", required_argument, NULL, 's' },
		{ "allow-program", required_argument, NULL, 'p' },
		{ "max-connections", required_argument, NULL, 'M' },
		{ "timeout", required_argument, NULL, 't' },
		{ "inactivity-timeout", required_argument, NULL, 'I' },
		{ "kill-grace", required_argument, NULL, 'G' },
		{ "peer-timeout", required_argument, NULL, 'P' },
		{ "queue-timeout", required_argument, NULL, 'Q' },
		{ "shutdown-timeout", required_argument, NULL, 'S' },
		{ "rlimit", required_argument, NULL, 'R' },
		{ "root", required_argument, NULL, 'O' },
		{ "user", required_argument, NULL, 'u' },
		{ "group", required_argument, NULL, 'g' },
		{ "allow-root", no_argument, NULL, 'r' },
		{ "chroot", required_argument, NULL, 'H' },
		{ "socket-mode", required_argument, NULL, 'm' },
		{ "socket-owner", required_argument, NULL, 'o' },
		{ "allow-from", required_argument, NULL, 'a' },
		{ "allow-symlinks-out", no_argument, NULL, 'Y' },
		{ "allow-writable", no_argument, NULL, 'W' },
		{ "env", required_argument, NULL, 'E' },
		{ "pass-env", required_argument, NULL, 'A' },
		{ "clear-env", no_argument, NULL, 'C' },
		{ "access-log", required_argument, NULL, 'l' },
		{ "access-format", required_argument, NULL, 'F' },
		{ "slow-log", required_argument, NULL, 'w' },
		{ "status-path", required_argument, NULL, 'T' },
		{ "ping-path", required_argument, NULL, 'i' },
		{ "log-level", required_argument, NULL, 'L' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	extern char **environ;
	char **urls = NULL;
	size_t n_urls = 0;
	const char *access_log_path = NULL, *access_log_format = NULL;
	enum log_level level;
	int c, sig_fd;

	ensure_std_fds();
	log_init();
	while ((c = getopt_long(argc, argv, "c:fs:p:t:hV", longopts, NULL)) != -1) {
		switch (c) {
		case 'c':
			cfg.max_active = parse_count(optarg, "invalid -c value (1 to 1000000):");
			break;
		case 'f':
			cfg.stderr_to_fastcgi = true;
			break;
		case 's':
			if (strcmp(optarg, "help") == 0) {
				fputs(socket_url_help, stdout);
				return 0;
			}
			urls = realloc(urls, (n_urls + 1) * sizeof(*urls));
			if (!urls)
				fatalx("out of memory");
			urls[n_urls++] = optarg;
			break;
		case 'p':
			add_path(&cfg.policy.allowed, &cfg.policy.n_allowed, optarg, false);
			break;
		case 'O':
			add_path(&cfg.policy.roots, &cfg.policy.n_roots, optarg, true);
			break;
		case 'Y':
			cfg.policy.allow_symlinks_out = true;
			break;
		case 'u':
			run_user = optarg;
			break;
		case 'g':
			run_group = optarg;
			break;
		case 'r':
			allow_root = true;
			break;
		case 'H':
			chroot_dir = optarg;
			break;
		case 'm': {
			char *end;
			unsigned long m = strtoul(optarg, &end, 8);
			if (*end || end == optarg || m > 0777)
				usage_error("invalid --socket-mode (octal, like 0660):", optarg);
			socket_mode = (mode_t)m;
			break;
		}
		case 'o':
			socket_owner = optarg;
			break;
		case 'a': {
			const char *why;
			acl = realloc(acl, (n_acl + 1) * sizeof(*acl));
			if (!acl)
				fatalx("out of memory");
			if (peer_rule_parse(optarg, &acl[n_acl], &why) < 0)
				usage_error("invalid --allow-from (ADDR or ADDR/PREFIX):", optarg);
			n_acl++;
			break;
		}
		case 'W':
			cfg.policy.allow_writable = true;
			break;
		case 'M':
			cfg.max_connections = parse_count(optarg, "invalid --max-connections value (1 to 1000000):");
			break;
		case 't':
			cfg.timeout_ms = parse_seconds(optarg, "invalid -t value (seconds):");
			break;
		case 'I':
			cfg.inactivity_timeout_ms = parse_seconds(optarg, "invalid --inactivity-timeout value (seconds):");
			break;
		case 'G':
			cfg.kill_grace_ms = parse_seconds(optarg, "invalid --kill-grace value (seconds):");
			break;
		case 'P':
			cfg.peer_timeout_ms = parse_seconds(optarg, "invalid --peer-timeout value (seconds):");
			if (cfg.peer_timeout_ms < 1)
				usage_error("--peer-timeout must be more than 0:", optarg);
			break;
		case 'Q':
			cfg.queue_timeout_ms = parse_seconds(optarg, "invalid --queue-timeout value (seconds):");
			break;
		case 'S':
			cfg.shutdown_timeout_ms = parse_seconds(optarg, "invalid --shutdown-timeout value (seconds):");
			break;
		case 'R':
			add_rlimit(optarg);
			break;
		case 'E': {
			char *eq = strchr(optarg, '=');
			if (!eq || eq == optarg)
				usage_error("--env takes NAME=VALUE, not", optarg);
			cfg.set_env = realloc(cfg.set_env, (cfg.n_set_env + 1) * sizeof(*cfg.set_env));
			if (!cfg.set_env)
				fatalx("out of memory");
			*eq = '\0';
			cfg.set_env[cfg.n_set_env++] = (struct env_override){ optarg, eq + 1 };
			break;
		}
		case 'A':
			cfg.pass_env = realloc(cfg.pass_env, (cfg.n_pass_env + 1) * sizeof(char *));
			if (!cfg.pass_env)
				fatalx("out of memory");
			cfg.pass_env[cfg.n_pass_env++] = optarg;
			break;
		case 'C':
			cfg.clear_env = true;
			break;
		case 'l':
			access_log_path = optarg;
			break;
		case 'F':
			access_log_format = optarg;
			break;
		case 'w':
			cfg.slow_log_ms = parse_seconds(optarg, "invalid --slow-log value (seconds):");
			break;
		case 'T':
			cfg.status_path = optarg;
			break;
		case 'i':
			cfg.ping_path = optarg;
			break;
		case 'L':
			if (log_level_parse(optarg, &level) < 0)
				usage_error("invalid log level:", optarg);
			log_set_level(level);
			break;
		case 'h':
			fputs(usage_text, stdout);
			return 0;
		case 'V':
			printf("%s %s\n", PACKAGE_NAME, PACKAGE_VERSION);
			return 0;
		default:
			fprintf(stderr, "Try 'fcgiwrap --help' for more information.\n");
			return 1;
		}
	}
	if (optind < argc)
		usage_error("unexpected argument:", argv[optind]);
	if (run_group && !run_user)
		usage_error("--group needs --user too:", run_group);
	check_privileges();
	stats_init();
	/* Opened before privileges are dropped, like the sockets. */
	if (access_log_path && access_log_open(access_log_path, access_log_format) < 0)
		fatal("--access-log %s", access_log_path);

	/* Two malloc arenas rather than one per thread: requests allocate
	 * little, and per-thread arenas would keep memory each busy period
	 * touched long after the threads are gone. */
	mallopt(M_ARENA_MAX, 2);

	/* Scripts get the environment as it was at start-up, filtered. */
	cfg.inherited_env = cgi_env_filter_inherited(environ, cfg.clear_env, cfg.pass_env, cfg.n_pass_env);
	if (!cfg.inherited_env)
		fatalx("out of memory");

	sig_fd = setup_signals();
	spawn_init();

	/* Before --chroot, which would hide the library. */
	sd_lazy_init();
	open_listeners(urls, n_urls);
	drop_privileges();
	slots_init(cfg.max_active);
	if (stopping_init() < 0 || workers_init(cfg.max_connections) < 0)
		fatal("cannot start workers");
	log_info("serving %zu socket(s): up to %u scripts and %u connections at once", n_listeners,
		 cfg.max_active, cfg.max_connections);
	sdl_notify(0, "READY=1");

	serve(sig_fd);
	log_info("stopped");
	free(urls);
	return 0;
}
