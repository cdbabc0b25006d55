/* Which executable a request names, and the SCRIPT_NAME / PATH_INFO it
 * runs with.  The walk itself is pure: file checks go through a probe
 * function, so the unit tests describe a file system in a table. */
#ifndef FCGIWRAP_SCRIPT_PATH_H
#define FCGIWRAP_SCRIPT_PATH_H

#include <stdbool.h>
#include <sys/stat.h>

#include "interpreters.h"

enum file_kind {
	FILE_MISSING,    /* ENOENT or ENOTDIR: keep walking up */
	FILE_EXECUTABLE, /* regular file with an execute bit */
	FILE_NOT_EXECUTABLE,
	FILE_DIRECTORY,
	FILE_OTHER,      /* device, fifo, socket, or stat() refused */
};

typedef enum file_kind (*file_probe_fn)(const char *path, void *ctx);

/* Follows symlinks, as exec will.  ctx: a struct stat that receives
 * what stat() said, or NULL. */
enum file_kind file_probe_stat(const char *path, void *ctx);

/* What file_probe_runnable() needs, and what it saw last: a caller that
 * needs the file's mode takes it from there rather than asking the file
 * system again. */
struct runnable_probe {
	const struct interpreters *interpreters;
	struct stat last; /* stat() of the last path probed that exists */
};

/* file_probe_stat(), but a regular file that an --interpreter runs (ctx:
 * a struct runnable_probe) counts as executable, exec bit or not. */
enum file_kind file_probe_runnable(const char *path, void *ctx);

enum script_result {
	SCRIPT_FOUND,
	SCRIPT_NOT_FOUND, /* 404 */
	SCRIPT_FORBIDDEN, /* 403 */
};

struct script_location {
	char *filename;    /* path to execute (malloc'd) */
	char *script_name; /* new SCRIPT_NAME, or NULL to keep the param */
	char *path_info;   /* new PATH_INFO, or NULL to keep the param */
};

/* Resolves a request's script.  A non-empty script_filename is used as
 * given; otherwise document_root + script_name is walked up, one path
 * segment at a time, to the first existing file, and what was cut off
 * becomes PATH_INFO.  On failure *why says what was wrong. */
enum script_result script_resolve(const char *script_filename, const char *document_root,
				  const char *script_name, file_probe_fn probe, void *ctx,
				  struct script_location *out, const char **why);

void script_location_free(struct script_location *loc);

/* Whether path has a ".." segment ("/a/../b", "../x", "/a/.."). */
bool path_has_dotdot(const char *path);

/* What may run, beyond existing and being executable. */
struct script_policy {
	bool allow_symlinks_out;  /* --allow-symlinks-out */
	bool allow_writable;      /* --allow-writable */
	char **roots;             /* --root, canonical, without trailing '/' */
	size_t n_roots;
	char **allowed;           /* -p: exact paths, or directories ending in '/' */
	size_t n_allowed;
};

/* Makes roots and allowed (malloc'd, as given on the command line) what
 * script_policy_check() compares, once the daemon is where scripts are
 * looked up (in its --chroot): directories canonical.  Reads the file
 * system.  Returns 0, or -1 with *why naming the path that cannot be
 * resolved (the entry is then gone: the daemon stops). */
int script_policy_resolve(struct script_policy *pol, char *why, size_t size);

/* How a request came to its script, for the rules on where it may lie. */
struct script_origin {
	const char *document_root; /* the DOCUMENT_ROOT param, or NULL */
	bool walked;               /* found through DOCUMENT_ROOT + SCRIPT_NAME */
	bool interpreted;          /* run through an --interpreter */
	bool executable;           /* the file has an exec bit */
	/* The file as the caller opened it by that name (O_PATH), or NULL,
	 * and its fd.  Its mode is the one checked, and where the rules
	 * compare the canonical path, it is this file's (what runs is the
	 * file opened). */
	const struct stat *opened;
	int fd;
	/* Where no file is opened yet: what stat() of the path said when the
	 * script was found, or NULL (the rules then stat() it). */
	const struct stat *seen;
};

/* Applies the rules to a resolved script (reads the file system).  A
 * script found through DOCUMENT_ROOT must be inside it (but with
 * --allow-symlinks-out); a file without an exec bit run through an
 * interpreter must be inside DOCUMENT_ROOT whatever named it, symlinks
 * resolved, unless a --root holds it; the directory of any file run
 * through an interpreter must not be writable by group or others (but
 * with --allow-writable).  Returns 0, or -1 with *why naming the rule
 * that refused. */
int script_policy_check(const struct script_policy *pol, const char *filename, const struct script_origin *from,
			const char **why);

#endif
