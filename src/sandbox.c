/* A sandbox for scripts (see sandbox.h).
 *
 * One Landlock ruleset is made at start and kept open; each script's
 * process restricts itself with it just before exec, which makes a
 * Landlock domain of its own for each script.  By default (the
 * isolation) the ruleset allows writes everywhere but in the cgroup v2
 * tree, and, from ABI 6, scopes signals: a script cannot write the
 * cgroup files that contain and limit it, nor ptrace (Landlock forbids
 * it across domains), pidfd_getfd, read the environment of, or signal
 * the daemon or another request's script.  --script-write limits where
 * scripts may write (and make, remove, rename, truncate); --script-read
 * also limits what they may read and execute, to those directories, the
 * --script-write ones, and the system's own (see system_dirs below).
 * Landlock needs no_new_privs: setuid programs run without their
 * privileges (--no-isolation, without --script-read and --script-write,
 * lets them). */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/random.h>
#include <linux/filter.h>
#include <linux/landlock.h>
#include <linux/seccomp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "sandbox.h"
#include "settings.h"
#include "sysfile.h"

/* Rights newer than the headers of the build machine may know. */
#ifndef LANDLOCK_ACCESS_FS_REFER
#define LANDLOCK_ACCESS_FS_REFER (1ULL << 13) /* ABI 2 */
#endif
#ifndef LANDLOCK_ACCESS_FS_TRUNCATE
#define LANDLOCK_ACCESS_FS_TRUNCATE (1ULL << 14) /* ABI 3 */
#endif
#define SCOPE_SIGNAL (1ULL << 1) /* ABI 6: LANDLOCK_SCOPE_SIGNAL */

/* The ruleset's attributes as ABI 6 has them (older headers stop at the
 * first field); the kernel is told only the size its ABI knows. */
struct ruleset_attr {
	uint64_t handled_access_fs;
	uint64_t handled_access_net; /* ABI 4 */
	uint64_t scoped;             /* ABI 6 */
};

#define READ_RIGHTS (LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR)
#define WRITE_RIGHTS                                                                                               \
	(LANDLOCK_ACCESS_FS_WRITE_FILE | LANDLOCK_ACCESS_FS_REMOVE_DIR | LANDLOCK_ACCESS_FS_REMOVE_FILE |           \
	 LANDLOCK_ACCESS_FS_MAKE_CHAR | LANDLOCK_ACCESS_FS_MAKE_DIR | LANDLOCK_ACCESS_FS_MAKE_REG |                 \
	 LANDLOCK_ACCESS_FS_MAKE_SOCK | LANDLOCK_ACCESS_FS_MAKE_FIFO | LANDLOCK_ACCESS_FS_MAKE_BLOCK |              \
	 LANDLOCK_ACCESS_FS_MAKE_SYM | LANDLOCK_ACCESS_FS_REFER | LANDLOCK_ACCESS_FS_TRUNCATE)

/* What a shell, Perl, Python and git need to start and run, readable (and
 * executable) under --script-read; the ones missing here are skipped. */
static const char *const system_dirs[] = { "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32",
					   "/etc", "/dev", "/proc", "/sys", "/run" };
/* Writable whatever --script-write says: nothing is stored there. */
static const char *const write_always[] = { "/dev/null", "/dev/zero", "/dev/full" };

/* Cgroup v2 mounts and the daemon's cgroup directory: no script may
 * write below them. */
#define PROTECTED_MAX 64

/* clone3's number, the same on every architecture (and x32's with its
 * bit).  CLONE_INTO_CGROUP needs only a descriptor of the cgroup (O_PATH
 * will do) and the file permissions of the destination, which the
 * daemon's user has: Landlock, which sees opens for writing, cannot
 * refuse it.  So a seccomp filter on the daemon, which every script
 * inherits, lets clone3 through only with a key in its third argument
 * register (which clone3 ignores): the daemon's own clone3 (spawn.c),
 * never a script's, which knows no key (it is in the daemon's memory
 * and in the filter, neither of which a script may read) and gets
 * ENOSYS, on which glibc falls back to clone(), which cannot name a
 * cgroup.  Installed once: a filter installed per script (compiled and
 * mapped each time) cost a tenth of the request rate of a small CGI. */
