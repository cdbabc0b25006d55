/* The environment a CGI script runs with.  Pure: no I/O. */
#ifndef FCGIWRAP_CGI_ENV_H
#define FCGIWRAP_CGI_ENV_H

#include <stddef.h>

struct env_override {
	const char *name;
	const char *value; /* NULL removes the variable */
};

/* Returns a copy of environ without the names a request's params speak
 * for: the CGI meta-variables and every name starting with HTTP (HTTP_*,
 * HTTPS), as fcgiwrap 1.1.0 does.  The strings are shared, the vector is
 * malloc'd; NULL on allocation failure. */
char **cgi_env_filter_inherited(char *const *environ_in);

/* Builds a script's environment: overrides first, then the params (the
 * first occurrence of a name wins, as getenv() in 1.1.0 saw it), then the
 * inherited entries whose names are not set yet.  Entries without '=' are
 * dropped.  One malloc holds the vector and the override strings; free()
 * it.  NULL on allocation failure. */
char **cgi_env_build(char *const *params, char *const *inherited, const struct env_override *ov,
		     size_t nov);

/* The value of name in a NULL-terminated name=value vector, or NULL. */
const char *cgi_env_get(char *const *env, const char *name);

#endif
