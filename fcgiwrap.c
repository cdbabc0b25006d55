/* fcgiwrap: runs CGI programs for a FastCGI web server.
 *
 * This file holds the daemon's life: start (options, sockets, privileges,
 * signals), the accept loop, and the stop with its deadline.  Requests are
 * served by worker threads (src/workers.c and the modules it uses). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "src/access_log.h"
#include "src/admission.h"
#include "src/cgi_env.h"
#include "src/cgroup.h"
#include "src/interpreters.h"
#include "src/clock.h"
#include "src/listeners.h"
#include "src/log.h"
#include "src/options.h"
#include "src/privileges.h"
#include "src/sandbox.h"
#include "src/sd_lazy.h"
#include "src/settings.h"
#include "src/script_classes.h"
#include "src/slots.h"
#include "src/spawn.h"
#include "src/stats.h"
#include "src/stopping.h"
#include "src/timers.h"
#include "src/upgrade.h"
#include "src/workers.h"

/* Makes sure fds 0-2 are open, so no socket or pipe of ours ever lands on
 * them (the script's dup2 onto 0-2 would then be wrong). */
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

/* The dispositions and the mask the daemon relies on, whatever it
 * inherited.  Returns the signalfd the main loop reads. */
static int setup_signals(void)
{
	static const int read_from_signalfd[] = { SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2 };
	sigset_t set;
	struct sigaction sa;
	int fd;

	memset(&sa, 0, sizeof(sa));
	/* Writes to a closed pipe or socket must fail with EPIPE. */
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
	/* SIGCHLD ignored (inherited so) would let the kernel reap scripts
	 * on their own: every exit status lost.  And an ignored signal is
	 * dropped even while blocked: those read from the signalfd must be
	 * at their default too. */
	sa.sa_handler = SIG_DFL;
	sigaction(SIGCHLD, &sa, NULL);
	sigemptyset(&set);
	for (size_t i = 0; i < sizeof(read_from_signalfd) / sizeof(read_from_signalfd[0]); i++) {
		sigaction(read_from_signalfd[i], &sa, NULL);
		sigaddset(&set, read_from_signalfd[i]);
	}
	/* Exactly these blocked, in every thread (threads inherit the mask);
	 * the main loop reads them.  SIGUSR1 is read and ignored, so that a
	 * stray one cannot end the daemon. */
	if (pthread_sigmask(SIG_SETMASK, &set, NULL) != 0)
		fatalx("cannot block signals");
	fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	if (fd < 0)
		fatal("signalfd");
	return fd;
}

/* Opened before privileges are dropped, like the sockets, and given to
 * the user the daemon becomes. */
static void open_access_log(void)
{
	uid_t uid = (uid_t)-1;
	gid_t gid = (gid_t)-1;
	char why[256] = "";
	int rc;

	if (!cfg.access_log_path)
		return;
	privileges_target(&uid, &gid);
	rc = access_log_open(cfg.access_log_path, cfg.access_log_format, uid, gid, why, sizeof(why));
	if (rc < 0)
		fatalx("--access-log %s: %s", cfg.access_log_path, why);
	if (rc > 0)
		log_warnx("--access-log %s: %s cannot write it, so SIGHUP will not reopen it (give it to %s)",
			  cfg.access_log_path, cfg.run_user, cfg.run_user);
}

/* RLIMIT_NPROC counts every process and thread of a user: a script's
 * limit includes the daemon's own threads, the main one and its workers. */
static void warn_about_rlimits(void)
{
	unsigned threads = workers_max_threads(cfg.max_connections, cfg.max_active) + 1;

	for (size_t i = 0; i < cfg.n_rlimits; i++) {
		rlim_t n = cfg.rlimits[i].limit.rlim_cur;
		if (cfg.rlimits[i].resource == RLIMIT_NPROC && n != RLIM_INFINITY && n <= threads)
			log_warnx("--rlimit nproc=%llu counts all processes and threads of the user scripts run as, "
				  "fcgiwrap's own threads included (up to %u): past that, scripts cannot fork",
				  (unsigned long long)n, threads);
	}
}

/* Once privileges are dropped (what the run user may do is what counts):
 * scripts' cgroups and their sandbox.  An option that cannot be honoured
 * stops the start. */
