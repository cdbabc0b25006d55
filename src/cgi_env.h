/* The environment a CGI script runs with.  Pure: no I/O. */
#ifndef FCGIWRAP_CGI_ENV_H
#define FCGIWRAP_CGI_ENV_H

#include <stddef.h>

struct env_override {
	const char *name;
	const char *value; /* NULL removes the variable */
};

/* PATH for scripts when neither the params nor the options give one. */
#define CGI_DEFAULT_PATH "/usr/local/bin:/usr/bin:/bin"

/* Returns the part of environ scripts inherit.  By default: all of it but
 * the names a request's params speak for, the CGI meta-variables and every
 * name starting with HTTP (HTTP_*, HTTPS), as fcgiwrap 1.1.0 does, and the
 * service manager's (LISTEN_FDS, NOTIFY_SOCKET, WATCHDOG_USEC...); with
 * clear (--clear-env), nothing.  Names in pass (--pass-env, npass of them)
 * are inherited either way.  The strings are shared, the vector is
 * malloc'd; NULL on allocation failure. */
char **cgi_env_filter_inherited(char *const *environ_in, int clear, char *const *pass, size_t npass);

/* Whether a request parameter named name (len bytes) must never reach a
 * script: HTTP_PROXY and http_proxy (httpoxy), and variables that make the
 * dynamic loader, the C library, a shell, an interpreter or git load or
 * run other code (LD_*, BASH_ENV, PERL5OPT, PYTHON*, LUA_*,
 * GIT_CONFIG*...: the table in cgi_env.c says why for each). */
int cgi_env_param_unsafe(const char *name, size_t len);

/* Builds a script's environment: overrides first (SCRIPT_NAME and
 * PATH_INFO after resolution, then --env), then the params (the first
 * occurrence of a name wins, as getenv() in 1.1.0 saw it; unsafe ones are
 * dropped), then the inherited entries whose names are not set yet, then
 * PATH=CGI_DEFAULT_PATH if no PATH was set.  Entries without '=' are
 * dropped.  One malloc holds the vector and the override strings; free()
 * it.  NULL on allocation failure. */
char **cgi_env_build(char *const *params, char *const *inherited, const struct env_override *ov,
		     size_t nov);

/* The value of name in a NULL-terminated name=value vector, or NULL. */
const char *cgi_env_get(char *const *env, const char *name);

#endif
