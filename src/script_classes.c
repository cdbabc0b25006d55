/* Script classes (see script_classes.h).  A request of a class waits for
 * one of its class's slots first, in the class's own queue, and only then
 * for one of the -c slots: a burst of one class fills its own queue, not
 * everyone's. */
#include "config.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "escape.h"
#include "script_classes.h"
#include "settings.h"

static struct script_class *classes;
static size_t n_classes;

int script_classes_init(char *why, size_t size)
{
	classes = calloc(cfg.n_script_limits ? cfg.n_script_limits : 1, sizeof(*classes));
	if (!classes) {
		snprintf(why, size, "out of memory");
		return -1;
	}
	for (size_t i = 0; i < cfg.n_script_limits; i++) {
		const char *path = cfg.script_limits[i].path;
		char real[PATH_MAX];
		struct stat st;
		if (!realpath(path, real) || stat(real, &st) < 0) {
			snprintf(why, size, "--script-limit %s: cannot resolve the path", path);
			return -1;
		}
		if (asprintf(&classes[i].path, "%s%s", real, S_ISDIR(st.st_mode) && strcmp(real, "/") != 0 ? "/" : "") < 0) {
			snprintf(why, size, "out of memory");
			return -1;
		}
		slot_pool_init(&classes[i].pool, cfg.script_limits[i].limit);
	}
	n_classes = cfg.n_script_limits;
	return 0;
}

struct script_class *script_class_of(const char *path)
{
	char real[PATH_MAX];

	/* Compared by canonical path, as -p compares directories. */
	if (n_classes == 0 || !realpath(path, real))
		return NULL;
	for (size_t i = 0; i < n_classes; i++) {
		const char *c = classes[i].path;
		size_t n = strlen(c);
		if (c[n - 1] == '/' ? strncmp(real, c, n) == 0 : strcmp(real, c) == 0)
			return &classes[i];
	}
	return NULL;
}

void script_classes_render(FILE *m, const char *format)
{
	static const char *const what[] = { "limit", "running", "queued" };
	static const char *const help[] = { "Scripts of the class that may run at once (--script-limit)",
					    "Scripts of the class running now",
					    "Requests waiting for one of the class's slots" };

	if (strcmp(format, "openmetrics") == 0) {
		/* One family at a time, as OpenMetrics wants. */
		for (int k = 0; k < 3 && n_classes; k++) {
			fprintf(m, "# TYPE fcgiwrap_class_%s gauge\n# HELP fcgiwrap_class_%s %s.\n", what[k], what[k],
				help[k]);
			for (size_t i = 0; i < n_classes; i++) {
				const struct slot_pool *p = &classes[i].pool;
				unsigned v[] = { p->limit, atomic_load(&p->running), atomic_load(&p->queued) };
				fprintf(m, "fcgiwrap_class_%s{class=\"", what[k]);
				escape_metric_label(m, classes[i].path);
				fprintf(m, "\"} %u\n", v[k]);
			}
		}
		return;
	}
	for (size_t i = 0; i < n_classes; i++) {
		const struct slot_pool *p = &classes[i].pool;
		unsigned running = atomic_load(&p->running), queued = atomic_load(&p->queued);
		if (strcmp(format, "json") == 0) {
			fprintf(m, "%s{\"class\":", i ? "," : "");
			escape_json_string(m, classes[i].path);
			fprintf(m, ",\"limit\":%u,\"running\":%u,\"queued\":%u}", p->limit, running, queued);
		} else {
			fprintf(m, "class %s: limit %u, running %u, queued %u\n", classes[i].path, p->limit, running,
				queued);
		}
	}
}
