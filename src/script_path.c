/* Script path resolution, compatible with fcgiwrap 1.1.0 where users rely
 * on it, and deliberately different in two places, both documented in the
 * man page:
 *  - a missing script is 404 (1.1.0 answered 403 once the walk reached the
 *    directory), a directory or non-executable file is 403;
 *  - PATH_INFO sent by the web server is kept when the whole SCRIPT_NAME
 *    names the script (1.1.0 removed it). */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "script_path.h"

enum file_kind file_probe_stat(const char *path, void *ctx)
{
	struct stat own, *st = ctx ? ctx : &own;

	if (stat(path, st) < 0)
		return (errno == ENOENT || errno == ENOTDIR) ? FILE_MISSING : FILE_OTHER;
	if (S_ISDIR(st->st_mode))
		return FILE_DIRECTORY;
	if (!S_ISREG(st->st_mode))
		return FILE_OTHER;
	return (st->st_mode & (S_IXUSR | S_IXGRP | S_IXOTH)) ? FILE_EXECUTABLE : FILE_NOT_EXECUTABLE;
}

enum file_kind file_probe_runnable(const char *path, void *ctx)
{
	struct runnable_probe *probe = ctx;
	enum file_kind kind = file_probe_stat(path, &probe->last);

	if (kind == FILE_NOT_EXECUTABLE && interpreters_find(probe->interpreters, path))
		return FILE_EXECUTABLE;
	return kind;
}

void script_location_free(struct script_location *loc)
{
	free(loc->filename);
	free(loc->script_name);
	free(loc->path_info);
	loc->filename = loc->script_name = loc->path_info = NULL;
}

static enum script_result refuse(enum file_kind kind, const char **why)
{
	switch (kind) {
	case FILE_MISSING:
		*why = "no such file";
		return SCRIPT_NOT_FOUND;
	case FILE_DIRECTORY:
		*why = "is a directory";
		break;
	case FILE_NOT_EXECUTABLE:
		*why = "not executable";
		break;
	default:
		*why = "not a regular file";
	}
	return SCRIPT_FORBIDDEN;
}

/* What is refused before any look at the file system, so that the answer
 * says nothing about what exists (403 whether it does or not).  Returns
 * SCRIPT_FOUND when nothing is, else the answer with *why. */
static enum script_result refused_unseen(const char *script_filename, const char *document_root,
					 const char *script_name, const char **why)
{
	if ((script_filename && path_has_dotdot(script_filename)) || (script_name && path_has_dotdot(script_name))) {
		*why = "the path has a '..' segment";
		return SCRIPT_FORBIDDEN;
	}
	if (script_filename && *script_filename)
		return SCRIPT_FOUND;
	if (!document_root || !*document_root || !script_name || !*script_name) {
		*why = "neither SCRIPT_FILENAME nor DOCUMENT_ROOT and SCRIPT_NAME were sent";
		return SCRIPT_NOT_FOUND;
	}
	/* "2.cgi" would be DOCUMENT_ROOT's sibling "/srv/www2.cgi". */
	if (script_name[0] != '/') {
		*why = "SCRIPT_NAME does not start with '/'";
		return SCRIPT_FORBIDDEN;
	}
	return SCRIPT_FOUND;
}

/* SCRIPT_FILENAME names the script itself: no walk, no PATH_INFO. */
static enum script_result resolve_named(const char *script_filename, file_probe_fn probe, void *ctx,
					struct script_location *out, const char **why)
{
	enum file_kind kind = probe(script_filename, ctx);

	if (kind != FILE_EXECUTABLE)
		return refuse(kind, why);
	out->filename = strdup(script_filename);
	if (!out->filename) {
		*why = "out of memory";
		return SCRIPT_FORBIDDEN;
	}
	return SCRIPT_FOUND;
}

/* DOCUMENT_ROOT and SCRIPT_NAME joined in a new string, *root_len bytes
 * of it DOCUMENT_ROOT's.  Returns NULL when out of memory. */
