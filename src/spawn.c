/* Script processes.
 *
 * Scripts are started as vfork() starts a process (clone3 with CLONE_VM
 * and CLONE_VFORK; vfork() itself where clone3 is refused), then exec:
 * the child borrows the daemon's memory until it execs, so nothing is
 * copied and the cost does not grow with the daemon (a fork() of an 8 MiB
 * process costs several times more; bench/spawn_cost.c measures both).
 * Between its start and exec the child only makes system calls, so it
 * touches no lock or allocator state shared with the daemon's other
 * threads.
 *
 * In the child: its own process group (so the whole group can be
 * signalled), the resource limits from --rlimit, signal dispositions and
 * mask back to defaults (the daemon ignores SIGPIPE and blocks the signals
 * it reads with a signalfd; both would otherwise be inherited), the three
 * pipes on fds 0-2 (for stdin /dev/null when the body has ended empty),
 * the working directory, and no other fd. */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <linux/sched.h>
#include <sched.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#if defined(__has_feature)
#if __has_feature(address_sanitizer) && !defined(__SANITIZE_ADDRESS__)
#define __SANITIZE_ADDRESS__ 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#endif

#include "cgroup.h"
#include "clock.h"
#include "sandbox.h"
#include "spawn.h"
#include "sysfile.h"

/* After SIGKILL, how long a script may take to go before it is left to
 * the main loop's reaper: SIGKILL cannot be caught, but a process in an
 * uninterruptible sleep goes only once it wakes. */
#define KILL_WAIT_MS 1000

void script_proc_init(struct script_proc *sp)
{
	sp->pid = 0;
	sp->pidfd = sp->stdin_fd = sp->stdout_fd = sp->stderr_fd = -1;
	sp->exited = sp->reaped = false;
	sp->wait_status = 0;
	sp->cgroup = NULL;
	memset(&sp->usage, 0, sizeof(sp->usage));
}

/* The kernel's struct sigaction for rt_sigaction(2), used directly: glibc's
 * sigaction() refuses the two signals it reserves (32 and 33), and those
 * can arrive ignored from whoever started the daemon. */
struct kernel_sigaction {
	void (*handler)(int);
	unsigned long flags;
	void (*restorer)(void);
	unsigned long mask;
};

/* Signals whose disposition is not the default in the daemon (ignored by
 * whoever started it, or changed by the daemon): the child
 * resets exactly these.  Filled once by spawn_init(). */
static int changed_signals[_NSIG];
static size_t n_changed_signals;

/* Whether close_range() can unshare an fd table (Linux 5.9), which a
 * child started on the daemon's (unshare_fds()) needs. */
static bool can_unshare_fds;

void spawn_init(void)
{
	for (int sig = 1; sig < _NSIG; sig++) {
		struct kernel_sigaction old;
		if (sig == SIGKILL || sig == SIGSTOP)
			continue;
		if (syscall(SYS_rt_sigaction, sig, NULL, &old, sizeof(old.mask)) == 0 &&
		    old.handler != SIG_DFL)
			changed_signals[n_changed_signals++] = sig;
	}
	/* Closes nothing: no fd is that high.  Before the workers start:
	 * in a thread that shares its table, it would unshare it. */
	can_unshare_fds = close_range(~0U - 1, ~0U, CLOSE_RANGE_UNSHARE) == 0;
}

/* Whether st->path still leads to the file that was checked (errno says
 * why not: ESTALE for another file). */
static bool path_still_checked(const struct script_start *st)
{
	struct stat now;

	if (stat(st->path, &now) < 0)
		return false;
	if (now.st_dev != st->dev || now.st_ino != st->ino) {
		errno = ESTALE;
		return false;
	}
	return true;
}

/* Runs exactly the file that was checked: through its O_PATH fd.  A
 * script with an interpreter line cannot run so (the kernel hands the
 * interpreter a /dev/fd path, closed by then: ENOENT): it runs by its
 * path, if that still leads to the same file.  So does one handed to an
 * --interpreter, which opens it by its path (php-cgi by SCRIPT_FILENAME;
 * the path is absolute, so never taken for an option). */
