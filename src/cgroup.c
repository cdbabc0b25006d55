/* Scripts in cgroups of their own (see cgroup.h).
 *
 * The subtree: --cgroup DIR, or, started by systemd with Delegate=yes, the
 * service's own cgroup.  cgroup v2 keeps processes in leaves only (once
 * controllers are enabled below a cgroup, it may hold none itself), so a
 * daemon that lives in DIR moves to DIR/daemon first.  Each script gets
 * DIR/script-N: made once, reused by the next script once empty (a mkdir
 * and an rmdir per request cost about 60 us here, as much as the rest of
 * the daemon's work for a request), its counters read as differences from
 * the last reading.  Scripts are started straight into it (spawn.c).
 * A cgroup still holding processes after its request (kept leftovers) is
 * set aside, and removed once they are gone.
 *
 * N holds the daemon's pid: during an upgrade (upgrade.h) two copies
 * share DIR, each with cgroups of its own.  The copy that serves adopts
 * the cgroups of a copy that is gone (the drained old one, or one that
 * was killed), so that what they left is still counted, reaped and, at
 * the stop, ended. */
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
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include "cgroup.h"
#include "clock.h"
#include "log.h"
#include "settings.h"
#include "sysfile.h"

#ifndef CGROUP2_SUPER_MAGIC
#define CGROUP2_SUPER_MAGIC 0x63677270
#endif

struct script_cgroup {
	char name[48];              /* DIR/script-<daemon pid>-<n> */
	bool in_use, leftover;
	bool killed;                /* cgroup.kill was written: never reused */
	struct cgroup_usage base;   /* counters when taken */
	struct cgroup_usage last;   /* counters when last read: the next
				     * script's base, saving a read */
};

static struct {
	bool on;
	char dir[PATH_MAX];
	char label[PATH_MAX + 16];
	bool memory;                /* the memory controller is enabled */
} cg_state = { .label = "process groups" };

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct script_cgroup **pool;
static size_t n_pool;
static unsigned next_id;
static atomic_uint n_leftovers;

/* ---- files of a cgroup ---- */

/* DIR/NAME/file (file NULL: the directory). */
static int path_of(char *buf, size_t size, const struct script_cgroup *cg, const char *file)
{
	int n = snprintf(buf, size, "%s/%s%s%s", cg_state.dir, cg->name, file ? "/" : "", file ? file : "");
	return n > 0 && (size_t)n < size ? 0 : -1;
}

/* The value of "key N" in a flat-keyed file such as cpu.stat, or 0. */
static unsigned long long keyed_value(const char *text, const char *key)
{
	size_t n = strlen(key);

	for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
		if (strncmp(p, key, n) == 0 && p[n] == ' ')
			return strtoull(p + n + 1, NULL, 10);
	}
	return 0;
}

static unsigned long long cg_keyed(const struct script_cgroup *cg, const char *file, const char *key)
{
	char path[PATH_MAX], text[1024];

	if (path_of(path, sizeof(path), cg, file) < 0 || sysfile_read(path, text, sizeof(text)) < 0)
		return 0;
	return keyed_value(text, key);
}

static void read_counters(const struct script_cgroup *cg, struct cgroup_usage *u)
{
	char path[PATH_MAX], text[64];

	u->cpu_usec = cg_keyed(cg, "cpu.stat", "usage_usec");
	u->oom_kills = cg_state.memory ? cg_keyed(cg, "memory.events", "oom_kill") : 0;
	u->pids_max = cfg.script_pids_max ? cg_keyed(cg, "pids.events", "max") : 0;
	u->memory_peak_kib = -1;
	if (cg_state.memory && path_of(path, sizeof(path), cg, "memory.peak") == 0 &&
	    sysfile_read(path, text, sizeof(text)) > 0)
		u->memory_peak_kib = (long long)(strtoull(text, NULL, 10) / 1024);
}

static bool populated(const struct script_cgroup *cg)
{
	return cg_keyed(cg, "cgroup.events", "populated") != 0;
}

/* ---- the subtree ---- */

/* Where the cgroup v2 hierarchy is mounted, from /proc/mounts. */
static int cgroup2_mount(char *buf, size_t size)
{
	char mounts[1][PATH_MAX];

	if (sysfile_mounts("cgroup2", mounts, 1) < 1 || snprintf(buf, size, "%s", mounts[0]) >= (int)size)
		return -1;
	return 0;
}

