/* Who fcgiwrap runs as (--user, --group, --allow-root, --chroot). */
#ifndef FCGIWRAP_PRIVILEGES_H
#define FCGIWRAP_PRIVILEGES_H

#include <stdbool.h>
#include <sys/types.h>

/* Before any socket is opened: started as root, refuses to go on unless
 * told whom to run as; not root, refuses options only root can act on. */
void privileges_check(void);

/* Once the sockets are open: --chroot, then --user and --group (with the
 * user's supplementary groups), for good.  Fatal on any failure. */
void privileges_drop(void);

/* Whether the daemon will become another user (root with --user), and
 * who: fatal if the user or group is unknown. */
bool privileges_target(uid_t *uid, gid_t *gid);

/* USER and GROUP (NULL: USER's primary group) to ids; fatal if unknown. */
void privileges_lookup(const char *user, const char *group, uid_t *uid, gid_t *gid);

#endif