static char *join_document_root(const char *document_root, const char *script_name, size_t *root_len)
{
	size_t n = strlen(document_root);
	char *path;

	/* "/srv/www/" + "/x.cgi": one slash, for tidy paths in logs. */
	while (n > 1 && document_root[n - 1] == '/' && script_name[0] == '/')
		n--;
	path = malloc(n + strlen(script_name) + 1);
	if (!path)
		return NULL;
	memcpy(path, document_root, n);
	strcpy(path + n, script_name);
	*root_len = n;
	return path;
}

/* Walk up: cut the last segment of the SCRIPT_NAME part while the path
 * does not exist.  Never above DOCUMENT_ROOT (its first root_len bytes).
 * Returns what the path, now *len bytes long, is; FILE_MISSING when the
 * walk reached DOCUMENT_ROOT. */
static enum file_kind walk_up(char *path, size_t root_len, size_t *len, file_probe_fn probe, void *ctx)
{
	enum file_kind kind;

	for (;;) {
		kind = probe(path, ctx);
		if (kind != FILE_MISSING)
			return kind;
		while (*len > root_len && path[*len - 1] != '/')
			(*len)--;
		while (*len > root_len && path[*len - 1] == '/')
			(*len)--;
		if (*len <= root_len)
			return FILE_MISSING;
		path[*len] = '\0';
	}
}

/* The walk stopped name_len bytes into SCRIPT_NAME: that much is the
 * script's name, the rest PATH_INFO.  Returns SCRIPT_FOUND, or
 * SCRIPT_FORBIDDEN with out freed and *why. */
static enum script_result split_path_info(const char *script_name, size_t name_len, struct script_location *out,
					  const char **why)
{
	out->script_name = strndup(script_name, name_len);
	out->path_info = strdup(script_name + name_len);
	if (!out->script_name || !out->path_info) {
		script_location_free(out);
		*why = "out of memory";
		return SCRIPT_FORBIDDEN;
	}
	return SCRIPT_FOUND;
}

enum script_result script_resolve(const char *script_filename, const char *document_root,
				  const char *script_name, file_probe_fn probe, void *ctx,
				  struct script_location *out, const char **why)
{
	size_t root_len, full_len, len;
	enum script_result result;
	enum file_kind kind;
	char *path;

	out->filename = out->script_name = out->path_info = NULL;
	result = refused_unseen(script_filename, document_root, script_name, why);
	if (result != SCRIPT_FOUND)
		return result;
	/* An empty SCRIPT_FILENAME counts as unset: nginx sends one when the
	 * configuration names a variable that is empty. */
	if (script_filename && *script_filename)
		return resolve_named(script_filename, probe, ctx, out, why);
	path = join_document_root(document_root, script_name, &root_len);
	if (!path) {
		*why = "out of memory";
		return SCRIPT_FORBIDDEN;
	}
	full_len = len = root_len + strlen(script_name);
	kind = walk_up(path, root_len, &len, probe, ctx);
	if (kind != FILE_EXECUTABLE) {
		/* A directory reached by walking up means the file below it is
		 * missing; named directly, it is a directory.  A walk that
		 * reached DOCUMENT_ROOT is FILE_MISSING either way. */
		free(path);
		return refuse(len < full_len && kind == FILE_DIRECTORY ? FILE_MISSING : kind, why);
	}
	out->filename = path;
	if (len < full_len)
		return split_path_info(script_name, len - root_len, out, why);
	return SCRIPT_FOUND;
}

bool path_has_dotdot(const char *path)
{
	const char *p = path;

	while ((p = strstr(p, "..")) != NULL) {
		bool starts = p == path || p[-1] == '/';
		bool ends = p[2] == '\0' || p[2] == '/';
		if (starts && ends)
			return true;
		p += 2;
	}
	return false;
}

/* Whether canonical path lies inside canonical directory dir. */
static bool path_inside(const char *path, const char *dir)
{
	size_t n = strlen(dir);

	if (n == 1 && dir[0] == '/')
		return true;
	return strncmp(path, dir, n) == 0 && path[n] == '/';
}

