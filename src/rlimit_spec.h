/* --rlimit NAME=VALUE.  Pure: no I/O. */
#ifndef FCGIWRAP_RLIMIT_SPEC_H
#define FCGIWRAP_RLIMIT_SPEC_H

#include <sys/resource.h>

/* One --rlimit: a resource and its limit, soft and hard. */
struct rlimit_setting {
	int resource;
	struct rlimit limit;
};

/* Parses "cpu=30", "as=512M", "nofile=1024", "core=unlimited"...  The
 * limit is both soft and hard, so a script cannot raise it.  Returns 0, or
 * -1 with *why. */
int rlimit_spec_parse(const char *spec, struct rlimit_setting *out, const char **why);

/* Names accepted, for messages: "as, core, cpu, ...". */
extern const char rlimit_spec_names[];

#endif