#define NR_CLONE3 435
#define X32_SYSCALL_BIT 0x40000000U
#define ARG2_LO offsetof(struct seccomp_data, args[2])
#define ARG2_HI (offsetof(struct seccomp_data, args[2]) + 4) /* little-endian */
static unsigned long long clone3_key;
static bool cgroups_guarded; /* scripts are in cgroups: the filter is on */
/* What scripts can do without their domain, for the warning at start. */
#define UNISOLATED                                                                                                 \
	"scripts can ptrace, signal and read the environment of each other and the daemon, and write their "      \
	"cgroup's files"

static int ruleset = -1;
static char described[160] = "none";
static char (*protected)[PATH_MAX];
static size_t n_protected;

static long create_ruleset(const struct ruleset_attr *attr, size_t size, uint32_t flags)
{
	return syscall(__NR_landlock_create_ruleset, attr, size, flags);
}

/* The rights this kernel's Landlock knows, from its ABI version. */
static uint64_t known_rights(int abi)
{
	uint64_t r = READ_RIGHTS | WRITE_RIGHTS;

	if (abi < 2)
		r &= ~LANDLOCK_ACCESS_FS_REFER;
	if (abi < 3)
		r &= ~LANDLOCK_ACCESS_FS_TRUNCATE;
	return r;
}

/* Allows rights under path (a directory, or a file for file rights).
 * Missing paths are skipped when optional.  Returns 0 or -1. */