static void start_containment(void)
{
	char why[512] = "", gaps[256];
	int rc = cgroups_init(why, sizeof(why));

	if (rc < 0)
		fatalx("%s", why);
	if (rc == 0 && cfg.cgroup_dir)
		log_info("scripts run in process groups: %s", why);
	/* Before the sandbox, whose --script-read rules name them. */
	if (interpreters_check(&cfg.interpreters, why, sizeof(why)) < 0)
		fatalx("%s%s", why, cfg.chroot_dir ? " (a path inside the --chroot)" : "");
	if (sandbox_init(cgroups_dir(), gaps, sizeof(gaps), why, sizeof(why)) < 0)
		fatalx("%s", why);
	if (gaps[0])
		log_warnx("scripts are not fully isolated: %s", gaps);
	if (sandbox_guard_daemon(why, sizeof(why)) < 0)
		fatalx("%s", why);
}

/* The -c slots and the --script-limit classes'.  Their paths, -p's and
 * --root's are resolved here, in the --chroot, as scripts' are: given
 * host paths, every jailed script would be refused. */
static void start_slots(void)
{
	char why[512] = "";

	if (script_policy_resolve(&cfg.policy, why, sizeof(why)) < 0)
		fatalx("%s%s", why, cfg.chroot_dir ? " (a path inside the --chroot)" : "");
	slot_pool_init(&script_slots, cfg.max_active);
	if (!cfg.start_limit) {
		long cpus = sysconf(_SC_NPROCESSORS_ONLN);
		cfg.start_limit = START_LIMIT_PER_CPU * (unsigned)(cpus > 0 ? cpus : 1);
	}
	admission_init(cfg.start_limit);
	if (script_classes_init(why, sizeof(why)) < 0)
		fatalx("%s", why);
}

/* Hands what waits on listening socket i to the workers, up to
 * --max-connections: accepting only does that, so a peer can hold nothing
 * but its own worker, and that for a bounded time (see fcgi_conn.c).
 * Sets *backoff when fds or threads ran out. */
static void accept_connections(size_t i, bool *backoff)
{
	int fd;

	while (workers_reserve()) {
		if ((fd = listeners_accept(i, backoff)) < 0) {
			workers_unreserve();
			return;
		}
		if (workers_submit(fd) < 0) {
			log_warn("no worker for a new connection");
			close(fd);
			*backoff = true;
			return;
		}
	}
}

/* How often the subtree is read for the cgroups of a copy that is gone. */
#define ADOPTION_INTERVAL_MS 5000
/* How often, at most, STATUS= tells systemd the live counts. */
#define STATUS_INTERVAL_MS 2000
/* How long the loop sleeps, at most, while leftovers or scripts wait to
 * be reaped. */
#define LEFTOVER_CHECK_MS 1000

/* The main loop's timers, and what is done when each is due.  The loop
 * waits for the nearest armed one (timers_poll_timeout()). */
enum loop_timer {
	STOP_DEADLINE,    /* --shutdown-timeout is up: running requests are
			   * ended; armed by begin_stop() until then */
	UPGRADE_STEP,     /* the upgrade's own deadline: upgrade_handle() */
	SYSTEMD_STATUS,   /* STATUS= with live counts when they changed, every
			   * STATUS_INTERVAL_MS */
	SYSTEMD_WATCHDOG, /* WATCHDOG=1 at half the WatchdogSec interval */
	LEFTOVER_CHECK,   /* a wake-up: kept leftovers' cgroups and abandoned
			   * scripts are reaped on every turn of the loop */
	ADOPT_ORPHANS,    /* the cgroups of a copy that is gone are taken in,
			   * every ADOPTION_INTERVAL_MS */
	IDLE_EXIT,        /* --idle-exit: idle that long, the daemon exits */
	N_LOOP_TIMERS
};

/* The main loop's state. */
struct life {
	bool signalled;      /* SIGTERM or SIGINT came */
	bool stopping;       /* requests ended once STOP_DEADLINE has fired */
	bool handed_over;    /* stopping after an upgrade: the new copy serves */
	bool notify;         /* NOTIFY_SOCKET: systemd hears how it goes */
	bool watchdog;       /* and wants WATCHDOG=1 */
	char last_status[160]; /* the last STATUS= sent */
	struct timer timers[N_LOOP_TIMERS];
};

/* The pollfds the loop waits on, in this order. */
enum { PFD_SIGNALS, PFD_WORKERS_DONE, PFD_UPGRADE, PFD_LISTENERS };

