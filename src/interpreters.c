/* Interpreters chosen by a script's name (see interpreters.h). */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "interpreters.h"

int interpreters_add(struct interpreters *m, const char *spec, const char **why)
{
	const char *eq = strchr(spec, '=');
	struct interpreter *v, it;

	if (!eq || eq == spec) {
		*why = "takes SUFFIX=PROGRAM, with a non-empty SUFFIX";
		return -1;
	}
	if (memchr(spec, '/', (size_t)(eq - spec))) {
		*why = "the SUFFIX is the end of a file name: it holds no '/'";
		return -1;
	}
	/* Relative, it would be looked up in each script's directory. */
	if (eq[1] != '/') {
		*why = "the PROGRAM must be an absolute path";
		return -1;
	}
	for (size_t i = 0; i < m->n; i++) {
		if (strlen(m->v[i].suffix) == (size_t)(eq - spec) && strncmp(m->v[i].suffix, spec, (size_t)(eq - spec)) == 0) {
			*why = "the SUFFIX is mapped twice";
			return -1;
		}
	}
	it = (struct interpreter){ strndup(spec, (size_t)(eq - spec)), strdup(eq + 1) };
	v = realloc(m->v, (m->n + 1) * sizeof(*v));
	if (!it.suffix || !it.program || !v) {
		free(it.suffix);
		free(it.program);
		if (v)
			m->v = v;
		*why = "out of memory";
		return -1;
	}
	m->v = v;
	m->v[m->n++] = it;
	return 0;
}

const char *interpreters_find(const struct interpreters *m, const char *path)
{
	size_t len = strlen(path), best = 0;
	const char *program = NULL;

	for (size_t i = 0; i < m->n; i++) {
		size_t n = strlen(m->v[i].suffix);
		if (n <= len && n > best && strcmp(path + len - n, m->v[i].suffix) == 0) {
			best = n;
			program = m->v[i].program;
		}
	}
	return program;
}

int interpreters_check(const struct interpreters *m, char *why, size_t size)
{
	struct stat st;

	for (size_t i = 0; i < m->n; i++) {
		const struct interpreter *it = &m->v[i];
		const char *fault = NULL;
		if (stat(it->program, &st) < 0 || access(it->program, X_OK) < 0)
			fault = strerror(errno);
		else if (!S_ISREG(st.st_mode))
			fault = "not a regular file";
		if (fault) {
			snprintf(why, size, "--interpreter %s=%s: %s: %s", it->suffix, it->program, it->program, fault);
			return -1;
		}
	}
	return 0;
}