static void exec_checked(const struct script_start *st, char *const argv[])
{
	if (st->interpreter) {
		if (path_still_checked(st))
			execve(st->interpreter, argv, st->envp);
		return;
	}
	if (st->fd >= 0) {
		execveat(st->fd, "", argv, st->envp, AT_EMPTY_PATH);
		if (errno != ENOENT || !path_still_checked(st))
			return;
	}
	execve(st->path, argv, st->envp);
}

/* What the new process needs, handed through one pointer. */
struct child_args {
	const struct script_start *st;
	char *const *argv;
	const int *fds;
	int procs_fd;           /* cgroup.procs to join by a write, or -1 */
	volatile int *err;
	const char *volatile *step;
	bool shares_fds;        /* started with the daemon's fd table
				 * (CLONE_FILES): unshare_fds() first */
};

/* A child started on the daemon's own fd table takes a copy of it before
 * it changes anything in it, and of its part below the fds it needs
 * only: copying the whole table (as vfork does), and then closing it all
 * again at the exec, cost the start a reference and a close for every fd
 * the daemon's other requests hold. */
static int unshare_fds(const struct child_args *ca)
{
	int top = ca->st->fd > sandbox_fd() ? ca->st->fd : sandbox_fd();

	for (int i = 0; i < 3; i++)
		top = ca->fds[i] > top ? ca->fds[i] : top;
	return close_range((unsigned)top + 1, ~0U, CLOSE_RANGE_UNSHARE);
}

/* The vfork child: system calls only, then exec.  On failure it records
 * the step and errno in the parent's memory (shared until exec). */
static void run_child(const struct child_args *ca)
{
	const struct script_start *st = ca->st;
	const int *fds = ca->fds;
	const char *volatile *step = ca->step;
	struct kernel_sigaction dfl = { .handler = SIG_DFL };
	sigset_t none;

	if (ca->shares_fds && unshare_fds(ca) < 0) {
		*step = "close_range";
		goto fail;
	}
	/* Into its cgroup first, so that everything it starts is there
	 * (where clone3 could not start it there). */
	if (ca->procs_fd >= 0 && write(ca->procs_fd, "0", 1) != 1) {
		*step = "cgroup";
		goto fail;
	}
	/* Defaults first, so nothing of the daemon's runs once unblocked. */
	for (size_t i = 0; i < n_changed_signals; i++)
		syscall(SYS_rt_sigaction, changed_signals[i], &dfl, NULL, sizeof(dfl.mask));
	if (setpgid(0, 0) < 0) {
		*step = "setpgid";
		goto fail;
	}
	for (size_t i = 0; i < st->n_rlimits; i++) {
		if (setrlimit(st->rlimits[i].resource, &st->rlimits[i].limit) < 0) {
			*step = "setrlimit";
			goto fail;
		}
	}
	for (int fd = 0; fd < 3; fd++) {
		if (dup2(fds[fd], fd) < 0) {
			*step = "dup2";
			goto fail;
		}
	}
	if (st->dir && chdir(st->dir) < 0) {
		*step = "chdir";
		goto fail;
	}
	/* Belt and braces: every fd of ours is close-on-exec already.  Marked
	 * so rather than closed: the script's own fd is used by the exec. */
	close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);
	if (sandbox_enter() < 0) {
		*step = "landlock";
		goto fail;
	}
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	exec_checked(st, ca->argv);
	*step = "exec";
fail:
	*ca->err = errno;
	_exit(127);
}

static int child_main(void *p)
{
	run_child(p);
	return 127;
}

#if defined(__x86_64__)
/* clone3(2) with vfork's sharing: fn(arg) runs in the new process, on
 * its own stack (args->stack) or below the parent's frame as a vfork
 * child runs (no stack given), and never returns.  In assembly, as glibc's
 * clone() is, because the child may not return through this function's
 * frame; glibc offers no clone3 with a function of its own. */