/* The loop's state at its start.  Whether systemd listens, and wants a
 * watchdog, is read once: the environment that says so stays as it is. */
static void life_init(struct life *st)
{
	uint64_t watchdog_usec;

	memset(st, 0, sizeof(*st));
	for (size_t i = 0; i < N_LOOP_TIMERS; i++)
		st->timers[i].period = TIMER_ONCE;
	/* The periodic ones are due at once, the first time. */
	st->timers[SYSTEMD_STATUS].period = STATUS_INTERVAL_MS;
	st->timers[ADOPT_ORPHANS].period = ADOPTION_INTERVAL_MS;
	st->notify = getenv("NOTIFY_SOCKET") != NULL;
	if (sdl_watchdog_enabled(0, &watchdog_usec) <= 0)
		watchdog_usec = 0;
	st->watchdog = watchdog_usec != 0;
	st->timers[SYSTEMD_WATCHDOG].period = (long long)(watchdog_usec / 2000);
}

/* Stops accepting and lets requests finish, at most --shutdown-timeout.
 * After an upgrade the sockets and their files stay for the new copy, and
 * systemd, whose main process that is now, hears nothing. */
static void begin_stop(struct life *st, bool handed_over)
{
	if (handed_over) {
		log_info("draining: waiting up to %d s for %u connection(s) to finish", cfg.shutdown_timeout_ms / 1000,
			 workers_active());
	} else {
		log_info("stopping: waiting up to %d s for %u connection(s) to finish", cfg.shutdown_timeout_ms / 1000,
			 workers_active());
		if (upgrade_is_main())
			sdl_notify(0, "STOPPING=1");
	}
	if (!handed_over)
		upgrade_abort();
	st->stopping = true;
	st->handed_over = handed_over;
	timer_start(&st->timers[STOP_DEADLINE], monotonic_ms() + cfg.shutdown_timeout_ms);
	/* The workers first: none may be waiting on a socket closed next. */
	workers_stop();
	listeners_close(!handed_over);
}

/* Starts the new copy of an upgrade on the listening sockets. */
static void start_upgrade(void)
{
	int fds[LISTENERS_MAX];
	size_t n = 0;

	for (size_t i = 0; i < listeners_count(); i++)
		if (listeners_fd(i) >= 0)
			fds[n++] = listeners_fd(i);
	upgrade_start(fds, n);
}

/* Reads the signals that came: SIGHUP reopens the access log; SIGUSR2
 * upgrades; SIGTERM or SIGINT starts the stop, a second one ends running
 * requests at once. */
static void handle_signals(int sig_fd, struct life *st)
{
	struct signalfd_siginfo si;
	char why[256];

	while (read(sig_fd, &si, sizeof(si)) == sizeof(si)) {
		if (si.ssi_signo == SIGHUP) {
			if (access_log_reopen(why, sizeof(why)) < 0)
				log_warnx("SIGHUP: cannot reopen the access log %s: %s", cfg.access_log_path, why);
			else
				log_info("SIGHUP: access log reopened");
		} else if (si.ssi_signo == SIGUSR2) {
			if (st->stopping)
				log_warnx("SIGUSR2 ignored: stopping");
			else
				start_upgrade();
		} else if (si.ssi_signo != SIGTERM && si.ssi_signo != SIGINT) {
			log_debug("signal %u ignored", si.ssi_signo);
		} else if (!st->signalled) {
			/* The first: a copy draining after an upgrade goes on as
			 * it was (systemctl stop signals every process). */
			st->signalled = true;
			if (!st->stopping)
				begin_stop(st, false);
		} else if (st->timers[STOP_DEADLINE].armed) {
			/* Stopping, and the requests not ended yet. */
			log_info("second signal: ending running requests now");
			timer_start(&st->timers[STOP_DEADLINE], monotonic_ms());
		}
	}
}

/* What the other copy of an upgrade said. */
static void handle_upgrade(struct life *st)
{
	switch (upgrade_handle()) {
	case UPGRADE_HANDED_OVER:
		if (!st->stopping)
			begin_stop(st, true);
		break;
	case UPGRADE_TAKEN_OVER:
		/* Already ready in systemd's eyes: this says who is. */
		sdl_notify(0, "READY=1");
		log_info("taken over from the copy upgraded: this one is the main process now");
		break;
	case UPGRADE_FAILED:
	case UPGRADE_NOTHING:
		break;
	}
}