static int allow(const char *path, uint64_t rights, bool optional, char *why, size_t size)
{
	struct landlock_path_beneath_attr rule = { 0 };
	struct stat st;
	int fd = open(path, O_PATH | O_CLOEXEC);

	if (fd < 0 && optional)
		return 0;
	if (fd < 0 || fstat(fd, &st) < 0) {
		snprintf(why, size, "%s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	/* Directory rights mean nothing on a file. */
	if (!S_ISDIR(st.st_mode))
		rights &= LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_WRITE_FILE |
			  LANDLOCK_ACCESS_FS_TRUNCATE;
	rule.allowed_access = rights;
	rule.parent_fd = fd;
	if (syscall(__NR_landlock_add_rule, ruleset, LANDLOCK_RULE_PATH_BENEATH, &rule, 0) < 0) {
		snprintf(why, size, "%s: cannot add a Landlock rule: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

/* allow() for each of n paths. */
static int allow_each(const char *const *paths, size_t n, uint64_t rights, bool optional, char *why, size_t size)
{
	for (size_t i = 0; i < n; i++) {
		if (allow(paths[i], rights, optional, why, size) < 0)
			return -1;
	}
	return 0;
}

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

/* How path stands to the protected trees: 2 inside one (or one), 1 an
 * ancestor of one, 0 apart. */
static int protection_of(const char *path)
{
	size_t n = strlen(path);
	int rel = 0;

	for (size_t i = 0; i < n_protected; i++) {
		const char *p = protected[i];
		size_t m = strlen(p);
		if (strncmp(path, p, m) == 0 && (path[m] == '\0' || path[m] == '/'))
			return 2;
		if (strcmp(path, "/") == 0 || (strncmp(p, path, n) == 0 && p[n] == '/'))
			rel = 1;
	}
	return rel;
}

/* Allows rights everywhere under dir but in the protected trees: each
 * entry of dir apart from them is allowed whole, an ancestor of one is
 * gone into.  Symlinks are skipped: what they lead to is allowed where
 * it is.  Entries made later in dir or in an ancestor are not covered
 * (the man page says so). */
static int allow_all_but_protected(const char *dir, uint64_t rights, int depth, char *why, size_t size)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int rc = 0;

	/* Unreadable (the daemon's user may not list it): nothing below it
	 * is writable by scripts; "/" unreadable is a setup error. */
	if (!d && strcmp(dir, "/") != 0)
		return 0;
	if (!d) {
		snprintf(why, size, "%s: %s", dir, strerror(errno));
		return -1;
	}
	while (rc == 0 && (e = readdir(d))) {
		char path[PATH_MAX];
		struct stat st;
		int rel;
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0 ||
		    snprintf(path, sizeof(path), "%s%s%s", dir, strcmp(dir, "/") == 0 ? "" : "/", e->d_name) >=
			    (int)sizeof(path) ||
		    lstat(path, &st) < 0 || S_ISLNK(st.st_mode))
			continue;
		/* /sys as a whole: scripts have nothing to write there, and the
		 * rules for the entries on the way to a cgroup mount below it
		 * (about thirty more here) cost every script's start. */
		rel = strcmp(path, "/sys") == 0 ? 2 : protection_of(path);
		if (rel == 1 && depth > 0)
			rc = allow_all_but_protected(path, rights, depth - 1, why, size);
		else if (rel == 0)
			rc = allow(path, rights, true, why, size);
	}
	closedir(d);
	return rc;
}

static int add_rules(uint64_t handled, bool reads, char *why, size_t size)
{
	if (cfg.n_script_read == 0 && cfg.n_script_write == 0)
		return allow_all_but_protected("/", handled, 16, why, size);
	if (allow_each((const char *const *)cfg.script_write, cfg.n_script_write, handled, false, why, size) < 0 ||
	    allow_each(write_always, N_OF(write_always), handled, true, why, size) < 0)
		return -1;
	if (!reads)
		return 0;
	if (allow_each((const char *const *)cfg.script_read, cfg.n_script_read, READ_RIGHTS, false, why, size) < 0 ||
	    allow_each(system_dirs, N_OF(system_dirs), READ_RIGHTS, true, why, size) < 0)
		return -1;
	/* The --interpreter programs, trusted as configuration: the files
	 * themselves (what they load from elsewhere needs a --script-read). */
	for (size_t i = 0; i < cfg.interpreters.n; i++)
		if (allow(cfg.interpreters.v[i].program, READ_RIGHTS, false, why, size) < 0)
			return -1;
	return 0;
}

/* The cgroup v2 trees: every mount, and the daemon's cgroup directory
 * (found even where /proc/mounts is not, in a --chroot); refused: a
 * --script-write that would open one. */
static int find_protected(const char *cgroup_dir, char *why, size_t size)
{
	protected = calloc(PROTECTED_MAX, sizeof(*protected));
	if (!protected) {
		snprintf(why, size, "out of memory");
		return -1;
	}
	n_protected = sysfile_mounts("cgroup2", protected, PROTECTED_MAX - 1);
	if (n_protected == PROTECTED_MAX - 1) {
		snprintf(why, size, "more than %d cgroup2 mounts: cannot keep scripts out of them all",
			 PROTECTED_MAX - 2);
		return -1;
	}
	cgroups_guarded = cgroup_dir != NULL;
	if (cgroup_dir && !realpath(cgroup_dir, protected[n_protected++])) {
		snprintf(why, size, "%s: %s", cgroup_dir, strerror(errno));
		return -1;
	}
	for (size_t i = 0; i < cfg.n_script_write; i++) {
		char real[PATH_MAX];
		if (realpath(cfg.script_write[i], real) && protection_of(real) != 0) {
			snprintf(why, size, "--script-write %s would let scripts write the cgroup tree that holds them",
				 cfg.script_write[i]);
			return -1;
		}
	}
	return 0;
}

/* Makes the ruleset: the rights it handles, then the rules. */
static int make_ruleset(int abi, bool reads, char *why, size_t size)
{
	struct ruleset_attr attr = { 0 };
	bool confined = reads || cfg.n_script_write > 0;

	attr.handled_access_fs = (WRITE_RIGHTS | (reads ? READ_RIGHTS : 0)) & known_rights(abi);
	/* Handled, truncation is checked at every open, a read's included
	 * (a walk up the path; no cost measurable here, see
	 * bench/RESULTS.md); the isolation needs it not, as cgroup files
	 * cannot be opened for writing. */
	if (!confined)
		attr.handled_access_fs &= ~LANDLOCK_ACCESS_FS_TRUNCATE;
	if (abi >= 6)
		attr.scoped = SCOPE_SIGNAL;
	ruleset = (int)create_ruleset(&attr, abi >= 6 ? sizeof(attr) : sizeof(attr.handled_access_fs), 0);
	if (ruleset < 0) {
		snprintf(why, size, "cannot make a Landlock ruleset: %s", strerror(errno));
		return -1;
	}
	fcntl(ruleset, F_SETFD, FD_CLOEXEC);
	if (add_rules(attr.handled_access_fs, reads, why, size) < 0)
		return -1;
	snprintf(described, sizeof(described), "Landlock ABI %d: %s%s%s", abi,
		 confined ? "writes limited" : "isolation", reads ? ", reads limited" : "",
		 abi >= 6 ? ", signals scoped" : "");
	return 0;
}

int sandbox_init(const char *cgroup_dir, char *gaps, size_t gaps_size, char *why, size_t size)
{
	bool reads = cfg.n_script_read > 0, confined = reads || cfg.n_script_write > 0;
	int abi;

	gaps[0] = '\0';
	if (confined && cfg.no_isolation) {
		snprintf(why, size, "--no-isolation and --script-read or --script-write: the sandbox is the isolation");
		return -1;
	}
	if (cfg.no_isolation) {
		snprintf(gaps, gaps_size, "--no-isolation: " UNISOLATED);
		return 0;
	}
	abi = (int)create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION);
	if (abi < 1 && confined) {
		snprintf(why, size,
			 "--script-read and --script-write need Landlock, which this kernel does not offer (%s): "
			 "scripts are not run unconfined",
			 strerror(errno));
		return -1;
	}
	/* ABI 1 forbids every rename and link across directories (EXDEV):
	 * too much to impose on scripts that did not ask for a sandbox. */
	if (abi < 2 && !confined) {
		snprintf(gaps, gaps_size, "%s: " UNISOLATED,
			 abi < 1 ? "no Landlock in this kernel" : "Landlock ABI 1 only (2 needed)");
		return 0;
	}
	if (find_protected(cgroup_dir, why, size) < 0 || make_ruleset(abi, reads, why, size) < 0)
		return -1;
	if (abi < 6)
		snprintf(gaps, gaps_size,
			 "Landlock ABI %d (6 scopes signals): scripts can signal the daemon and each other", abi);
	return 0;
}

const char *sandbox_describe(void)
{
	return described;
}

int sandbox_fd(void)
{
	return ruleset;
}

int sandbox_enter(void)
{
	if (ruleset < 0)
		return 0;
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return -1;
	return syscall(__NR_landlock_restrict_self, ruleset, 0) < 0 ? -1 : 0;
}

void sandbox_take_inherited_key(void)
{
	const char *text = getenv(SANDBOX_KEY_ENV);

	if (!text)
		return;
	clone3_key = strtoull(text, NULL, 16);
	unsetenv(SANDBOX_KEY_ENV);
}

/* The filter: clone3 without the key fails with ENOSYS, every other
 * system call passes. */
static int install_clone3_filter(unsigned long long key)
{
	struct sock_filter code[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_STMT(BPF_ALU | BPF_AND | BPF_K, ~X32_SYSCALL_BIT),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, NR_CLONE3, 0, 5),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, ARG2_LO),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)key, 0, 2),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, ARG2_HI),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)(key >> 32), 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (ENOSYS & SECCOMP_RET_DATA)),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { sizeof(code) / sizeof(code[0]), code };

	/* no_new_privs: the daemon runs nothing setuid (an upgrade's new
	 * copy is its own binary).  SPEC_ALLOW: a filter would otherwise
	 * also turn on speculation mitigations where the kernel ties them
	 * to seccomp, which is not what it is for. */
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return -1;
	return (int)syscall(__NR_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_SPEC_ALLOW, &prog);
}

int sandbox_guard_daemon(char *why, size_t size)
{
	/* Nothing to guard without the sandbox, or without cgroups for
	 * scripts (no containment to leave). */
	if (ruleset < 0 || !cgroups_guarded)
		return 0;
	/* A copy an upgrade started inherits the first copy's filter, and
	 * its key with it (sandbox_take_inherited_key()). */
	if (clone3_key != 0)
		return 0;
	while (clone3_key == 0) {
		if (getrandom(&clone3_key, sizeof(clone3_key), 0) != (ssize_t)sizeof(clone3_key)) {
			snprintf(why, size, "cannot draw a key for clone3: %s", strerror(errno));
			return -1;
		}
	}
	if (install_clone3_filter(clone3_key) < 0) {
		snprintf(why, size, "cannot keep scripts from starting processes in other cgroups (seccomp): %s",
			 strerror(errno));
		return -1;
	}
	return 0;
}

unsigned long long sandbox_clone3_key(void)
{
	return clone3_key;
}