/* The daemon's own cgroup v2 directory. */
static int own_cgroup(char *buf, size_t size)
{
	char mount[PATH_MAX], line[PATH_MAX];
	FILE *f;
	int rc = -1;

	if (cgroup2_mount(mount, sizeof(mount)) < 0 || !(f = fopen("/proc/self/cgroup", "re")))
		return -1;
	while (rc < 0 && fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = '\0';
		if (strncmp(line, "0::", 3) == 0 && snprintf(buf, size, "%s%s", mount, line + 3) < (int)size)
			rc = 0;
	}
	fclose(f);
	return rc;
}

static bool is_cgroup2_dir(const char *dir)
{
	struct statfs sf;
	return statfs(dir, &sf) == 0 && (unsigned long)sf.f_type == CGROUP2_SUPER_MAGIC;
}

/* A daemon living in the subtree moves to a leaf of its own: processes
 * may not share a cgroup with children that have controllers. */
static int leave_the_subtree(char *why, size_t size)
{
	char own[PATH_MAX], leaf[PATH_MAX + 32], pid[32];

	if (own_cgroup(own, sizeof(own)) < 0 || strcmp(own, cg_state.dir) != 0)
		return 0;
	snprintf(leaf, sizeof(leaf), "%s/daemon", cg_state.dir);
	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	if (mkdir(leaf, 0755) < 0 && errno != EEXIST)
		goto fail;
	snprintf(leaf, sizeof(leaf), "%s/daemon/cgroup.procs", cg_state.dir);
	if (sysfile_write(leaf, pid) < 0)
		goto fail;
	return 0;
fail:
	snprintf(why, size, "cannot move fcgiwrap into %s/daemon: %s", cg_state.dir, strerror(errno));
	return -1;
}

/* Whether the space-separated list (cgroup.controllers) names word:
 * "cpu" is not in "cpuset". */
static bool has_word(const char *list, const char *word)
{
	size_t n = strlen(word);

	for (const char *p = list; (p = strstr(p, word)); p += n) {
		if ((p == list || p[-1] == ' ') && (p[n] == ' ' || p[n] == '\n' || p[n] == '\0'))
			return true;
	}
	return false;
}

/* Enables a controller a limit needs, or says how to get it. */
static int enable_controller(const char *name, const char *option, char *why, size_t size)
{
	char path[PATH_MAX + 32], text[256] = "", want[32];

	snprintf(path, sizeof(path), "%s/cgroup.controllers", cg_state.dir);
	if (sysfile_read(path, text, sizeof(text)) < 0 || !has_word(text, name)) {
		snprintf(why, size,
			 "%s needs the %s controller in %s, which it lacks (available: %s): delegate it "
			 "(systemd: Delegate=%s in the unit) or leave the option out",
			 option, name, cg_state.dir, text[0] ? strtok(text, "\n") : "none", name);
		return -1;
	}
	snprintf(path, sizeof(path), "%s/cgroup.subtree_control", cg_state.dir);
	snprintf(want, sizeof(want), "+%s", name);
	if (sysfile_write(path, want) < 0) {
		snprintf(why, size, "%s: cannot enable the %s controller in %s: %s", option, name, cg_state.dir,
			 strerror(errno));
		return -1;
	}
	return 0;
}

static int enable_controllers(char *why, size_t size)
{
	if (cfg.script_memory_max) {
		if (enable_controller("memory", "--script-memory-max", why, size) < 0)
			return -1;
		cg_state.memory = true;
	}
	if (cfg.script_pids_max && enable_controller("pids", "--script-pids-max", why, size) < 0)
		return -1;
	if (cfg.script_cpu_max && enable_controller("cpu", "--script-cpu-max", why, size) < 0)
		return -1;
	return 0;
}

/* The directory to manage: --cgroup DIR, or the daemon's own cgroup when
 * systemd started it (INVOCATION_ID) and it may write there, which is what
 * Delegate=yes gives.  Returns 1, 0 (none: *why), or -1. */
static int choose_dir(char *why, size_t size)
{
	const char *want = cfg.cgroup_dir;
	char own[PATH_MAX];

	if (want && strcmp(want, "none") == 0) {
		snprintf(why, size, "--cgroup none");
		return 0;
	}
	if (want) {
		if (!is_cgroup2_dir(want) || access(want, W_OK) < 0) {
			snprintf(why, size, "--cgroup %s: not a cgroup v2 directory fcgiwrap may write to", want);
			return -1;
		}
		snprintf(cg_state.dir, sizeof(cg_state.dir), "%s", want);
		return 1;
	}
	if (!getenv("INVOCATION_ID") || own_cgroup(own, sizeof(own)) < 0 || !is_cgroup2_dir(own) ||
	    access(own, W_OK) < 0) {
		snprintf(why, size, "no cgroup v2 subtree to manage (--cgroup DIR, or systemd's Delegate=yes)");
		return 0;
	}
	/* A copy started by an upgrade lives where the first one moved
	 * itself: the subtree is its parent. */
	{
		size_t n = strlen(own);
		if (n > 7 && strcmp(own + n - 7, "/daemon") == 0)
			own[n - 7] = '\0';
	}
	snprintf(cg_state.dir, sizeof(cg_state.dir), "%s", own);
	return 1;
}