/* --idle-exit: due once the daemon has been idle that long, with no
 * connection, no kept leftover, no abandoned script, no upgrade under way.
 * Idle from when it was first seen so (a connection closed or accepted
 * since disarms it). */
static void arm_idle_exit(struct life *st, long long now)
{
	struct timer *t = &st->timers[IDLE_EXIT];

	if (!cfg.idle_exit_ms || st->stopping || workers_active() > 0 || cgroups_leftovers() > 0 ||
	    scripts_abandoned() > 0 || upgrade_fd() >= 0)
		timer_stop(t);
	else if (!t->armed)
		timer_start(t, now + cfg.idle_exit_ms);
}

/* Arms the timers that count in this turn of the loop, from the daemon's
 * state.  Those to systemd keep their due times while this copy is not
 * the main process (an upgrade's new copy, until it takes over; the old
 * one, once it has handed over). */
static void arm_timers(struct life *st, long long now)
{
	struct timer *t = st->timers;
	int up = upgrade_timeout_ms();
	bool to_systemd = st->notify && !st->handed_over && upgrade_is_main();

	if (up >= 0)
		timer_start(&t[UPGRADE_STEP], now + up);
	else
		timer_stop(&t[UPGRADE_STEP]);
	t[SYSTEMD_STATUS].armed = to_systemd;
	t[SYSTEMD_WATCHDOG].armed = to_systemd && st->watchdog;
	if (cgroups_leftovers() > 0 || scripts_abandoned() > 0)
		timer_start(&t[LEFTOVER_CHECK], now + LEFTOVER_CHECK_MS);
	else
		timer_stop(&t[LEFTOVER_CHECK]);
	t[ADOPT_ORPHANS].armed = cgroups_on() && !st->stopping;
	arm_idle_exit(st, now);
}

/* STATUS= with the live counts, if they changed since the last one. */
static void send_status(struct life *st)
{
	char status[sizeof(st->last_status)];

	snprintf(status, sizeof(status), "STATUS=%u connections, %u scripts running, %u queued, %llu requests",
		 atomic_load(&stats.connections), atomic_load(&stats.scripts), atomic_load(&stats.queued),
		 (unsigned long long)atomic_load(&stats.requests));
	if (strcmp(status, st->last_status) != 0) {
		sdl_notify(0, status);
		strcpy(st->last_status, status);
	}
}

/* Does what is due before the loop waits: what systemd is to hear.
 * Returns true when --idle-exit is due: the daemon exits. */
static bool run_timers_before_wait(struct life *st, long long now)
{
	if (timer_fire(&st->timers[SYSTEMD_STATUS], now))
		send_status(st);
	if (timer_fire(&st->timers[SYSTEMD_WATCHDOG], now))
		sdl_notify(0, "WATCHDOG=1");
	return timer_fire(&st->timers[IDLE_EXIT], now);
}

/* Fills pfd with what the loop waits on: signals, workers done, the
 * upgrade's channel, and the listening sockets while it accepts.
 * Returns how many. */
static nfds_t watch_fds(int sig_fd, const struct life *st, struct pollfd *pfd)
{
	bool accepting = !st->stopping && workers_active() < cfg.max_connections && workers_idle() == 0;
	nfds_t np = PFD_LISTENERS;

	pfd[PFD_SIGNALS] = (struct pollfd){ .fd = sig_fd, .events = POLLIN };
	pfd[PFD_WORKERS_DONE] = (struct pollfd){ .fd = workers_done_fd(), .events = POLLIN };
	pfd[PFD_UPGRADE] = (struct pollfd){ .fd = upgrade_fd(), .events = POLLIN };
	for (size_t i = 0; accepting && i < listeners_count(); i++)
		pfd[np++] = (struct pollfd){ .fd = listeners_fd(i), .events = POLLIN };
	return np;
}

/* Kept leftovers' cgroups are removed once empty (looked at every second
 * at least); those of a copy that is gone are adopted (every 5 s). */
static void look_after_leftovers(struct life *st)
{
	if (timer_fire(&st->timers[ADOPT_ORPHANS], monotonic_ms()))
		cgroups_adopt_orphans();
	if (cgroups_leftovers() > 0)
		cgroups_reap_leftovers();
	if (scripts_abandoned() > 0)
		scripts_reap_abandoned();
}