/* Whether the script must be inside DOCUMENT_ROOT.  A file run through
 * an interpreter without an exec bit was never marked as a program: where
 * it lies is all that speaks for it, so --allow-symlinks-out does not
 * reach it. */
static bool held_by_document_root(const struct script_policy *pol, const struct script_origin *from)
{
	if (from->interpreted && !from->executable && pol->n_roots == 0)
		return true;
	return from->walked && !pol->allow_symlinks_out;
}

/* Whether real, the script's canonical path, lies inside DOCUMENT_ROOT.
 * Returns 0, or -1 with *why. */
static int check_inside_document_root(const char *real, const struct script_origin *from, const char **why)
{
	char root[PATH_MAX];

	/* Relative, it would be taken from the daemon's directory. */
	if (!from->document_root || from->document_root[0] != '/') {
		*why = "run through an --interpreter, it must be under DOCUMENT_ROOT or a --root, and DOCUMENT_ROOT "
		       "is missing or not an absolute path";
		return -1;
	}
	if (!realpath(from->document_root, root)) {
		*why = "cannot resolve DOCUMENT_ROOT";
		return -1;
	}
	if (!path_inside(real, root)) {
		*why = from->interpreted ? "run through an --interpreter, it resolves outside DOCUMENT_ROOT (see --root)"
					 : "resolves outside DOCUMENT_ROOT (a symlink leading out; see "
					   "--allow-symlinks-out)";
		return -1;
	}
	return 0;
}

/* Whether -p lets the script run: a directory entry is compared with
 * real (the canonical path), a file entry with filename as given, as
 * 1.1.0 did.  Returns 0, or -1 with *why. */
static int check_allowed(const struct script_policy *pol, const char *filename, const char *real, const char **why)
{
	for (size_t i = 0; i < pol->n_allowed; i++) {
		const char *a = pol->allowed[i];
		size_t n = strlen(a);
		if (n > 0 && a[n - 1] == '/' ? strncmp(real, a, n) == 0 : strcmp(filename, a) == 0)
			return 0;
	}
	*why = "not allowed by -p";
	return -1;
}

/* As suexec: a script others can change is someone else's code.  A file
 * an interpreter runs is opened again by it, by its path, after the
 * checks: its directory must not be writable by others either, or they
 * could swap the file in that moment.  path is what will run (stat()
 * follows symlinks); file, when not NULL, is what stat() of it would say
 * (the file as opened).  Returns 0, or -1 with *why. */
static int check_not_writable(const char *path, const struct stat *file, bool interpreted, const char **why)
{
	char dir[PATH_MAX];
	const char *slash;
	struct stat st;

	if (!file && stat(path, &st) < 0) {
		*why = "cannot stat the script";
		return -1;
	}
	if ((file ? file : &st)->st_mode & (S_IWGRP | S_IWOTH)) {
		*why = "writable by group or others (see --allow-writable)";
		return -1;
	}
	if (!interpreted || !(slash = strrchr(path, '/')))
		return 0;
	snprintf(dir, sizeof(dir), "%.*s", slash == path ? 1 : (int)(slash - path), path);
	if (stat(dir, &st) < 0 || (st.st_mode & (S_IWGRP | S_IWOTH))) {
		*why = "run through an --interpreter, its directory is writable by group or others (see "
		       "--allow-writable)";
		return -1;
	}
	return 0;
}

/* Whether path leads to the file opened. */
static bool leads_to(const char *path, const struct stat *opened)
{
	struct stat now;

	return stat(path, &now) == 0 && now.st_dev == opened->st_dev && now.st_ino == opened->st_ino;
}

/* The canonical path the rules compare, into real (PATH_MAX bytes).  Of a
 * file opened, the kernel's own name for it, read from its fd: realpath()
 * and a stat() after it both follow symlinks, and someone who can swap a
 * directory on the path for a symlink and back between them would have
 * them agree on a file that lies elsewhere.  Where /proc is missing (a
 * --chroot without it), realpath(), which must then lead to the file
 * opened.  Returns 0, or -1 with *why. */
