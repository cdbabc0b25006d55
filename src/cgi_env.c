/* Environment building.  Names are deduplicated with a small open-addressing
 * table sized for each call, so the work is linear in the number of
 * entries (a request carries a few dozen, an attacker could send many). */
#include "config.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cgi_env.h"

static const char *const cgi_meta_vars[] = {
	"AUTH_TYPE",   "CONTENT_LENGTH", "CONTENT_TYPE", "GATEWAY_INTERFACE",
	"PATH_INFO",   "PATH_TRANSLATED", "QUERY_STRING", "REMOTE_ADDR",
	"REMOTE_HOST", "REMOTE_IDENT",   "REMOTE_USER",  "REQUEST_METHOD",
	"SCRIPT_NAME", "SERVER_NAME",    "SERVER_PORT",  "SERVER_PROTOCOL",
	"SERVER_SOFTWARE",
};

static size_t name_len(const char *entry)
{
	return strcspn(entry, "=");
}

static bool is_meta_var(const char *entry, size_t len)
{
	if (len >= 4 && strncmp(entry, "HTTP", 4) == 0)
		return true;
	for (size_t i = 0; i < sizeof(cgi_meta_vars) / sizeof(cgi_meta_vars[0]); i++) {
		if (strlen(cgi_meta_vars[i]) == len && strncmp(entry, cgi_meta_vars[i], len) == 0)
			return true;
	}
	return false;
}

static bool in_list(const char *entry, size_t len, char *const *list, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (strlen(list[i]) == len && strncmp(entry, list[i], len) == 0)
			return true;
	}
	return false;
}

/* The daemon's own dealings with its service manager (socket activation,
 * notification, watchdog, upgrade): a script given them could speak for
 * the service, or take sockets that are not its own for its own. */
static char *const manager_vars[] = {
	"LISTEN_FDS",    "LISTEN_PID",   "LISTEN_FDNAMES",     "NOTIFY_SOCKET",
	"WATCHDOG_USEC", "WATCHDOG_PID", "FCGIWRAP_UPGRADE_FD",
};

char **cgi_env_filter_inherited(char *const *environ_in, int clear, char *const *pass, size_t npass)
{
	size_t n = 0, k = 0;
	char **out;

	while (environ_in && environ_in[n])
		n++;
	out = calloc(n + 1, sizeof(*out));
	if (!out)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		size_t len = name_len(environ_in[i]);
		if (environ_in[i][len] != '=' || len == 0)
			continue;
		if (!in_list(environ_in[i], len, pass, npass) &&
		    (clear || is_meta_var(environ_in[i], len) ||
		     in_list(environ_in[i], len, manager_vars, sizeof(manager_vars) / sizeof(manager_vars[0]))))
			continue;
		out[k++] = environ_in[i];
	}
	out[k] = NULL;
	return out;
}

/* Variables that make a program a script may run load or run other code,
 * or run a command, and those a client can set to pass for the web
 * server: never taken from a request's parameters (the web server's
 * configuration may set them; --env can).  Reviewed against what
 * Debian's sh, bash, perl, python3, ruby, lua, git and node read at start.
 * A name ending in '*' is a prefix. */
/* A name and its length, known when compiled: the list is compared with
 * every parameter of every request. */
