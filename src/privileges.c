/* Privileges: who fcgiwrap runs as.  Started as root it needs to be told
 * (--user, --group, or --allow-root); it opens its sockets and logs as
 * root, then chroots (--chroot) and becomes that user for good. */
#include "config.h"

#include <grp.h>
#include <pwd.h>
#include <stdlib.h>
#include <unistd.h>

#include "log.h"
#include "privileges.h"
#include "settings.h"
#include "upgrade.h"

/* USER[:GROUP] to ids; GROUP defaults to USER's primary group. */
void privileges_lookup(const char *user, const char *group, uid_t *uid, gid_t *gid)
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

/* Started as root: refuse unless told who to run as (or --allow-root).
 * Checked before any socket is created. */
void privileges_check(void)
{
	if (geteuid() == 0) {
		if (!cfg.run_user && !cfg.allow_root)
			fatalx("refusing to run scripts as root: use --user USER (and --group GROUP), "
			       "or --allow-root if you mean it");
		return;
	}
	if (cfg.chroot_dir)
		fatalx("--chroot needs fcgiwrap to be started as root");
	/* A copy started by an upgrade runs as the first copy's drop left
	 * it, --user and --group done, supplementary groups included.  Any
	 * other start as that user is refused as before: its groups are
	 * whatever its starter left. */
	if ((cfg.run_user || cfg.run_group) && !upgrade_inherited())
		fatalx("--user and --group need fcgiwrap to be started as root");
	if (cfg.run_user || cfg.run_group) {
		uid_t uid = geteuid();
		gid_t gid = getegid();
		if (cfg.run_user) {
			privileges_lookup(cfg.run_user, cfg.run_group, &uid, &gid);
		} else {
			struct group *gr = getgrnam(cfg.run_group);
			if (!gr)
				fatalx("unknown group '%s'", cfg.run_group);
			gid = gr->gr_gid;
		}
		if (uid != geteuid() || gid != getegid())
			fatalx("--user and --group need fcgiwrap to be started as root (an upgraded copy runs as "
			       "the first one dropped to)");
	}
}

/* The user's groups, its primary or --group gid among them, as
 * initgroups() would set them.  Returns a malloc'd list. */
static gid_t *user_groups(const char *user, gid_t gid, int *n)
{
	int cap = 32;
	gid_t *list = NULL;

	for (;;) {
		gid_t *more = realloc(list, (size_t)cap * sizeof(gid_t));
		int want = cap;
		if (!more)
			fatalx("out of memory");
		list = more;
		if (getgrouplist(user, gid, list, &want) >= 0) {
			*n = want;
			return list;
		}
		cap = want > cap ? want : cap * 2;
	}
}

bool privileges_target(uid_t *uid, gid_t *gid)
{
	if (geteuid() != 0 || !cfg.run_user)
		return false;
	privileges_lookup(cfg.run_user, cfg.run_group, uid, gid);
	return true;
}

/* After the sockets are open: --chroot, then become --user/--group, with
 * that user's supplementary groups, for good.  The user and its groups
 * are looked up before the chroot: the jail need not hold passwd and
 * group files. */
void privileges_drop(void)
{
	uid_t uid = 0;
	gid_t gid = 0, *groups = NULL;
	int ngroups = 0;

	if (geteuid() != 0)
		return;
	if (privileges_target(&uid, &gid)) {
		if (uid == 0 && !cfg.allow_root)
			fatalx("--user %s is root: add --allow-root if you mean it", cfg.run_user);
		groups = user_groups(cfg.run_user, gid, &ngroups);
	}
	if (cfg.chroot_dir && (chroot(cfg.chroot_dir) < 0 || chdir("/") < 0))
		fatal("--chroot %s", cfg.chroot_dir);
	if (!cfg.run_user)
		return;
	if (setgroups((size_t)ngroups, groups) < 0 || setgid(gid) < 0 || setuid(uid) < 0)
		fatal("cannot become %s", cfg.run_user);
	free(groups);
	if (uid != 0 && setuid(0) == 0)
		fatalx("could regain root after dropping privileges");
	log_debug("running as %s (uid %u, gid %u)", cfg.run_user, (unsigned)uid, (unsigned)gid);
}