static long clone3_run(struct clone_args *args, int (*fn)(void *), void *arg, unsigned long long key)
{
	long ret;

	__asm__ volatile("syscall\n\t"
			 "test %%rax, %%rax\n\t"
			 "jnz 1f\n\t"
			 /* The child: fn and arg in registers the system call
			  * kept, taken out of them before rbp is cleared (either
			  * may be in rbp). */
			 "mov %[arg], %%rdi\n\t"
			 "mov %[fn], %%rcx\n\t"
			 "xor %%ebp, %%ebp\n\t"
			 /* Below the parent's red zone, aligned: with no stack
			  * of its own the child runs on the parent's. */
			 "sub $256, %%rsp\n\t"
			 "and $-16, %%rsp\n\t"
			 "call *%%rcx\n\t"
			 "mov %%eax, %%edi\n\t"
			 "mov $60, %%eax\n\t" /* exit */
			 "syscall\n\t"
			 "hlt\n"
			 "1:\n\t"
			 : "=a"(ret)
			 : "a"((long)SYS_clone3), "D"(args), "S"(sizeof(*args)), "d"(key), [fn] "r"(fn), [arg] "r"(arg)
			 : "rcx", "r11", "memory");
	return ret;
}
#endif

#if defined(__x86_64__)
/* clone3 as every start makes it, args holding what differs (a stack, a
 * cgroup): vfork's sharing, and the daemon's fd table shared until the
 * child unshares it (unshare_fds()) where it can.  No pidfd: most
 * scripts are seen to end by their pipes and one waitid(), and one is
 * opened only for those that are not (script_pidfd()); made and closed
 * with every start, it cost about 3% of the daemon's time a request.
 * Returns the pid, or -errno. */
static long start_clone(struct child_args *ca, struct clone_args *args)
{
	long ret;

	args->flags |= CLONE_VM | CLONE_VFORK | (can_unshare_fds ? CLONE_FILES : 0);
	args->exit_signal = SIGCHLD;
	ca->shares_fds = can_unshare_fds;
	/* The key the daemon's seccomp filter asks of clone3 (sandbox.c). */
	ret = clone3_run(args, child_main, ca, sandbox_clone3_key());
	ca->shares_fds = false;
	return ret;
}

/* The child started straight into its cgroup, on a stack in this frame:
 * this thread waits for the child's exec (CLONE_VFORK), so nothing else
 * touches it.  A function of its own, never inlined: a worker that runs
 * scripts without cgroups must not carry a 64 KiB frame, below which its
 * vfork child would touch fresh stack pages that then stay resident (a
 * page per worker thread, measured).  Returns the pid, or -errno. */
static __attribute__((noinline)) long start_in_cgroup(struct child_args *ca)
{
	static const size_t size = 64 * 1024;
	char stack[64 * 1024] __attribute__((aligned(16)));
	struct clone_args args;
	long ret;

	memset(&args, 0, sizeof(args));
	args.flags = CLONE_INTO_CGROUP;
	args.stack = (uint64_t)(uintptr_t)stack;
	args.stack_size = size;
	args.cgroup = (uint64_t)ca->st->cgroup_dir_fd;
	ret = start_clone(ca, &args);
#if defined(__SANITIZE_ADDRESS__)
	/* The child's frames marked their redzones in the shadow of this
	 * array, and it never returned to clear them: left so, they would
	 * make later frames of this thread look overrun. */
	__asan_unpoison_memory_region(stack, size);
#endif
	return ret;
}

/* The child started as vfork() would start it, on this thread's stack
 * below this frame, sharing the fd table until it unshares it.  Returns
 * the pid, or -errno. */
