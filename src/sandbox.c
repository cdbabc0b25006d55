/* A sandbox for scripts (see sandbox.h).
 *
 * One Landlock ruleset is made at start and kept open; each script's
 * process restricts itself with it just before exec.  --script-write
 * limits where scripts may write (and make, remove, rename, truncate);
 * --script-read also limits what they may read and execute, to those
 * directories, the --script-write ones, and the system's own (see
 * system_dirs below).  Landlock needs no_new_privs: under these options
 * setuid programs run without their privileges. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/landlock.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "sandbox.h"
#include "settings.h"

/* Rights newer than the headers of the build machine may know. */
#ifndef LANDLOCK_ACCESS_FS_REFER
#define LANDLOCK_ACCESS_FS_REFER (1ULL << 13) /* ABI 2 */
#endif
#ifndef LANDLOCK_ACCESS_FS_TRUNCATE
#define LANDLOCK_ACCESS_FS_TRUNCATE (1ULL << 14) /* ABI 3 */
#endif

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

static int ruleset = -1;
static char described[128] = "none";

static long create_ruleset(const struct landlock_ruleset_attr *attr, size_t size, uint32_t flags)
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

static int add_rules(uint64_t handled, bool reads, char *why, size_t size)
{
	if (allow_each((const char *const *)cfg.script_write, cfg.n_script_write, handled, false, why, size) < 0 ||
	    allow_each(write_always, N_OF(write_always), handled, true, why, size) < 0)
		return -1;
	if (!reads)
		return 0;
	if (allow_each((const char *const *)cfg.script_read, cfg.n_script_read, READ_RIGHTS, false, why, size) < 0 ||
	    allow_each(system_dirs, N_OF(system_dirs), READ_RIGHTS, true, why, size) < 0)
		return -1;
	return 0;
}

int sandbox_init(char *why, size_t size)
{
	struct landlock_ruleset_attr attr = { 0 };
	bool reads = cfg.n_script_read > 0;
	int abi;

	if (!reads && cfg.n_script_write == 0)
		return 0;
	abi = (int)create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION);
	if (abi < 1) {
		snprintf(why, size,
			 "--script-read and --script-write need Landlock, which this kernel does not offer (%s): "
			 "scripts are not run unconfined",
			 strerror(errno));
		return -1;
	}
	attr.handled_access_fs = (WRITE_RIGHTS | (reads ? READ_RIGHTS : 0)) & known_rights(abi);
	ruleset = (int)create_ruleset(&attr, sizeof(attr), 0);
	if (ruleset < 0) {
		snprintf(why, size, "cannot make a Landlock ruleset: %s", strerror(errno));
		return -1;
	}
	fcntl(ruleset, F_SETFD, FD_CLOEXEC);
	if (add_rules(attr.handled_access_fs, reads, why, size) < 0)
		return -1;
	snprintf(described, sizeof(described), "Landlock ABI %d: writes limited%s", abi,
		 reads ? ", reads limited" : "");
	return 0;
}

const char *sandbox_describe(void)
{
	return described;
}

int sandbox_enter(void)
{
	if (ruleset < 0)
		return 0;
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return -1;
	return syscall(__NR_landlock_restrict_self, ruleset, 0) < 0 ? -1 : 0;
}
