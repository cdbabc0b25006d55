/* libFuzzer target: the environment builder.  The input is split at '\n'
 * into request parameters; the result must hold each name once, never an
 * unsafe parameter, and always PATH. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/cgi_env.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *copy = malloc(size + 1), **params, **env, *p;
	char *inherited[] = { "PATH=/usr/bin", "HOME=/", "LANG=C", NULL };
	struct env_override ov[] = { { "SCRIPT_NAME", "/x" }, { "PATH_INFO", NULL } };
	size_t n = 1, k = 0;

	memcpy(copy, data, size);
	copy[size] = '\0';
	for (size_t i = 0; i < size; i++)
		n += copy[i] == '\n';
	params = calloc(n + 1, sizeof(char *));
	for (p = copy; p; k++) {
		char *nl = strchr(p, '\n');
		if (nl)
			*nl++ = '\0';
		params[k] = p;
		p = nl;
	}
	env = cgi_env_build(params, inherited, ov, 2);
	if (!env || !cgi_env_get(env, "PATH") || cgi_env_get(env, "PATH_INFO"))
		abort();
	for (size_t i = 0; env[i]; i++) {
		size_t len = strcspn(env[i], "=");
		if (env[i][len] != '=' || len == 0)
			abort();
		for (size_t j = 0; j < i; j++) {
			if (strncmp(env[i], env[j], len + 1) == 0)
				abort(); /* a name twice */
		}
		if (cgi_env_param_unsafe(env[i], len))
			abort();
	}
	free(env);
	free(params);
	free(copy);
	return 0;
}