static __attribute__((noinline)) long start_on_our_stack(struct child_args *ca)
{
	struct clone_args args;
	long ret;

	memset(&args, 0, sizeof(args));
	ret = start_clone(ca, &args);
#if defined(__SANITIZE_ADDRESS__)
	/* As for start_in_cgroup()'s array: the child's frames, below this
	 * one, were never returned from. */
	{
		char *top = __builtin_frame_address(0);
		__asan_unpoison_memory_region(top - 64 * 1024, 64 * 1024);
	}
#endif
	return ret;
}
#endif

/* Starts the child: into its cgroup at once where clone3 can
 * (CLONE_INTO_CGROUP: joining later, by a write to cgroup.procs, costs a
 * migration, measured at 15-20 us a start, a tenth of the request rate
 * here), else with vfork and the write.  Returns its pid, or -1. */
static pid_t start_child(struct child_args *ca)
{
	pid_t pid;

#if defined(__x86_64__)
	{
		bool into = ca->st->cgroup_dir_fd >= 0;
		/* Refused once, refused again: not asked each start. */
		static atomic_bool refused[2];
		long ret = atomic_load_explicit(&refused[into], memory_order_relaxed) ? -ENOSYS
			   : into ? start_in_cgroup(ca) : start_on_our_stack(ca);

		if (ret >= 0)
			return (pid_t)ret;
		/* EPERM too: a seccomp filter of the service manager's may
		 * refuse clone3 so, and a cgroup the write cannot join is
		 * said by the write. */
		if (ret != -ENOSYS && ret != -EINVAL && ret != -E2BIG && ret != -EOPNOTSUPP && ret != -EPERM) {
			errno = (int)-ret;
			return -1;
		}
		/* No clone3 (into a cgroup) here: vfork, and the write.  Into
		 * a cgroup, only a kernel without clone3 (or this struct) is
		 * remembered: the rest may be that cgroup's alone. */
		if (!into || ret == -ENOSYS || ret == -E2BIG)
			atomic_store_explicit(&refused[into], true, memory_order_relaxed);
	}
#endif
	if (ca->st->cgroup_dir_fd >= 0) {
		ca->procs_fd = openat(ca->st->cgroup_dir_fd, "cgroup.procs", O_WRONLY | O_CLOEXEC);
		if (ca->procs_fd < 0)
			return -1;
	}
	pid = vfork();
	if (pid == 0)
		child_main(ca);
	if (ca->procs_fd >= 0)
		close(ca->procs_fd);
	return pid;
}

/* The three pipes a script gets on its fds 0-2: both ends of each, -1
 * when closed.  Its ends are [0] of in, [1] of out and err.  Without a
 * body, in[0] is /dev/null and in[1] -1. */
struct script_pipes {
	int in[2], out[2], err[2];
};

/* Opens the pipes, close-on-exec, our ends non-blocking.  Returns 0, or
 * -1 with errno (some pipes may be open then: close_pipes()). */
static int open_pipes(struct script_pipes *p, const struct script_start *st)
{
	/* No body: /dev/null reads as the empty pipe would, end of file at
	 * once, and saves a pipe, its flag and a close a request.  Opened for
	 * each script, not shared: an open file is one for all who hold it
	 * (a flock() on it would outlive the script).  Where there is none
	 * (a --chroot without it), a pipe. */
	if (st->stdin_empty)
		p->in[0] = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (p->in[0] < 0 && pipe2(p->in, O_CLOEXEC) < 0)
		return -1;
	if (pipe2(p->out, O_CLOEXEC) < 0 || pipe2(p->err, O_CLOEXEC) < 0)
		return -1;
	/* A larger pipe for a large body: fewer wake-ups of the script and of
	 * the relay, which splices the body into it (best effort: the
	 * system's pipe limits may refuse). */
	if (st->stdin_pipe_size > 0 && p->in[1] >= 0)
		fcntl(p->in[1], F_SETPIPE_SZ, st->stdin_pipe_size);
	/* Only our ends are non-blocking; the script sees ordinary pipes. */
	if ((p->in[1] >= 0 && fcntl(p->in[1], F_SETFL, O_NONBLOCK) < 0) || fcntl(p->out[0], F_SETFL, O_NONBLOCK) < 0 ||
	    fcntl(p->err[0], F_SETFL, O_NONBLOCK) < 0)
		return -1;
	return 0;
}