struct unsafe_name {
	const char *name;
	size_t len;
};
#define U(s) { s, sizeof(s) - 1 }
static const struct unsafe_name unsafe_params[] = {
	/* httpoxy: a client's "Proxy:" header arrives as HTTP_PROXY; curl,
	 * wget and libproxy take a proxy from http_proxy. */
	U("HTTP_PROXY"), U("http_proxy"),
	/* A client's "Redirect-Status:" header: php-cgi before the fix of
	 * CVE-2024-8927 (8.1.30, 8.2.24, 8.3.12) took it for the server's
	 * REDIRECT_STATUS and skipped cgi.force_redirect, so a client ran it
	 * directly.  REDIRECT_STATUS itself is the web server's, and kept. */
	U("HTTP_REDIRECT_STATUS"),
	/* The dynamic loader and the C library (their secure-mode list). */
	U("LD_*"), U("GCONV_PATH"), U("GETCONF_DIR"), U("GLIBC_TUNABLES"), U("HOSTALIASES"), U("LOCPATH"),
	U("MALLOC_CHECK_"), U("MALLOC_TRACE"), U("NIS_PATH"), U("NLSPATH"), U("RESOLV_HOST_CONF"), U("RES_OPTIONS"),
	U("LOCALDOMAIN"),
	/* sh and bash: files sourced at start, options, exported functions
	 * (the "shellshock" form), the trace and the field separator. */
	U("BASH_ENV"), U("ENV"), U("SHELLOPTS"), U("BASHOPTS"), U("BASH_FUNC_*"), U("BASH_XTRACEFD"),
	U("BASH_LOADABLES_PATH"), U("PS4"), U("IFS"), U("CDPATH"),
	/* perl: module paths, options (-M), the debugger, I/O layers, which
	 * can load modules. */
	U("PERL5LIB"), U("PERL5OPT"), U("PERLLIB"), U("PERL5DB"), U("PERLIO"),
	/* python3: every PYTHON* variable (PYTHONPATH, PYTHONHOME,
	 * PYTHONSTARTUP, PYTHONWARNINGS imports the module of a warning
	 * category, PYTHONBREAKPOINT names a callable to import...). */
	U("PYTHON*"),
	/* ruby: -r options and the load path. */
	U("RUBYOPT"), U("RUBYLIB"), U("RUBYSHELL"),
	/* lua: LUA_INIT runs code, LUA_PATH and LUA_CPATH (and their _5_x
	 * forms) choose what loads. */
	U("LUA_*"),
	/* node: options (--require) and the module path. */
	U("NODE_OPTIONS"), U("NODE_PATH"), U("NODE_REPL_EXTERNAL_MODULE"),
	/* git: configuration from the environment names commands to run
	 * (core.pager, core.sshCommand, core.fsmonitor...), and so do these;
	 * GIT_PROJECT_ROOT and GIT_HTTP_EXPORT_ALL, which git-http-backend
	 * needs, are not among them. */
	U("GIT_CONFIG*"), U("GIT_EXEC_PATH"), U("GIT_SSH"), U("GIT_SSH_COMMAND"), U("GIT_PAGER"), U("GIT_EDITOR"),
	U("GIT_SEQUENCE_EDITOR"), U("GIT_ASKPASS"), U("GIT_EXTERNAL_DIFF"), U("GIT_PROXY_COMMAND"),
	U("GIT_TEMPLATE_DIR"),
	/* Commands programs run for their user. */
	U("PAGER"), U("EDITOR"), U("VISUAL"),
	/* OpenSSL loads engines and providers its configuration names. */
	U("OPENSSL_CONF"), U("OPENSSL_ENGINES"), U("OPENSSL_MODULES"),
	/* PHP and Java, should a CGI start them. */
	U("PHPRC"), U("PHP_INI_SCAN_DIR"), U("JAVA_TOOL_OPTIONS"), U("_JAVA_OPTIONS"), U("JDK_JAVA_OPTIONS"),
};
#undef U

#define N_UNSAFE (sizeof(unsafe_params) / sizeof(unsafe_params[0]))
_Static_assert(N_UNSAFE <= 64, "one bit a name in unsafe_first");

/* For each first byte, the names of unsafe_params that start with it, a
 * bit each: a parameter is compared with those only (a request's two
 * dozen parameters against every name came to a thousand comparisons). */
static uint64_t unsafe_first[256];

__attribute__((constructor)) static void index_unsafe_params(void)
{
	for (size_t i = 0; i < N_UNSAFE; i++)
		unsafe_first[(unsigned char)unsafe_params[i].name[0]] |= 1ULL << i;
}

int cgi_env_param_unsafe(const char *name, size_t len)
{
	uint64_t candidates = len ? unsafe_first[(unsigned char)name[0]] : 0;

	while (candidates) {
		const struct unsafe_name *u = &unsafe_params[__builtin_ctzll(candidates)];
		size_t n = u->len;
		candidates &= candidates - 1;
		if (u->name[n - 1] == '*' ? len >= n - 1 && memcmp(name, u->name, n - 1) == 0
					  : n == len && memcmp(name, u->name, len) == 0)
			return 1;
	}
	return 0;
}