int cgroups_init(char *why, size_t size)
{
	int rc = choose_dir(why, size);
	bool limits = cfg.script_memory_max || cfg.script_pids_max || cfg.script_cpu_max;

	if (rc == 0 && limits) {
		size_t n = strlen(why);
		snprintf(why + n, size - n, ": --script-memory-max, --script-pids-max and --script-cpu-max need one");
		return -1;
	}
	if (rc <= 0)
		return rc;
	if (leave_the_subtree(why, size) < 0 || enable_controllers(why, size) < 0)
		return -1;
	cg_state.on = true;
	snprintf(cg_state.label, sizeof(cg_state.label), "cgroup %s", cg_state.dir);
	return 1;
}

const char *cgroups_containment(void)
{
	return cg_state.label;
}

bool cgroups_on(void)
{
	return cg_state.on;
}

const char *cgroups_dir(void)
{
	return cg_state.on ? cg_state.dir : NULL;
}

/* Removes a cgroup that holds no process, with any cgroups a script made
 * below it (their own, delegated or not, stay empty too once it is). */
static int remove_tree(const char *path, int depth)
{
	DIR *d;
	struct dirent *e;

	if (rmdir(path) == 0 || errno == ENOENT)
		return 0;
	if ((errno != EBUSY && errno != ENOTEMPTY) || depth == 0 || !(d = opendir(path)))
		return -1;
	while ((e = readdir(d))) {
		char sub[PATH_MAX];
		if (e->d_type == DT_DIR && strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0 &&
		    snprintf(sub, sizeof(sub), "%s/%s", path, e->d_name) < (int)sizeof(sub))
			remove_tree(sub, depth - 1);
	}
	closedir(d);
	return rmdir(path) == 0 || errno == ENOENT ? 0 : -1;
}

/* ---- one cgroup per script ---- */

static int apply_limits(const struct script_cgroup *cg)
{
	char path[PATH_MAX], value[64];

	if (cfg.script_memory_max) {
		snprintf(value, sizeof(value), "%llu", cfg.script_memory_max);
		if (path_of(path, sizeof(path), cg, "memory.max") < 0 || sysfile_write(path, value) < 0)
			return -1;
		/* Without swap the limit is the limit. */
		if (path_of(path, sizeof(path), cg, "memory.swap.max") == 0)
			sysfile_write(path, "0");
	}
	if (cfg.script_pids_max) {
		snprintf(value, sizeof(value), "%u", cfg.script_pids_max);
		if (path_of(path, sizeof(path), cg, "pids.max") < 0 || sysfile_write(path, value) < 0)
			return -1;
	}
	if (cfg.script_cpu_max) {
		/* Percent of one CPU, over periods of 100 ms. */
		snprintf(value, sizeof(value), "%u 100000", cfg.script_cpu_max * 1000);
		if (path_of(path, sizeof(path), cg, "cpu.max") < 0 || sysfile_write(path, value) < 0)
			return -1;
	}
	return 0;
}

static struct script_cgroup *make_cgroup(void)
{
	struct script_cgroup *cg = calloc(1, sizeof(*cg)), **more;
	char path[PATH_MAX];

	if (!cg)
		return NULL;
	/* A name taken (by a daemon that had this pid before) is skipped. */
	for (int tries = 0;; tries++) {
		snprintf(cg->name, sizeof(cg->name), "script-%d-%u", (int)getpid(), next_id++);
		if (path_of(path, sizeof(path), cg, NULL) < 0)
			goto fail;
		if (mkdir(path, 0755) == 0)
			break;
		if (errno != EEXIST || tries == 100)
			goto fail;
	}
	if (apply_limits(cg) < 0) {
		rmdir(path);
		goto fail;
	}
	more = realloc(pool, (n_pool + 1) * sizeof(*pool));
	if (!more) {
		rmdir(path);
		goto fail;
	}
	pool = more;
	pool[n_pool++] = cg;
	return cg;
fail:
	free(cg);
	return NULL;
}

struct script_cgroup *cgroup_take(void)
{
	static bool failing;
	struct script_cgroup *cg = NULL;