static void close_pipes(struct script_pipes *p)
{
	fd_close(&p->in[0]);
	fd_close(&p->in[1]);
	fd_close(&p->out[0]);
	fd_close(&p->out[1]);
	fd_close(&p->err[0]);
	fd_close(&p->err[1]);
}

/* Starts the script's process on the pipes; it has run the script, or
 * failed to, when this returns (the parent of a vfork waits for the
 * exec).  Returns its pid, or -1 with errno and *failed_step naming what
 * failed, no process left. */
static pid_t start_process(const struct script_start *st, const struct script_pipes *p, const char **failed_step)
{
	/* Never more: CGI/1.1 lets a query without '=' become arguments,
	 * which made "?-s" show php-cgi's sources (CVE-2012-1823). */
	char *const argv[] = { (char *)(st->interpreter ? st->interpreter : st->path),
			       st->interpreter ? (char *)st->path : NULL, NULL };
	const int child_fds[3] = { p->in[0], p->out[1], p->err[1] };
	volatile int child_errno = 0;
	/* Written by the vfork child: volatile, or the compiler may assume
	 * they still hold their initial values. */
	const char *volatile child_step = NULL;
	struct child_args ca = { st, argv, child_fds, -1, &child_errno, &child_step, false };
	pid_t pid = start_child(&ca);
	int rc;

	if (pid < 0) {
		*failed_step = "fork";
		return -1;
	}
	if (child_step) {
		/* The child never ran the script: it has exited already. */
		*failed_step = (const char *)child_step;
		rc = child_errno;
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
		errno = rc;
		return -1;
	}
	return pid;
}

/* The script holds its ends of the pipes now: they are closed here, and
 * ours go to sp. */
static void keep_our_ends(struct script_proc *sp, struct script_pipes *p)
{
	fd_close(&p->in[0]);
	fd_close(&p->out[1]);
	fd_close(&p->err[1]);
	sp->stdin_fd = p->in[1];
	sp->stdout_fd = p->out[0];
	sp->stderr_fd = p->err[0];
}

int script_spawn(const struct script_start *st, struct script_proc *sp, const char **failed_step)
{
	struct script_pipes p = { { -1, -1 }, { -1, -1 }, { -1, -1 } };
	int rc;
	pid_t pid;

	script_proc_init(sp);
	*failed_step = "pipe";
	if (open_pipes(&p, st) < 0) {
		rc = errno;
		goto fail;
	}
	pid = start_process(st, &p, failed_step);
	if (pid < 0) {
		rc = errno;
		goto fail;
	}
	sp->pid = pid;
	keep_our_ends(sp, &p);
	sp->cgroup = st->cgroup;
	return 0;

fail:
	close_pipes(&p);
	return rc;
}

/* The wait status waitid() describes. */
static int wait_status_of(const siginfo_t *si)
{
	switch (si->si_code) {
	case CLD_EXITED:
		return (si->si_status & 0xff) << 8;
	case CLD_DUMPED:
		return (si->si_status & 0x7f) | 0x80;
	default:
		return si->si_status & 0x7f;
	}
}

int script_pidfd(struct script_proc *sp)
{
	/* Race-free: the pid cannot be another's before it is reaped. */
	if (sp->pidfd < 0 && sp->pid > 0 && !sp->reaped)
		sp->pidfd = pidfd_open(sp->pid, 0);
	return sp->pidfd;
}

bool script_exited(struct script_proc *sp)
{
	siginfo_t si;
	int rc;

	if (sp->exited || sp->pid <= 0)
		return true;
	/* WNOWAIT: the zombie stays, and with it the process group's id,
	 * which no new process can take while it is there. */
	memset(&si, 0, sizeof(si));
	do
		rc = waitid(P_PID, (id_t)sp->pid, &si, WEXITED | WNOHANG | WNOWAIT);
	while (rc < 0 && errno == EINTR);
	if (rc == 0 && si.si_pid == sp->pid) {
		sp->exited = true;
		sp->wait_status = wait_status_of(&si);
	} else if (rc < 0 && errno == ECHILD) {
		sp->exited = sp->reaped = true; /* cannot happen: ours to reap */
	}
	return sp->exited;
}