/* Accepts on the listening sockets that are ready.  Returns true when
 * fds or threads ran out. */
static bool accept_ready(struct life *st, const struct pollfd *pfd, nfds_t np)
{
	bool backoff = false;

	for (nfds_t i = PFD_LISTENERS; i < np; i++) {
		if (pfd[i].revents) {
			accept_connections(i - PFD_LISTENERS, &backoff);
			timer_stop(&st->timers[IDLE_EXIT]); /* even if already closed */
		}
	}
	return backoff;
}

/* The main loop: accepts connections, and on SIGTERM or SIGINT, or once an
 * upgrade has handed over, stops accepting and waits for requests to
 * finish, at most --shutdown-timeout; then, or on a second signal, ends
 * them.  Returns true after a hand-over. */
static bool serve(int sig_fd)
{
	struct life st;
	struct pollfd pfd[PFD_LISTENERS + LISTENERS_MAX];

	life_init(&st);
	for (;;) {
		nfds_t np = watch_fds(sig_fd, &st, pfd);
		long long now = monotonic_ms();

		arm_timers(&st, now);
		if (run_timers_before_wait(&st, now) && workers_stop_if_idle()) {
			log_info("idle for %d s (--idle-exit): exiting; systemd starts fcgiwrap again on the next "
				 "connection", cfg.idle_exit_ms / 1000);
			return false;
		}
		if (poll(pfd, np, timers_poll_timeout(st.timers, N_LOOP_TIMERS, now)) < 0) {
			if (errno != EINTR)
				fatal("poll");
			continue;
		}
		if (pfd[PFD_WORKERS_DONE].revents) {
			workers_ack_done();
			timer_stop(&st.timers[IDLE_EXIT]); /* idle from the last close on */
		}
		look_after_leftovers(&st);
		if (pfd[PFD_UPGRADE].revents || st.timers[UPGRADE_STEP].armed)
			handle_upgrade(&st);
		if (pfd[PFD_SIGNALS].revents)
			handle_signals(sig_fd, &st);
		if (st.stopping) {
			if (workers_active() == 0)
				return st.handed_over;
			if (timer_fire(&st.timers[STOP_DEADLINE], monotonic_ms())) {
				log_warnx("ending %u connection(s) still running", workers_active());
				workers_kill();
			}
			continue;
		}
		if (accept_ready(&st, pfd, np))
			poll(NULL, 0, 100); /* let fds or threads come back */
	}
}

int main(int argc, char **argv)
{
	extern char **environ;
	int sig_fd;
	bool handed_over;

	ensure_std_fds();
	/* Not dumpable, before it holds anything: a process of the same user
	 * (a script) can neither ptrace the daemon, nor take its fds
	 * (pidfd_getfd), nor read its memory or environment.  Dropping
	 * privileges would make it so; a daemon started as its user (User=
	 * in a unit, or a copy an upgrade started) is made so here. */
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
		exit(1);
	log_init();
	sandbox_take_inherited_key();
	upgrade_init(argc, argv);
	options_parse(argc, argv);
	privileges_check();
	stats_init();
	open_access_log();
	warn_about_rlimits();
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
	listeners_open();
	if (cfg.idle_exit_ms && !listeners_inherited())
		fatalx("--idle-exit needs sockets passed by systemd (socket activation): nothing would start "
		       "fcgiwrap again");
	privileges_drop();
	start_containment();
	start_slots();
	if (stopping_init() < 0 || workers_init(cfg.max_connections, cfg.max_active) < 0)
		fatal("cannot start workers");
	log_info("serving %zu socket(s): up to %u scripts and %u connections at once; containment: %s (leftovers: %s); "
		 "sandbox: %s",
		 listeners_count(), cfg.max_active, cfg.max_connections, cgroups_containment(),
		 cfg.leftovers_kill ? "killed" : "kept", sandbox_describe());
	if (upgrade_is_main())
		sdl_notify(0, "READY=1");
	upgrade_serving();
	handed_over = serve(sig_fd);
	cgroups_shutdown(handed_over);
	/* Scripts that outlived their requests are this process's children:
	 * handed over, they stay (init reaps them); else they end with it. */
	if (!handed_over)
		scripts_end_abandoned();
	log_info("stopped");
	return 0;
}
