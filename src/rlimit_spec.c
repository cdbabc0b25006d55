/* Parsing of --rlimit specifications. */
#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rlimit_spec.h"

static const struct {
	const char *name;
	int resource;
	int sized; /* takes K/M/G suffixes (bytes) */
} names[] = {
	{ "as", RLIMIT_AS, 1 },       { "core", RLIMIT_CORE, 1 },     { "cpu", RLIMIT_CPU, 0 },
	{ "data", RLIMIT_DATA, 1 },   { "fsize", RLIMIT_FSIZE, 1 },   { "nofile", RLIMIT_NOFILE, 0 },
	{ "nproc", RLIMIT_NPROC, 0 }, { "stack", RLIMIT_STACK, 1 },
};

const char rlimit_spec_names[] = "as, core, cpu (seconds), data, fsize, nofile, nproc, stack";

int rlimit_spec_parse(const char *spec, struct rlimit_setting *out, const char **why)
{
	const char *eq = strchr(spec, '=');
	const char *value;
	unsigned long long v, mult = 1;
	char *end;
	size_t i;

	if (!eq) {
		*why = "expected NAME=VALUE";
		return -1;
	}
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (strlen(names[i].name) == (size_t)(eq - spec) && strncmp(spec, names[i].name, (size_t)(eq - spec)) == 0)
			break;
	}
	if (i == sizeof(names) / sizeof(names[0])) {
		*why = "unknown resource name";
		return -1;
	}
	value = eq + 1;
	out->resource = names[i].resource;
	if (strcmp(value, "unlimited") == 0) {
		out->limit.rlim_cur = out->limit.rlim_max = RLIM_INFINITY;
		return 0;
	}
	if (*value < '0' || *value > '9') {
		*why = "value must be a number or 'unlimited'";
		return -1;
	}
	errno = 0;
	v = strtoull(value, &end, 10);
	if (names[i].sized && *end && !end[1]) {
		switch (*end) {
		case 'K': case 'k': mult = 1ULL << 10; end++; break;
		case 'M': case 'm': mult = 1ULL << 20; end++; break;
		case 'G': case 'g': mult = 1ULL << 30; end++; break;
		}
	}
	if (errno || *end || (mult > 1 && v > UINT64_MAX / mult)) {
		*why = "value must be a number (with K, M or G for sizes) or 'unlimited'";
		return -1;
	}
	out->limit.rlim_cur = out->limit.rlim_max = (rlim_t)(v * mult);
	return 0;
}