/* Scripts that outlived their request: still running when it ended (a
 * script that closed its output and went on, or one that SIGKILL has not
 * ended yet), reaped by the main loop (scripts_reap_abandoned()). */
static pthread_mutex_t abandoned_lock = PTHREAD_MUTEX_INITIALIZER;
static pid_t *abandoned;
static size_t n_abandoned, cap_abandoned;
static atomic_uint n_abandoned_now;

static void abandon(pid_t pid)
{
	pthread_mutex_lock(&abandoned_lock);
	if (n_abandoned == cap_abandoned) {
		size_t cap = cap_abandoned ? cap_abandoned * 2 : 16;
		pid_t *more = realloc(abandoned, cap * sizeof(*more));
		if (more) {
			abandoned = more;
			cap_abandoned = cap;
		}
	}
	/* Out of memory: the zombie stays until the daemon exits. */
	if (n_abandoned < cap_abandoned) {
		abandoned[n_abandoned++] = pid;
		atomic_store(&n_abandoned_now, (unsigned)n_abandoned);
	}
	pthread_mutex_unlock(&abandoned_lock);
}

unsigned scripts_reap_abandoned(void)
{
	unsigned left;

	pthread_mutex_lock(&abandoned_lock);
	for (size_t i = 0; i < n_abandoned; i++) {
		pid_t rc = waitpid(abandoned[i], NULL, WNOHANG);
		if (rc == abandoned[i] || (rc < 0 && errno == ECHILD))
			abandoned[i--] = abandoned[--n_abandoned];
	}
	left = (unsigned)n_abandoned;
	atomic_store(&n_abandoned_now, left);
	pthread_mutex_unlock(&abandoned_lock);
	return left;
}

unsigned scripts_abandoned(void)
{
	return atomic_load(&n_abandoned_now);
}

void scripts_end_abandoned(void)
{
	pthread_mutex_lock(&abandoned_lock);
	/* Not reaped yet: each pid is still ours, and so its group's id. */
	for (size_t i = 0; i < n_abandoned; i++) {
		kill(-abandoned[i], SIGKILL);
		kill(abandoned[i], SIGKILL);
	}
	pthread_mutex_unlock(&abandoned_lock);
	scripts_reap_abandoned();
}

void script_reap(struct script_proc *sp)
{
	int status = 0;
	pid_t rc;

	if (sp->pid <= 0 || sp->reaped)
		return;
	/* wait4: the script's resource use, and that of the children it
	 * waited for.  Never blocks: a script still running (one that no
	 * SIGKILL has ended in time, stuck in the kernel) goes to the main
	 * loop's reaper, its exit status unknown.  After a normal end the
	 * relay has looked already (script_exited(): its waitid() keeps the
	 * zombie, so that the group can still be ended), and this reaps;
	 * otherwise this one call both looks and reaps. */
	do
		rc = wait4(sp->pid, &status, sp->exited ? 0 : WNOHANG, &sp->usage);
	while (rc < 0 && errno == EINTR);
	if (rc == 0) {
		abandon(sp->pid);
	} else if (rc == sp->pid && !sp->exited) {
		sp->exited = true;
		sp->wait_status = status;
	} else if (rc < 0) {
		sp->exited = true; /* ECHILD: cannot happen, ours to reap */
	}
	sp->reaped = true;
}

/* The fields of /proc/PID/stat after "PID (comm)", in buf: comm may hold
 * anything, so they start after its last ')'.  NULL if unreadable. */