	if (!cg_state.on)
		return NULL;
	pthread_mutex_lock(&lock);
	for (size_t i = 0; i < n_pool && !cg; i++) {
		if (!pool[i]->in_use && !pool[i]->leftover)
			cg = pool[i];
	}
	if (!cg)
		cg = make_cgroup();
	if (cg) {
		cg->in_use = true;
		cg->base = cg->last;
	}
	if (!cg && !failing)
		log_warn("cannot make a cgroup in %s; scripts are not run uncontained: 503 until one can be made",
			 cg_state.dir);
	failing = !cg;
	pthread_mutex_unlock(&lock);
	return cg;
}

int cgroup_open(struct script_cgroup *cg)
{
	char path[PATH_MAX];

	if (path_of(path, sizeof(path), cg, NULL) < 0) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

/* Waits until the cgroup's freeze has taken effect, at most 100 ms. */
static void wait_frozen(const struct script_cgroup *cg)
{
	long long until = monotonic_ms() + 100;

	while (cg_keyed(cg, "cgroup.events", "frozen") == 0 && monotonic_ms() < until)
		poll(NULL, 0, 2);
}

void cgroup_signal_all(struct script_cgroup *cg, int sig)
{
	char path[PATH_MAX], freeze[PATH_MAX], buf[4096];
	bool frozen;
	FILE *f;

	/* Frozen, none of them can exit (so its pid is not reused) or fork
	 * between the list and the signal, which waits for the thaw. */
	frozen = path_of(freeze, sizeof(freeze), cg, "cgroup.freeze") == 0 && sysfile_write(freeze, "1") == 0;
	if (frozen)
		wait_frozen(cg);
	if (path_of(path, sizeof(path), cg, "cgroup.procs") == 0 && (f = fopen(path, "re")) != NULL) {
		while (fgets(buf, sizeof(buf), f)) {
			pid_t pid = (pid_t)strtol(buf, NULL, 10);
			if (pid > 0)
				kill(pid, sig);
		}
		fclose(f);
	}
	if (frozen)
		sysfile_write(freeze, "0");
}

bool cgroup_wait_empty(struct script_cgroup *cg, long long deadline)
{
	char path[PATH_MAX], text[256];
	int fd;
	bool empty = false;

	if (path_of(path, sizeof(path), cg, "cgroup.events") < 0 || (fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return !populated(cg);
	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = POLLPRI };
		long long left = deadline - monotonic_ms();
		ssize_t n = pread(fd, text, sizeof(text) - 1, 0);
		if (n >= 0) {
			text[n] = '\0';
			empty = keyed_value(text, "populated") == 0;
		}
		if (empty || left <= 0)
			break;
		/* cgroup.events signals each change (POLLPRI). */
		poll(&pfd, 1, left < 1000 ? (int)left : 1000);
	}
	close(fd);
	return empty;
}

void cgroup_kill(struct script_cgroup *cg)
{
	char path[PATH_MAX];

	/* Seen here (6.18): a process started later into a cgroup that was
	 * once killed, by clone3's CLONE_INTO_CGROUP, is SIGKILLed at birth,
	 * as if the kill were still going on; such a cgroup is removed, not
	 * reused (cgroup_release()). */
	cg->killed = true;
	if (path_of(path, sizeof(path), cg, "cgroup.kill") < 0 || sysfile_write(path, "1") < 0)
		cgroup_signal_all(cg, SIGKILL); /* kernels before 5.14 */
}

void cgroup_usage(struct script_cgroup *cg, struct cgroup_usage *u)
{
	read_counters(cg, u);
	cg->last = *u;
	u->cpu_usec -= cg->base.cpu_usec;
	u->oom_kills -= cg->base.oom_kills;
	u->pids_max -= cg->base.pids_max;
}

/* How many processes the cgroup holds. */
static unsigned count_procs(const struct script_cgroup *cg)
{
	char path[PATH_MAX], buf[64];
	unsigned n = 0;
	FILE *f;

	if (path_of(path, sizeof(path), cg, "cgroup.procs") < 0 || !(f = fopen(path, "re")))
		return 0;
	while (fgets(buf, sizeof(buf), f))
		n++;
	fclose(f);
	return n;
}

unsigned cgroup_release(struct script_cgroup *cg)
{
	unsigned left = 0;

	/* Killed already (its request ended abnormally): what is left is
	 * stuck, and was waited for. */
	if (populated(cg)) {
		if (cfg.leftovers_kill && !cg->killed) {
			cgroup_kill(cg);
			cgroup_wait_empty(cg, monotonic_ms() + 1000);
		}
		left = populated(cg) ? count_procs(cg) : 0;
	}
	/* memory.peak cannot be reset for good: with the memory controller a
	 * cgroup serves one script only, and goes once empty; so does one
	 * that was killed (cgroup_kill()). */
	pthread_mutex_lock(&lock);
	cg->in_use = false;
	cg->leftover = left > 0 || cg_state.memory || cg->killed;
	if (cg->leftover)
		atomic_fetch_add(&n_leftovers, 1);
	pthread_mutex_unlock(&lock);
	if ((cg_state.memory || cg->killed) && left == 0)
		cgroups_reap_leftovers();
	return left;
}

unsigned cgroups_reap_leftovers(void)
{
	unsigned remaining = 0;

	pthread_mutex_lock(&lock);
	for (size_t i = 0; i < n_pool; i++) {
		struct script_cgroup *cg = pool[i];
		char path[PATH_MAX];
		if (!cg->leftover)
			continue;
		if (populated(cg)) {
			remaining++;
			continue;
		}
		/* Emptied: removed rather than reused, its counters a mix. */
		if (path_of(path, sizeof(path), cg, NULL) == 0 && remove_tree(path, 8) == 0) {
			pool[i--] = pool[--n_pool];
			free(cg);
			atomic_fetch_sub(&n_leftovers, 1);
		}
	}
	pthread_mutex_unlock(&lock);
	return remaining;
}

unsigned cgroups_leftovers(void)
{
	return atomic_load(&n_leftovers);
}

void cgroups_shutdown(bool hand_over)
{
	if (!cg_state.on)
		return;
	long long deadline = monotonic_ms() + 1000;

	pthread_mutex_lock(&lock);
	/* All killed first, then one second for them all. */
	for (size_t i = 0; i < n_pool; i++) {
		if (pool[i]->in_use || (pool[i]->leftover && !hand_over))
			cgroup_kill(pool[i]);
	}
	for (size_t i = 0; i < n_pool; i++) {
		struct script_cgroup *cg = pool[i];
		char path[PATH_MAX];
		if (cg->killed)
			cgroup_wait_empty(cg, deadline);
		if (path_of(path, sizeof(path), cg, NULL) == 0)
			remove_tree(path, 8);
		free(cg);
	}
	free(pool);
	pool = NULL;
	n_pool = 0;
	pthread_mutex_unlock(&lock);
}

/* Whether name is the cgroup of a script of a daemon that is gone:
 * "script-<pid>-<n>" with a pid not alive, or ours (the caller adopts
 * only those not in the pool). */
static bool orphaned(const char *name)
{
	char *end;
	long pid;

	if (strncmp(name, "script-", 7) != 0)
		return false;
	errno = 0;
	pid = strtol(name + 7, &end, 10);
	if (errno || end == name + 7 || *end != '-' || pid <= 0)
		return false;
	/* Ours by name but not in the pool: a daemon that had this pid
	 * before (pids are reused, in containers soon). */
	if (pid == (long)getpid())
		return true;
	if (kill((pid_t)pid, 0) < 0)
		return errno == ESRCH;
	/* Exited, its parent not having waited yet. */
	{
		char path[64], stat[256], *state;
		snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
		if (sysfile_read(path, stat, sizeof(stat)) < 0)
			return errno == ENOENT;
		state = strrchr(stat, ')');
		return state && state[1] == ' ' && (state[2] == 'Z' || state[2] == 'X');
	}
}

void cgroups_adopt_orphans(void)
{
	DIR *d;
	struct dirent *e;

	if (!cg_state.on || !(d = opendir(cg_state.dir)))
		return;
	pthread_mutex_lock(&lock);
	while ((e = readdir(d))) {
		struct script_cgroup *cg, **more;
		bool known = false;
		if (e->d_type != DT_DIR || strlen(e->d_name) >= sizeof(cg->name) || !orphaned(e->d_name))
			continue;
		for (size_t i = 0; i < n_pool && !known; i++)
			known = strcmp(pool[i]->name, e->d_name) == 0;
		if (known || !(cg = calloc(1, sizeof(*cg))))
			continue;
		more = realloc(pool, (n_pool + 1) * sizeof(*pool));
		if (!more) {
			free(cg);
			continue;
		}
		pool = more;
		memcpy(cg->name, e->d_name, strlen(e->d_name) + 1); /* fits: checked above */
		cg->leftover = true;
		pool[n_pool++] = cg;
		atomic_fetch_add(&n_leftovers, 1);
		log_info("adopted cgroup %s/%s of an earlier fcgiwrap", cg_state.dir, e->d_name);
	}
	pthread_mutex_unlock(&lock);
	closedir(d);
}