const char *cgi_env_get(char *const *env, const char *name)
{
	size_t len = strlen(name);
	for (; env && *env; env++) {
		if (strncmp(*env, name, len) == 0 && (*env)[len] == '=')
			return *env + len + 1;
	}
	return NULL;
}

/* Set of names seen so far: FNV-1a hashed, linear probing. */
struct name_set {
	const char **slot;
	size_t *slot_len;
	size_t mask;
};

static uint32_t hash_name(const char *s, size_t len)
{
	uint32_t h = 2166136261u;
	for (size_t i = 0; i < len; i++)
		h = (h ^ (unsigned char)s[i]) * 16777619u;
	return h;
}

/* Adds name (len bytes); returns false if it was already there. */
static bool name_set_add(struct name_set *set, const char *name, size_t len)
{
	size_t i = hash_name(name, len) & set->mask;
	while (set->slot[i]) {
		if (set->slot_len[i] == len && memcmp(set->slot[i], name, len) == 0)
			return false;
		i = (i + 1) & set->mask;
	}
	set->slot[i] = name;
	set->slot_len[i] = len;
	return true;
}

/* Sizes the set for about twice entries names, so probes stay short.
 * Returns false if an allocation failed (name_set_free() still applies). */
static bool name_set_init(struct name_set *set, size_t entries)
{
	size_t cap = 16;

	while (cap < entries * 2)
		cap *= 2;
	set->slot = calloc(cap, sizeof(*set->slot));
	set->slot_len = malloc(cap * sizeof(*set->slot_len));
	set->mask = cap - 1;
	return set->slot && set->slot_len;
}

static void name_set_free(struct name_set *set)
{
	free(set->slot);
	free(set->slot_len);
}

static size_t count_entries(char *const *v)
{
	size_t n = 0;

	while (v && v[n])
		n++;
	return n;
}

/* Copies the overrides into env as "NAME=value" strings laid out from
 * strings on.  An override with a NULL value still claims its name, which
 * is how a variable is removed.  Returns how many entries it added. */
static size_t put_overrides(struct name_set *set, const struct env_override *ov, size_t nov, char **env,
			    char *strings)
{
	size_t k = 0;

	for (size_t i = 0; i < nov; i++) {
		size_t nl = strlen(ov[i].name);
		if (!name_set_add(set, ov[i].name, nl) || !ov[i].value)
			continue;
		env[k++] = strings;
		memcpy(strings, ov[i].name, nl);
		strings[nl] = '=';
		strcpy(strings + nl + 1, ov[i].value);
		strings += nl + strlen(ov[i].value) + 2;
	}
	return k;
}

char **cgi_env_build(char *const *params, char *const *inherited, const struct env_override *ov,
		     size_t nov)
{
	size_t nparams = count_entries(params), ninh = count_entries(inherited), strbytes = 0, total, k;
	struct name_set set;
	char **env;
	bool set_ok;

	for (size_t i = 0; i < nov; i++) {
		if (ov[i].value)
			strbytes += strlen(ov[i].name) + strlen(ov[i].value) + 2;
	}
	total = nparams + ninh + nov + 1; /* + the default PATH */
	set_ok = name_set_init(&set, total);
	env = malloc((total + 1) * sizeof(*env) + strbytes);
	if (!set_ok || !env) {
		name_set_free(&set);
		free(env);
		return NULL;
	}
	k = put_overrides(&set, ov, nov, env, (char *)(env + total + 1));
	for (size_t i = 0; i < nparams; i++) {
		size_t nl = name_len(params[i]);
		if (params[i][nl] != '=' || nl == 0 || cgi_env_param_unsafe(params[i], nl))
			continue;
		if (name_set_add(&set, params[i], nl))
			env[k++] = params[i];
	}
	for (size_t i = 0; i < ninh; i++) {
		size_t nl = name_len(inherited[i]);
		if (name_set_add(&set, inherited[i], nl))
			env[k++] = inherited[i];
	}
	if (name_set_add(&set, "PATH", 4))
		env[k++] = (char *)"PATH=" CGI_DEFAULT_PATH;
	env[k] = NULL;
	name_set_free(&set);
	return env;
}
