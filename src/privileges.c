/* Privileges: who fcgiwrap runs as.  Started as root it needs to be told
 * (--user, --group, or --allow-root); it opens its sockets and logs as
 * root, then chroots (--chroot) and becomes that user for good. */
#include "config.h"

#include <grp.h>
#include <pwd.h>
#include <unistd.h>

#include "log.h"
#include "privileges.h"
#include "settings.h"

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
	if (cfg.run_user || cfg.run_group || cfg.chroot_dir)
		fatalx("--user, --group and --chroot need fcgiwrap to be started as root");
}

/* After the sockets are open: --chroot, then become --user/--group, with
 * that user's supplementary groups, for good. */
void privileges_drop(void)
{
	uid_t uid;
	gid_t gid;

	if (geteuid() != 0)
		return;
	if (cfg.chroot_dir && (chroot(cfg.chroot_dir) < 0 || chdir("/") < 0))
		fatal("--chroot %s", cfg.chroot_dir);
	if (!cfg.run_user)
		return;
	privileges_lookup(cfg.run_user, cfg.run_group, &uid, &gid);
	if (uid == 0 && !cfg.allow_root)
		fatalx("--user %s is root: add --allow-root if you mean it", cfg.run_user);
	if (initgroups(cfg.run_user, gid) < 0 || setgid(gid) < 0 || setuid(uid) < 0)
		fatal("cannot become %s", cfg.run_user);
	if (uid != 0 && setuid(0) == 0)
		fatalx("could regain root after dropping privileges");
	log_debug("running as %s (uid %u, gid %u)", cfg.run_user, (unsigned)uid, (unsigned)gid);
}