static int canonical(const char *filename, const struct script_origin *from, char *real, const char **why)
{
	char link[64];
	ssize_t n = -1;

	if (from->opened) {
		snprintf(link, sizeof(link), "/proc/self/fd/%d", from->fd);
		n = readlink(link, real, PATH_MAX - 1);
	}
	if (n > 0 && n < PATH_MAX - 1 && real[0] == '/') {
		real[n] = '\0';
	} else if (!realpath(filename, real)) {
		*why = "cannot resolve the path";
		return -1;
	}
	/* Read from the fd, a file removed since it was opened is named
	 * "... (deleted)", which leads nowhere or to another file. */
	if (from->opened && !leads_to(real, from->opened)) {
		*why = "it changed while it was checked";
		return -1;
	}
	return 0;
}

int script_policy_check(const struct script_policy *pol, const char *filename, const struct script_origin *from,
			const char **why)
{
	bool allowed, need_real, inside_root = held_by_document_root(pol, from);
	char real[PATH_MAX];

	if (path_has_dotdot(filename)) {
		*why = "the path has a '..' segment";
		return -1;
	}
	/* The canonical path (realpath: a readlink per component) only when
	 * a rule below compares it: the usual configuration needs none. */
	need_real = inside_root || pol->n_roots > 0 || (from->interpreted && !pol->allow_writable);
	for (size_t i = 0; i < pol->n_allowed && !need_real; i++) {
		size_t n = strlen(pol->allowed[i]);
		need_real = n > 0 && pol->allowed[i][n - 1] == '/';
	}
	if (need_real && canonical(filename, from, real, why) < 0)
		return -1;
	/* The file itself must be in there, not reached through a symlink
	 * leading out. */
	if (inside_root && check_inside_document_root(real, from, why) < 0)
		return -1;
	if (pol->n_roots > 0) {
		allowed = false;
		for (size_t i = 0; i < pol->n_roots && !allowed; i++)
			allowed = path_inside(real, pol->roots[i]);
		if (!allowed) {
			*why = "outside every --root";
			return -1;
		}
	}
	if (pol->n_allowed > 0 && check_allowed(pol, filename, real, why) < 0)
		return -1;
	if (!pol->allow_writable &&
	    check_not_writable(need_real ? real : filename, from->opened ? from->opened : from->seen,
			       from->interpreted, why) < 0)
		return -1;
	return 0;
}

/* One -p or --root entry, as given, to what script_policy_check()
 * compares: a directory (--root; for -p a path ending in '/' or naming a
 * directory) canonical, with a trailing '/' for -p, without for --root;
 * a -p file kept as given and compared as 1.1.0 did, with the path as
 * resolved.  Returns the entry (arg itself, or a new one that replaces
 * it), or NULL with *why. */
static char *resolve_entry(char *arg, bool is_root, char *why, size_t size)
{
	char real[PATH_MAX], *entry;
	struct stat st;
	size_t len = strlen(arg);
	bool dir = is_root || (len > 0 && arg[len - 1] == '/') || (stat(arg, &st) == 0 && S_ISDIR(st.st_mode));

	if (!dir)
		return arg;
	if (!realpath(arg, real)) {
		snprintf(why, size, "%s %s: %s", is_root ? "--root" : "-p", arg, strerror(errno));
		return NULL;
	}
	if (asprintf(&entry, "%s%s", real, is_root || strcmp(real, "/") == 0 ? "" : "/") < 0) {
		snprintf(why, size, "out of memory");
		return NULL;
	}
	free(arg);
	return entry;
}

int script_policy_resolve(struct script_policy *pol, char *why, size_t size)
{
	for (size_t i = 0; i < pol->n_roots; i++)
		if (!(pol->roots[i] = resolve_entry(pol->roots[i], true, why, size)))
			return -1;
	for (size_t i = 0; i < pol->n_allowed; i++)
		if (!(pol->allowed[i] = resolve_entry(pol->allowed[i], false, why, size)))
			return -1;
	return 0;
}