static const char *proc_stat_fields(const char *pid, char *buf, size_t size)
{
	char path[300];
	const char *p;

	snprintf(path, sizeof(path), "/proc/%s/stat", pid);
	if (sysfile_read(path, buf, size) <= 0 || !(p = strrchr(buf, ')')))
		return NULL;
	return p + 1;
}

bool script_on_cpu(struct script_proc *sp)
{
	char pid[24], buf[512], state = 0;
	const char *fields;

	if (sp->pid <= 0 || sp->exited)
		return false;
	snprintf(pid, sizeof(pid), "%d", (int)sp->pid);
	return (fields = proc_stat_fields(pid, buf, sizeof(buf))) && sscanf(fields, " %c", &state) == 1 &&
	       state == 'R';
}

/* Whether process group pgid has a member other than the script's zombie
 * that is not a zombie itself.  kill(-pgid, 0) cannot tell: it counts the
 * script's zombie, kept on purpose, and killed members that init has not
 * reaped yet.  /proc can, at the price of a scan of every process: done
 * only for a group that outlived its script, and less and less often
 * (script_end_group()). */
static bool group_has_live_members(pid_t pgid)
{
	DIR *d;
	struct dirent *e;
	bool live = false;

	if (kill(-pgid, 0) < 0 && errno == ESRCH)
		return false;
	d = opendir("/proc");
	if (!d)
		return true;
	while (!live && (e = readdir(d)) != NULL) {
		char buf[512], state;
		const char *fields;
		int ppid, pgrp;

		if (e->d_name[0] < '1' || e->d_name[0] > '9' || !(fields = proc_stat_fields(e->d_name, buf, sizeof(buf))))
			continue;
		if (sscanf(fields, " %c %d %d", &state, &ppid, &pgrp) == 3 && pgrp == pgid && state != 'Z')
			live = true;
	}
	closedir(d);
	return live;
}

/* Waits up to until (monotonic ms) for the script to exit. */
static void wait_exit(struct script_proc *sp, long long until)
{
	while (!script_exited(sp)) {
		long long left = until - monotonic_ms();
		struct pollfd pfd;
		if (left <= 0)
			return;
		/* Opened only for a wait: one that will not come needs none. */
		pfd = (struct pollfd){ .fd = script_pidfd(sp), .events = POLLIN };
		if (pfd.fd >= 0)
			poll(&pfd, 1, (int)left);
		else
			poll(NULL, 0, left > 10 ? 10 : (int)left);
	}
}

/* The script's process group, and the script itself whatever group or
 * cgroup it moved to: by its pid, which is its own until it is reaped
 * (its zombie holds it), as its group's id is. */
static void signal_script(struct script_proc *sp, int sig)
{
	kill(-sp->pid, sig);
	kill(sp->pid, sig);
}

/* The end of the grace: SIGKILL to the script, to its group, and with a
 * cgroup to all in it; then up to KILL_WAIT_MS for the script to go.  A
 * script that left its group and its cgroup is reached by its pid all
 * the same. */
static void kill_script(struct script_proc *sp)
{
	long long until = monotonic_ms() + KILL_WAIT_MS;

	if (sp->cgroup)
		cgroup_kill(sp->cgroup);
	signal_script(sp, SIGKILL);
	if (sp->cgroup)
		cgroup_wait_empty(sp->cgroup, until);
	wait_exit(sp, until);
}

/* With a cgroup: every process in it gets SIGTERM (the ones that left
 * the process group too), and whatever is left at the end of the grace
 * SIGKILL.  No scan of /proc: the cgroup knows its members. */
static void end_cgroup(struct script_proc *sp, long long deadline)
{
	bool empty;

	signal_script(sp, SIGTERM);
	cgroup_signal_all(sp->cgroup, SIGTERM);
	cgroup_signal_all(sp->cgroup, SIGCONT);
	signal_script(sp, SIGCONT);
	empty = cgroup_wait_empty(sp->cgroup, deadline);
	/* The cgroup may be empty with the script alive elsewhere. */
	wait_exit(sp, deadline);
	if (!empty || !script_exited(sp))
		kill_script(sp);
}

/* Without one: the process group, and the script itself should it have
 * left it.  The group's other members are looked for in /proc after 10
 * ms, then twice as long each time, at most 500 ms. */
static void end_process_group(struct script_proc *sp, long long deadline)
{
	int pause_ms = 10;

	signal_script(sp, SIGTERM);
	/* SIGTERM may be caught; a stopped process would never see it. */
	signal_script(sp, SIGCONT);
	wait_exit(sp, deadline);
	while (sp->exited && group_has_live_members(sp->pid)) {
		long long left = deadline - monotonic_ms();
		if (left <= 0)
			break;
		poll(NULL, 0, left < pause_ms ? (int)left : pause_ms);
		pause_ms = pause_ms < 250 ? pause_ms * 2 : 500;
	}
	if (!sp->exited || group_has_live_members(sp->pid))
		kill_script(sp);
}

void script_end_group(struct script_proc *sp, int grace_ms)
{
	long long deadline = monotonic_ms() + grace_ms;

	/* Never once the zombie is gone: the id may be another group's. */
	if (sp->pid <= 0 || sp->reaped)
		return;
	if (sp->cgroup)
		end_cgroup(sp, deadline);
	else
		end_process_group(sp, deadline);
}

long long script_cpu_usec(struct script_proc *sp)
{
	struct cgroup_usage u;
	char pid[24], buf[1024];
	const char *fields;
	unsigned long long utime, stime, cutime, cstime;

	if (sp->cgroup) {
		cgroup_usage(sp->cgroup, &u);
		return (long long)u.cpu_usec;
	}
	if (sp->pid <= 0 || sp->exited)
		return -1;
	snprintf(pid, sizeof(pid), "%d", (int)sp->pid);
	/* State and 10 more fields, then utime stime cutime cstime, in clock
	 * ticks. */
	if (!(fields = proc_stat_fields(pid, buf, sizeof(buf))) ||
	    sscanf(fields, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %llu %llu", &utime, &stime, &cutime,
		   &cstime) != 4)
		return -1;
	return (long long)((utime + stime + cutime + cstime) * 1000000ULL / (unsigned long long)sysconf(_SC_CLK_TCK));
}

void script_finish(struct script_proc *sp, bool end_group, int grace_ms, struct script_usage *u)
{
	struct cgroup_usage cg;

	*u = (struct script_usage){ .cpu_usec = -1, .memory_kib = -1 };
	if (sp->pid <= 0)
		return;
	/* Reaped last, so that the group's id cannot have been taken by
	 * another script when it is signalled. */
	if (end_group)
		script_end_group(sp, grace_ms);
	script_reap(sp);
	u->cpu_usec = (long long)sp->usage.ru_utime.tv_sec * 1000000 + sp->usage.ru_utime.tv_usec +
		      (long long)sp->usage.ru_stime.tv_sec * 1000000 + sp->usage.ru_stime.tv_usec;
	u->memory_kib = sp->usage.ru_maxrss;
	if (!sp->cgroup)
		return;
	/* Its cgroup counts every process it started, not only those it
	 * waited for. */
	cgroup_usage(sp->cgroup, &cg);
	u->cpu_usec = (long long)cg.cpu_usec;
	if (cg.memory_peak_kib >= 0)
		u->memory_kib = cg.memory_peak_kib;
	u->oom_kills = cg.oom_kills;
	u->forks_refused = cg.pids_max;
	u->left_running = cgroup_release(sp->cgroup);
	sp->cgroup = NULL;
}

void script_proc_close(struct script_proc *sp)
{
	fd_close(&sp->stdin_fd);
	fd_close(&sp->stdout_fd);
	fd_close(&sp->stderr_fd);
	fd_close(&sp->pidfd);
}

int script_exit_code(int wait_status)
{
	if (WIFEXITED(wait_status))
		return WEXITSTATUS(wait_status);
	if (WIFSIGNALED(wait_status))
		return 128 + WTERMSIG(wait_status);
	return 255;
}
