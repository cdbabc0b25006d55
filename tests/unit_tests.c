/* Table-driven unit tests of the parts that do no I/O: CGI header parsing,
 * socket URLs, environment building, script path resolution, the FastCGI
 * record reader and parameter decoding, rlimit specs, --allow-from rules,
 * --interpreter mappings, the status page's query, the main loop's timers,
 * access log formats, (through a socketpair) the record writer, and the
 * slot pools' queue.
 * Prints one line per failure and a closing "N passed, N failed". */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fastcgi.h>

#include "../src/access_log.h"
#include "../src/cgi_env.h"
#include "../src/cgi_header.h"
#include "../src/escape.h"
#include "../src/fcgi_out.h"
#include "../src/fcgi_params.h"
#include "../src/fcgi_reader.h"
#include "../src/interpreters.h"
#include "../src/peer_acl.h"
#include "../src/rlimit_spec.h"
#include "../src/script_path.h"
#include "../src/slots.h"
#include "../src/socket_url.h"
#include "../src/status_query.h"
#include "../src/timers.h"
#include "unit.h"

/* ---- CGI response headers ---- */

static const struct {
	const char *in;
	int result; /* CGI_HEADER_DONE, _ERROR, or _MORE after all input */
	int status;
	const char *out; /* normalised block, for DONE */
	size_t body_at;  /* where the body starts in `in`, for DONE */
	const char *error;
} header_cases[] = {
	{ "Content-Type: text/plain\n\nbody", CGI_HEADER_DONE, 200, "Content-Type: text/plain\r\n\r\n", 26, NULL },
	{ "Content-Type: text/plain\r\n\r\nbody", CGI_HEADER_DONE, 200, "Content-Type: text/plain\r\n\r\n", 28, NULL },
	{ "A: 1\r\nB: 2\n\r\n", CGI_HEADER_DONE, 200, "A: 1\r\nB: 2\r\n\r\n", 13, NULL },
	{ "Status: 404 Not Found\nContent-Type: text/html\n\n", CGI_HEADER_DONE, 404,
	  "Status: 404 Not Found\r\nContent-Type: text/html\r\n\r\n", 47, NULL },
	{ "status:301\n\n", CGI_HEADER_DONE, 301, "status:301\r\n\r\n", 12, NULL },
	{ "Location: http://example.com/\n\n", CGI_HEADER_DONE, 302,
	  "Location: http://example.com/\r\nStatus: 302 Found\r\n\r\n", 31, NULL },
	{ "Location: /local\n\n", CGI_HEADER_DONE, 302, "Location: /local\r\nStatus: 302 Found\r\n\r\n", 18, NULL },
	{ "Location: /local\nStatus: 303 See Other\n\n", CGI_HEADER_DONE, 303,
	  "Location: /local\r\nStatus: 303 See Other\r\n\r\n", 40, NULL },
	{ "Set-Cookie: a=1\nSet-Cookie: b=2\n\n", CGI_HEADER_DONE, 200,
	  "Set-Cookie: a=1\r\nSet-Cookie: b=2\r\n\r\n", 33, NULL },
	{ "X-Empty:\n\n", CGI_HEADER_DONE, 200, "X-Empty:\r\n\r\n", 10, NULL },
	{ "Content-Type: text/plain\n", CGI_HEADER_MORE, 0, NULL, 0, NULL },
	{ "Content-Type: text/plain\n\r", CGI_HEADER_MORE, 0, NULL, 0, NULL },
	{ "\nbody", CGI_HEADER_ERROR, 0, NULL, 0, "blank first line: no CGI headers" },
	{ "\r\nbody", CGI_HEADER_ERROR, 0, NULL, 0, "blank first line: no CGI headers" },
	{ "just text\n\n", CGI_HEADER_ERROR, 0, NULL, 0, "header line without a field name" },
	{ ": value\n\n", CGI_HEADER_ERROR, 0, NULL, 0, "header line without a field name" },
	{ "Bad Name: x\n\n", CGI_HEADER_ERROR, 0, NULL, 0, "invalid character in header field name" },
	{ "A: 1\n folded\n\n", CGI_HEADER_ERROR, 0, NULL, 0, "folded header line" },
	{ "Status: abc\n\n", CGI_HEADER_ERROR, 0, NULL, 0, "malformed Status header" },
	{ "Status: 20\n\n", CGI_HEADER_ERROR, 0, NULL, 0, "malformed Status header" },
	{ "Status: 2000\n\n", CGI_HEADER_ERROR, 0, NULL, 0, "malformed Status header" },
	{ "Status: 200 OK\nStatus: 404 No\n\n", CGI_HEADER_ERROR, 0, NULL, 0, "more than one Status header" },
	{ "Location:\n\n", CGI_HEADER_ERROR, 0, NULL, 0, "empty Location header" },
	{ "A: x\ry\n\n", CGI_HEADER_ERROR, 0, NULL, 0, "control character in header line" },
	{ "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nx", CGI_HEADER_DONE, 200,
	  "Status: 200 OK\r\nContent-Type: text/plain\r\n\r\n", 45, NULL },
	{ "HTTP/1.0 404 Not Found\n\n", CGI_HEADER_DONE, 404, "Status: 404 Not Found\r\n\r\n", 24, NULL },
	{ "HTTP/1.1 302\nLocation: /x\n\n", CGI_HEADER_DONE, 302, "Status: 302\r\nLocation: /x\r\n\r\n", 27, NULL },
	{ "HTTP/1.1 20x OK\n\n", CGI_HEADER_ERROR, 0, NULL, 0, "malformed HTTP status line (NPH)" },
	{ "X: 1\nHTTP/1.1 200 OK\n\n", CGI_HEADER_ERROR, 0, NULL, 0, "header line without a field name" },
};

/* Feeds `in` whole, or one byte at a time (which must give the same). */
static void run_header_case(size_t idx, bool bytewise)
{
	struct cgi_header h;
	const char *in = header_cases[idx].in;
	size_t len = strlen(in), pos = 0, used;
	int res = CGI_HEADER_MORE;

	cgi_header_init(&h);
	while (pos < len && res == CGI_HEADER_MORE) {
		size_t n = bytewise ? 1 : len - pos;
		res = cgi_header_feed(&h, in + pos, n, &used);
		pos += used;
	}
	CHECK(res == header_cases[idx].result, "header case %zu (%s): result %d, want %d", idx,
	      bytewise ? "bytewise" : "whole", res, header_cases[idx].result);
	if (res == CGI_HEADER_DONE && header_cases[idx].result == CGI_HEADER_DONE) {
		CHECK(h.status == header_cases[idx].status, "header case %zu: status %d", idx, h.status);
		CHECK(h.out_len == strlen(header_cases[idx].out) &&
			      memcmp(h.out, header_cases[idx].out, h.out_len) == 0,
		      "header case %zu: output %.*s", idx, (int)h.out_len, h.out);
		CHECK(pos == header_cases[idx].body_at, "header case %zu: body at %zu", idx, pos);
	}
	if (res == CGI_HEADER_ERROR && header_cases[idx].error)
		CHECK(strcmp(h.error, header_cases[idx].error) == 0, "header case %zu: error '%s'", idx, h.error);
	cgi_header_free(&h);
}

static void test_headers(void)
{
	struct cgi_header h;
	size_t used;
	char *big;

	for (size_t i = 0; i < sizeof(header_cases) / sizeof(header_cases[0]); i++) {
		run_header_case(i, false);
		run_header_case(i, true);
	}

	/* End of output: nothing, an unfinished block, a bad first line. */
	cgi_header_init(&h);
	cgi_header_eof(&h);
	CHECK(strcmp(h.error, "script produced no output") == 0, "eof empty: %s", h.error);
	cgi_header_free(&h);
	cgi_header_init(&h);
	cgi_header_feed(&h, "A: 1\n", 5, &used);
	cgi_header_eof(&h);
	CHECK(strstr(h.error, "ended inside its headers") != NULL, "eof partial: %s", h.error);
	cgi_header_free(&h);
	cgi_header_init(&h);
	cgi_header_feed(&h, "hello world\n", 12, &used);
	cgi_header_eof(&h);
	CHECK(strcmp(h.error, "header line without a field name") == 0, "eof body only: %s", h.error);
	cgi_header_free(&h);

	/* The size limit: a block of exactly CGI_HEADER_MAX is accepted, one
	 * byte more is not. */
	big = malloc(CGI_HEADER_MAX + 16);
	memcpy(big, "X-Big: ", 7);
	memset(big + 7, 'a', CGI_HEADER_MAX - 7 - 2);
	memcpy(big + CGI_HEADER_MAX - 2, "\n\n", 2);
	cgi_header_init(&h);
	CHECK(cgi_header_feed(&h, big, CGI_HEADER_MAX, &used) == CGI_HEADER_DONE, "64 KiB block refused");
	cgi_header_free(&h);
	memset(big + 7, 'a', CGI_HEADER_MAX - 7);
	memcpy(big + CGI_HEADER_MAX - 1, "\n\n", 2);
	cgi_header_init(&h);
	CHECK(cgi_header_feed(&h, big, CGI_HEADER_MAX + 1, &used) == CGI_HEADER_ERROR, "oversized block accepted");
	cgi_header_free(&h);
	free(big);
}

/* ---- socket URLs ---- */

static void test_socket_urls(void)
{
	static const struct {
		const char *url;
		int ok;
		int family;
		const char *addr; /* path, or address text */
		int port;
	} cases[] = {
		{ "unix:/run/fcgiwrap.socket", 1, AF_UNIX, "/run/fcgiwrap.socket", 0 },
		{ "unix:relative.sock", 1, AF_UNIX, "relative.sock", 0 },
		{ "tcp:127.0.0.1:9000", 1, AF_INET, "127.0.0.1", 9000 },
		{ "tcp:0.0.0.0:65535", 1, AF_INET, "0.0.0.0", 65535 },
		{ "tcp6:[::1]:9000", 1, AF_INET6, "::1", 9000 },
		{ "tcp6:[2001:db8::5]:1", 1, AF_INET6, "2001:db8::5", 1 },
		{ "unix:", 0, 0, NULL, 0 },
		{ "tcp:127.0.0.1", 0, 0, NULL, 0 },
		{ "tcp:127.0.0.1:0", 0, 0, NULL, 0 },
		{ "tcp:127.0.0.1:65536", 0, 0, NULL, 0 },
		{ "tcp:127.0.0.1:80x", 0, 0, NULL, 0 },
		{ "tcp:127.0.0.1:-1", 0, 0, NULL, 0 },
		{ "tcp:localhost:80", 0, 0, NULL, 0 },
		{ "tcp::80", 0, 0, NULL, 0 },
		{ "tcp6:::1:80", 0, 0, NULL, 0 },
		{ "tcp6:[::1]80", 0, 0, NULL, 0 },
		{ "tcp6:[1.2.3.4]:80", 0, 0, NULL, 0 },
		{ "/run/sock", 0, 0, NULL, 0 },
		{ "", 0, 0, NULL, 0 },
	};
	char longpath[200];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct socket_addr a;
		const char *why = NULL;
		char text[INET6_ADDRSTRLEN] = "";
		int rc = socket_url_parse(cases[i].url, &a, &why);

		CHECK((rc == 0) == cases[i].ok, "url '%s': rc %d (%s)", cases[i].url, rc, why ? why : "");
		if (rc != 0 || !cases[i].ok)
			continue;
		CHECK(a.family == cases[i].family, "url '%s': family", cases[i].url);
		if (a.family == AF_UNIX) {
			CHECK(strcmp(((struct sockaddr_un *)&a.ss)->sun_path, cases[i].addr) == 0, "url '%s': path",
			      cases[i].url);
		} else if (a.family == AF_INET) {
			struct sockaddr_in *sin = (struct sockaddr_in *)&a.ss;
			inet_ntop(AF_INET, &sin->sin_addr, text, sizeof(text));
			CHECK(strcmp(text, cases[i].addr) == 0 && ntohs(sin->sin_port) == cases[i].port,
			      "url '%s': %s:%d", cases[i].url, text, ntohs(sin->sin_port));
		} else {
			struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&a.ss;
			inet_ntop(AF_INET6, &sin6->sin6_addr, text, sizeof(text));
			CHECK(strcmp(text, cases[i].addr) == 0 && ntohs(sin6->sin6_port) == cases[i].port,
			      "url '%s': %s:%d", cases[i].url, text, ntohs(sin6->sin6_port));
		}
	}
	memset(longpath, 'a', sizeof(longpath));
	memcpy(longpath, "unix:/", 6);
	longpath[sizeof(longpath) - 1] = '\0';
	{
		struct socket_addr a;
		const char *why;
		CHECK(socket_url_parse(longpath, &a, &why) < 0, "over-long unix path accepted");
	}
}

/* ---- environment ---- */

static size_t env_count(char **env)
{
	size_t n = 0;
	while (env[n])
		n++;
	return n;
}

static void test_env(void)
{
	char *daemon_env[] = { "PATH=/usr/bin:/bin", "HOME=/root", "HTTP_PROXY=http://evil", "HTTPS=on",
			       "QUERY_STRING=daemon", "SCRIPT_NAME=daemon", "REMOTE_USER=daemon",
			       "NOEQUALS", "=empty-name", "LANG=C", "LISTEN_FDS=1", "LISTEN_PID=1",
			       "NOTIFY_SOCKET=/run/systemd/notify", "WATCHDOG_USEC=1", "FCGIWRAP_UPGRADE_FD=4", NULL };
	char *params[] = { "FCGI_ROLE=RESPONDER", "QUERY_STRING=a=b", "SCRIPT_NAME=/x.cgi/extra",
			   "PATH_INFO=/old", "LANG=de_DE", "LANG=fr_FR", "HTTP_HOST=example.org",
			   "BROKEN", NULL };
	struct env_override ov[] = { { "SCRIPT_NAME", "/x.cgi" }, { "PATH_INFO", "/extra" } };
	struct env_override unset[] = { { "PATH_INFO", NULL } };
	char **inh, **env;

	inh = cgi_env_filter_inherited(daemon_env, 0, NULL, 0);
	CHECK(env_count(inh) == 3, "inherited %zu entries", env_count(inh));
	CHECK(cgi_env_get(inh, "PATH") && cgi_env_get(inh, "HOME") && cgi_env_get(inh, "LANG"),
	      "PATH, HOME, LANG inherited");
	CHECK(!cgi_env_get(inh, "HTTP_PROXY") && !cgi_env_get(inh, "HTTPS") && !cgi_env_get(inh, "QUERY_STRING"),
	      "CGI and HTTP* names filtered");
	CHECK(!cgi_env_get(inh, "LISTEN_FDS") && !cgi_env_get(inh, "NOTIFY_SOCKET") && !cgi_env_get(inh, "WATCHDOG_USEC") &&
		      !cgi_env_get(inh, "FCGIWRAP_UPGRADE_FD"),
	      "the service manager's names filtered");

	env = cgi_env_build(params, inh, ov, 2);
	CHECK(strcmp(cgi_env_get(env, "SCRIPT_NAME"), "/x.cgi") == 0, "override SCRIPT_NAME");
	CHECK(strcmp(cgi_env_get(env, "PATH_INFO"), "/extra") == 0, "override PATH_INFO");
	CHECK(strcmp(cgi_env_get(env, "QUERY_STRING"), "a=b") == 0, "value with '='");
	CHECK(strcmp(cgi_env_get(env, "LANG"), "de_DE") == 0, "first param wins over later and inherited");
	CHECK(strcmp(cgi_env_get(env, "PATH"), "/usr/bin:/bin") == 0, "inherited PATH");
	CHECK(strcmp(cgi_env_get(env, "HTTP_HOST"), "example.org") == 0, "HTTP_ param kept");
	CHECK(env_count(env) == 8, "entries: %zu", env_count(env));
	CHECK(strcmp(cgi_env_get(env, "PATH"), "/usr/bin:/bin") == 0, "inherited PATH kept");
	for (size_t i = 0; env[i]; i++)
		CHECK(strcmp(env[i], "BROKEN") != 0, "entry without '=' dropped");
	free(env);

	env = cgi_env_build(params, NULL, unset, 1);
	CHECK(cgi_env_get(env, "PATH_INFO") == NULL, "override with NULL removes");
	free(env);

	env = cgi_env_build(NULL, NULL, NULL, 0);
	CHECK(env && env[0] && strcmp(env[0], "PATH=" CGI_DEFAULT_PATH) == 0 && env[1] == NULL,
	      "empty environment gets the default PATH");
	free(env);
	free(inh);

	/* --clear-env and --pass-env. */
	{
		char *pass[] = { "HOME", "HTTPS" };
		inh = cgi_env_filter_inherited(daemon_env, 1, pass, 2);
		CHECK(env_count(inh) == 2 && cgi_env_get(inh, "HOME") && cgi_env_get(inh, "HTTPS"),
		      "clear-env keeps only pass-env names: %zu", env_count(inh));
		free(inh);
		inh = cgi_env_filter_inherited(daemon_env, 0, pass + 1, 1);
		CHECK(cgi_env_get(inh, "HTTPS") && cgi_env_get(inh, "LANG"), "pass-env adds a filtered name");
		free(inh);
	}

	/* Parameters that must never reach a script. */
	{
		static const struct {
			const char *name;
			int unsafe;
		} names[] = {
			{ "HTTP_PROXY", 1 }, { "LD_PRELOAD", 1 }, { "LD_LIBRARY_PATH", 1 }, { "LD_AUDIT", 1 },
			{ "GCONV_PATH", 1 }, { "BASH_ENV", 1 }, { "ENV", 1 }, { "PERL5OPT", 1 },
			{ "PYTHONPATH", 1 }, { "GLIBC_TUNABLES", 1 }, { "NODE_OPTIONS", 1 },
			{ "http_proxy", 1 }, { "LUA_INIT", 1 }, { "LUA_INIT_5_4", 1 }, { "LUA_CPATH_5_3", 1 },
			{ "PYTHONWARNINGS", 1 }, { "PYTHONBREAKPOINT", 1 }, { "GIT_CONFIG_PARAMETERS", 1 },
			{ "GIT_CONFIG_COUNT", 1 }, { "GIT_CONFIG_KEY_0", 1 }, { "GIT_SSH_COMMAND", 1 },
			{ "BASH_FUNC_x%%", 1 }, { "PERLIO", 1 }, { "RUBYOPT", 1 }, { "OPENSSL_CONF", 1 },
			{ "PAGER", 1 }, { "HTTP_REDIRECT_STATUS", 1 },
			{ "HTTP_HOST", 0 }, { "REDIRECT_STATUS", 0 }, { "HTTP_REDIRECT_STATUSX", 0 }, { "HTTP_PROXY_AUTH", 0 }, { "HTTPS", 0 }, { "LD", 0 },
			{ "ENVIRONMENT", 0 }, { "PATH", 0 }, { "QUERY_STRING", 0 }, { "TMPDIR", 0 },
			{ "GIT_PROJECT_ROOT", 0 }, { "GIT_HTTP_EXPORT_ALL", 0 }, { "LUA", 0 }, { "PYTHO", 0 },
			{ "https_proxy_x", 0 }, { "NODE_ENV", 0 },
		};
		char *unsafe_params[] = { "LD_PRELOAD=/tmp/evil.so", "HTTP_PROXY=http://evil:1", "A=1",
					  "BASH_ENV=/tmp/x", "PATH=/evil", NULL };
		for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
			CHECK(cgi_env_param_unsafe(names[i].name, strlen(names[i].name)) == names[i].unsafe,
			      "unsafe param %s", names[i].name);
		env = cgi_env_build(unsafe_params, NULL, NULL, 0);
		CHECK(!cgi_env_get(env, "LD_PRELOAD") && !cgi_env_get(env, "HTTP_PROXY") &&
			      !cgi_env_get(env, "BASH_ENV") && cgi_env_get(env, "A"),
		      "unsafe params dropped");
		CHECK(strcmp(cgi_env_get(env, "PATH"), "/evil") == 0, "PATH from params is the web server's");
		free(env);
	}

	/* Many distinct names: every one kept once (the table grows). */
	{
		enum { N = 5000 };
		char **many = calloc(2 * N + 1, sizeof(char *));
		for (int i = 0; i < N; i++) {
			asprintf(&many[i], "V%d=%d", i, i);
			asprintf(&many[N + i], "V%d=dup", i);
		}
		env = cgi_env_build(many, NULL, NULL, 0);
		CHECK(env_count(env) == N + 1, "5000 names and PATH, duplicates dropped: %zu", env_count(env));
		CHECK(strcmp(cgi_env_get(env, "V4999"), "4999") == 0, "last of many");
		free(env);
		for (int i = 0; i < 2 * N; i++)
			free(many[i]);
		free(many);
	}
}

/* ---- script path resolution, against a file system given as a table ---- */

static const struct {
	const char *path;
	enum file_kind kind;
} fake_fs[] = {
	{ "/srv/www", FILE_DIRECTORY },
	{ "/srv/www/cgi-bin", FILE_DIRECTORY },
	{ "/srv/www/cgi-bin/app.cgi", FILE_EXECUTABLE },
	{ "/srv/www/cgi-bin/readme.txt", FILE_NOT_EXECUTABLE },
	{ "/srv/www/cgi-bin/fifo", FILE_OTHER },
	{ "/srv/www/index.cgi", FILE_EXECUTABLE },
	{ "/usr/lib/git-core/git-http-backend", FILE_EXECUTABLE },
};

static unsigned fake_probe_calls;

static enum file_kind fake_probe(const char *path, void *ctx)
{
	(void)ctx;
	fake_probe_calls++;
	for (size_t i = 0; i < sizeof(fake_fs) / sizeof(fake_fs[0]); i++) {
		if (strcmp(fake_fs[i].path, path) == 0)
			return fake_fs[i].kind;
	}
	return FILE_MISSING;
}

static void test_script_path(void)
{
	static const struct {
		const char *script_filename, *document_root, *script_name;
		enum script_result result;
		const char *filename, *new_script_name, *path_info;
	} cases[] = {
		{ "/usr/lib/git-core/git-http-backend", NULL, NULL, SCRIPT_FOUND,
		  "/usr/lib/git-core/git-http-backend", NULL, NULL },
		{ "/usr/lib/git-core/git-http-backend", "/srv/www", "/ignored", SCRIPT_FOUND,
		  "/usr/lib/git-core/git-http-backend", NULL, NULL },
		{ "/srv/www/missing.cgi", NULL, NULL, SCRIPT_NOT_FOUND, NULL, NULL, NULL },
		{ "/srv/www/cgi-bin/readme.txt", NULL, NULL, SCRIPT_FORBIDDEN, NULL, NULL, NULL },
		{ "/srv/www/cgi-bin", NULL, NULL, SCRIPT_FORBIDDEN, NULL, NULL, NULL },
		{ "/srv/www/cgi-bin/fifo", NULL, NULL, SCRIPT_FORBIDDEN, NULL, NULL, NULL },
		{ "", "/srv/www", "/cgi-bin/app.cgi", SCRIPT_FOUND, "/srv/www/cgi-bin/app.cgi", NULL, NULL },
		{ "", "/srv/www", "/cgi-bin/app.cgi/a/b", SCRIPT_FOUND, "/srv/www/cgi-bin/app.cgi",
		  "/cgi-bin/app.cgi", "/a/b" },
		{ NULL, "/srv/www", "/cgi-bin/app.cgi/", SCRIPT_FOUND, "/srv/www/cgi-bin/app.cgi",
		  "/cgi-bin/app.cgi", "/" },
		{ NULL, "/srv/www/", "/cgi-bin/app.cgi/x", SCRIPT_FOUND, "/srv/www/cgi-bin/app.cgi",
		  "/cgi-bin/app.cgi", "/x" },
		{ NULL, "/srv/www", "/index.cgi/deep/er/path", SCRIPT_FOUND, "/srv/www/index.cgi", "/index.cgi",
		  "/deep/er/path" },
		{ NULL, "/srv/www", "/cgi-bin/missing.cgi", SCRIPT_NOT_FOUND, NULL, NULL, NULL },
		{ NULL, "/srv/www", "/cgi-bin/missing.cgi/x", SCRIPT_NOT_FOUND, NULL, NULL, NULL },
		{ NULL, "/srv/www", "/nothing/here", SCRIPT_NOT_FOUND, NULL, NULL, NULL },
		{ NULL, "/srv/www", "/cgi-bin", SCRIPT_FORBIDDEN, NULL, NULL, NULL },
		{ NULL, "/srv/www", "/cgi-bin/readme.txt/x", SCRIPT_FORBIDDEN, NULL, NULL, NULL },
		{ NULL, "/srv/www", "", SCRIPT_NOT_FOUND, NULL, NULL, NULL },
		{ NULL, NULL, "/cgi-bin/app.cgi", SCRIPT_NOT_FOUND, NULL, NULL, NULL },
		{ NULL, "/srv", "/www/index.cgi", SCRIPT_FOUND, "/srv/www/index.cgi", NULL, NULL },
		/* Never above DOCUMENT_ROOT: /srv/www/cgi-bin/app.cgi exists but
		 * the document root is below it. */
		{ NULL, "/srv/www/cgi-bin/app.cgi", "/x", SCRIPT_NOT_FOUND, NULL, NULL, NULL },
		/* '..' refused before any lookup, whether the file exists or not. */
		{ NULL, "/srv/www", "/../www/index.cgi", SCRIPT_FORBIDDEN, NULL, NULL, NULL },
		{ NULL, "/srv/www", "/../nothing", SCRIPT_FORBIDDEN, NULL, NULL, NULL },
		{ "/srv/www/../www/index.cgi", NULL, NULL, SCRIPT_FORBIDDEN, NULL, NULL, NULL },
		/* Without its leading '/', a SCRIPT_NAME would name a sibling of
		 * DOCUMENT_ROOT ("/srv" + "www/index.cgi"). */
		{ NULL, "/srv/", "www/index.cgi", SCRIPT_FORBIDDEN, NULL, NULL, NULL },
		{ NULL, "/srv", "www/index.cgi", SCRIPT_FORBIDDEN, NULL, NULL, NULL },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct script_location loc;
		const char *why = NULL;
		enum script_result r = script_resolve(cases[i].script_filename, cases[i].document_root,
						      cases[i].script_name, fake_probe, NULL, &loc, &why);
		CHECK(r == cases[i].result, "path case %zu: result %d, want %d (%s)", i, r, cases[i].result,
		      why ? why : "");
		if (r == SCRIPT_FOUND && cases[i].result == SCRIPT_FOUND) {
			CHECK(strcmp(loc.filename, cases[i].filename) == 0, "path case %zu: filename %s", i,
			      loc.filename);
			CHECK((loc.script_name == NULL) == (cases[i].new_script_name == NULL) &&
				      (!loc.script_name || strcmp(loc.script_name, cases[i].new_script_name) == 0),
			      "path case %zu: SCRIPT_NAME %s", i, loc.script_name ? loc.script_name : "(kept)");
			CHECK((loc.path_info == NULL) == (cases[i].path_info == NULL) &&
				      (!loc.path_info || strcmp(loc.path_info, cases[i].path_info) == 0),
			      "path case %zu: PATH_INFO %s", i, loc.path_info ? loc.path_info : "(kept)");
		}
		script_location_free(&loc);
	}
	/* A '..' is refused before any lookup: the answer tells nothing
	 * about the files outside. */
	{
		struct script_location loc;
		const char *why = NULL;
		fake_probe_calls = 0;
		script_resolve(NULL, "/srv/www", "/../www/index.cgi", fake_probe, NULL, &loc, &why);
		script_resolve("/srv/../etc/passwd", NULL, NULL, fake_probe, NULL, &loc, &why);
		CHECK(fake_probe_calls == 0, "'..' paths looked up %u times", fake_probe_calls);
	}
}

/* ---- The FastCGI record reader ---- */

/* One record of a conversation; type 0 is not sent: it stands for the
 * daemon answering the active request (fcgi_reader_request_done). */
struct rec {
	unsigned char version, type;
	uint16_t id;
	const char *content;
	size_t len;
	unsigned char padding;
};
#define R(t, i, c, p) { 1, t, i, c, sizeof(c) - 1, p }
#define RV(v, t, i, c, p) { v, t, i, c, sizeof(c) - 1, p }
#define DONE { 1, 0, 0, "", 0, 0 }
#define BEGIN_ "\0\1\0\0\0\0\0\0"   /* responder */
#define BEGIN_KEEP "\0\1\1\0\0\0\0\0" /* responder, FCGI_KEEP_CONN */
#define PAIR_AX "\3\1abcX"           /* abc=X */
#define MPXS "\x0f\x00" FCGI_MPXS_CONNS
#define HEAD_CAP 64

static const struct reader_case {
	const char *name;
	struct rec recs[10];
	/* H head, E body end, A abort, and replies: v GET_VALUES_RESULT,
	 * u UNKNOWN_TYPE, m END_REQUEST (CANT_MPX_CONN); X an error. */
	const char *events;
	const char *body;
	const char *error;
	unsigned long long ignored;
} reader_cases[] = {
	{ "a request", { R(1, 1, BEGIN_, 0), R(4, 1, PAIR_AX, 0), R(4, 1, "", 0), R(5, 1, "hello", 0), R(5, 1, "", 0) },
	  "HE", "hello", NULL, 0 },
	{ "no params, no body", { R(1, 9, BEGIN_, 0), R(4, 9, "", 0), R(5, 9, "", 0) }, "HE", "", NULL, 0 },
	{ "padding everywhere",
	  { R(1, 1, BEGIN_, 7), R(4, 1, PAIR_AX, 3), R(4, 1, "", 255), R(5, 1, "hi", 255), R(5, 1, "", 1) },
	  "HE", "hi", NULL, 0 },
	{ "empty record of another id",
	  { R(1, 1, BEGIN_, 0), R(4, 1, "", 0), R(5, 2, "", 0), R(5, 1, "abc", 0), R(5, 1, "", 0) },
	  "HE", "abc", NULL, 1 },
	{ "other ids in the body are ignored",
	  { R(1, 1, BEGIN_, 0), R(4, 1, "", 0), R(5, 1, "ab", 0), R(5, 3, "zzz", 2), R(4, 3, "q", 0), R(5, 1, "c", 0),
	    R(5, 1, "", 0) },
	  "HE", "abc", NULL, 2 },
	{ "records before BEGIN_REQUEST are ignored",
	  { R(5, 1, "x", 0), R(2, 4, "", 0), R(1, 1, BEGIN_, 0), R(4, 1, "", 0), R(5, 1, "", 0) }, "HE", "", NULL, 2 },
	{ "unknown management record in the body",
	  { R(1, 1, BEGIN_, 0), R(4, 1, "", 0), R(5, 1, "ab", 0), R(42, 0, "junk", 4), R(5, 1, "c", 0), R(5, 1, "", 0) },
	  "HuE", "abc", NULL, 0 },
	{ "BEGIN_REQUEST with id 0 is a management record", { R(1, 0, BEGIN_, 0) }, "u", "", NULL, 0 },
	{ "GET_VALUES with a name eight times", { R(9, 0, MPXS MPXS MPXS MPXS MPXS MPXS MPXS MPXS, 0) }, "v", "", NULL, 0 },
	{ "GET_VALUES in the body",
	  { R(1, 1, BEGIN_, 0), R(4, 1, "", 0), R(5, 1, "a", 0), R(9, 0, MPXS, 0), R(5, 1, "b", 0), R(5, 1, "", 0) },
	  "HvE", "ab", NULL, 0 },
	{ "GET_VALUES empty", { R(9, 0, "", 0) }, "v", "", NULL, 0 },
	{ "GET_VALUES with a four-byte length", { R(9, 0, "\x80\0\0\x0f\0" FCGI_MPXS_CONNS, 0) }, "v", "", NULL, 0 },
	{ "GET_VALUES name past the record", { R(9, 0, "\x20\0FCGI", 0) }, "X", "", "runs past the record", 0 },
	{ "GET_VALUES value of 2 GiB", { R(9, 0, "\x01\xff\xff\xff\xffX", 0) }, "X", "", "runs past the record", 0 },
	{ "GET_VALUES cut short", { R(9, 0, "\x0f", 0) }, "X", "", "cut short", 0 },
	{ "second request on the connection: CANT_MPX_CONN",
	  { R(1, 1, BEGIN_, 0), R(4, 1, "", 0), R(1, 2, BEGIN_, 0), R(5, 1, "x", 0), R(5, 1, "", 0) }, "HmE", "x", NULL,
	  0 },
	{ "BEGIN_REQUEST during the head of another",
	  { R(1, 1, BEGIN_, 0), R(1, 2, BEGIN_, 0), R(4, 1, "", 0), R(5, 1, "", 0) }, "mHE", "", NULL, 0 },
	{ "BEGIN_REQUEST for the active id", { R(1, 1, BEGIN_, 0), R(1, 1, BEGIN_, 0) }, "X", "", "active already", 0 },
	{ "BEGIN_REQUEST too short", { R(1, 1, "\0\1\0", 0) }, "X", "", "malformed BEGIN_REQUEST", 0 },
	{ "bad version", { RV(2, 1, 1, BEGIN_, 0) }, "X", "", "unsupported FastCGI version 2", 0 },
	{ "bad version in the body", { R(1, 1, BEGIN_, 0), R(4, 1, "", 0), R(5, 1, "ab", 0), RV(9, 5, 1, "c", 0) }, "HX",
	  "ab", "unsupported FastCGI version 9", 0 },
	{ "STDIN before PARAMS ended", { R(1, 1, BEGIN_, 0), R(4, 1, PAIR_AX, 0), R(5, 1, "x", 0) }, "X", "",
	  "other than PARAMS (STDIN)", 0 },
	{ "unknown type before PARAMS ended", { R(1, 1, BEGIN_, 0), R(42, 1, "x", 0) }, "X", "", "other than PARAMS (type 42)",
	  0 },
	{ "FCGI_DATA for a responder", { R(1, 1, BEGIN_, 0), R(4, 1, "", 0), R(8, 1, "x", 0) }, "HX", "",
	  "unexpected record of type 8", 0 },
	{ "PARAMS after the head", { R(1, 1, BEGIN_, 0), R(4, 1, "", 0), R(4, 1, "", 0) }, "HX", "", "PARAMS record after", 0 },
	{ "STDIN after the body ended", { R(1, 1, BEGIN_, 0), R(4, 1, "", 0), R(5, 1, "", 0), R(5, 1, "x", 0) }, "HEX", "",
	  "after FCGI_STDIN ended", 0 },
	{ "head larger than the buffer", { R(1, 1, BEGIN_, 0), R(4, 1, "0123456789012345678901234567890123456789", 0),
					  R(4, 1, "012345678901234567890123456789", 0) },
	  "X", "", "larger than 64 bytes", 0 },
	{ "abort in the body", { R(1, 1, BEGIN_, 0), R(4, 1, "", 0), R(5, 1, "ab", 0), R(2, 1, "", 0) }, "HA", "ab", NULL, 0 },
	{ "abort before the head ended", { R(1, 1, BEGIN_, 0), R(4, 1, PAIR_AX, 0), R(2, 1, "", 0) }, "A", "", NULL, 0 },
	{ "late abort of an answered request is ignored",
	  { R(1, 1, BEGIN_KEEP, 0), R(4, 1, "", 0), R(5, 1, "", 0), DONE, R(2, 1, "", 0), R(1, 1, BEGIN_KEEP, 0),
	    R(4, 1, "", 0), R(5, 1, "z", 0), R(5, 1, "", 0) },
	  "HEHE", "z", NULL, 1 },
};

struct reader_run {
	char events[32];
	char body[64];
	size_t body_len;
	unsigned char reply[FCGI_REPLY_MAX];
	size_t reply_len;
	const char *error;
	unsigned long long ignored;
	bool keep_conn;
};

/* Feeds a case's bytes in pieces of `step` bytes (0: all at once), with a
 * body buffer of body_cap bytes, acting on each event as the daemon does. */
static void run_reader_case(const struct reader_case *c, size_t step, size_t body_cap, struct reader_run *out)
{
	static unsigned char head[HEAD_CAP], wire[4096];
	unsigned char body[64];
	struct fcgi_reader rd;
	size_t nev = 0;

	memset(out, 0, sizeof(*out));
	fcgi_reader_init(&rd, 64, head, sizeof(head));
	for (size_t r = 0; r < sizeof(c->recs) / sizeof(c->recs[0]) && c->recs[r].content; r++) {
		const struct rec *rc = &c->recs[r];
		size_t len = 0, pos = 0;
		if (rc->type == 0) {
			fcgi_reader_request_done(&rd);
			continue;
		}
		wire[0] = rc->version;
		wire[1] = rc->type;
		wire[2] = (unsigned char)(rc->id >> 8);
		wire[3] = (unsigned char)rc->id;
		wire[4] = (unsigned char)(rc->len >> 8);
		wire[5] = (unsigned char)rc->len;
		wire[6] = rc->padding;
		wire[7] = 0;
		memcpy(wire + 8, rc->content, rc->len);
		memset(wire + 8 + rc->len, 0, rc->padding);
		len = 8 + rc->len + rc->padding;
		while (pos < len && !out->error) {
			size_t piece = step && len - pos > step ? step : len - pos, used = 0;
			enum fcgi_event ev;
			unsigned rounds = 0;
			/* Events that use nothing are taken in turn (a
			 * reader that stops moving is a failure, not a hang). */
			do {
				size_t n = fcgi_reader_run(&rd, wire + pos + used, piece - used, &ev);
				char e = 0;
				used += n;
				switch (ev) {
				case FCGI_EV_MORE:
					break;
				case FCGI_EV_REPLY:
					e = rd.reply[1] == FCGI_GET_VALUES_RESULT ? 'v' : rd.reply[1] == FCGI_UNKNOWN_TYPE ? 'u' : 'm';
					memcpy(out->reply, rd.reply, rd.reply_len);
					out->reply_len = rd.reply_len;
					fcgi_reader_reply_sent(&rd);
					break;
				case FCGI_EV_HEAD:
					/* As request_init() does: the body
					 * buffer is the request's. */
					e = 'H';
					out->keep_conn = rd.keep_conn;
					rd.body = body;
					rd.body_cap = body_cap;
					break;
				case FCGI_EV_BODY_FULL:
					memcpy(out->body + out->body_len, body, rd.body_len);
					out->body_len += rd.body_len;
					rd.body_len = 0;
					break;
				case FCGI_EV_BODY_END:
					e = 'E';
					break;
				case FCGI_EV_ABORT:
					e = 'A';
					break;
				case FCGI_EV_ERROR:
					e = 'X';
					out->error = rd.error;
					break;
				}
				if (e && nev < sizeof(out->events) - 1)
					out->events[nev++] = e;
				if (++rounds > 1000) {
					out->error = "the reader made no progress";
					break;
				}
			} while (ev != FCGI_EV_MORE && ev != FCGI_EV_ERROR);
			pos += used;
		}
		if (out->error)
			break;
	}
	memcpy(out->body + out->body_len, body, rd.body_len);
	out->body_len += rd.body_len;
	out->ignored = rd.ignored;
}

static void test_reader(void)
{
	static const size_t steps[] = { 0, 1, 3 }, caps[] = { 64, 1, 2 };

	for (size_t i = 0; i < sizeof(reader_cases) / sizeof(reader_cases[0]); i++) {
		const struct reader_case *c = &reader_cases[i];
		for (size_t k = 0; k < 3; k++) {
			struct reader_run run;
			run_reader_case(c, steps[k], caps[k], &run);
			CHECK(strcmp(run.events, c->events) == 0, "reader '%s' (step %zu): events '%s', want '%s' (%s)",
			      c->name, steps[k], run.events, c->events, run.error ? run.error : "no error");
			CHECK(run.body_len == strlen(c->body) && memcmp(run.body, c->body, run.body_len) == 0,
			      "reader '%s' (step %zu): body '%.*s', want '%s'", c->name, steps[k], (int)run.body_len,
			      run.body, c->body);
			CHECK(!c->error || (run.error && strstr(run.error, c->error)), "reader '%s': error '%s', want '%s'",
			      c->name, run.error ? run.error : "(none)", c->error ? c->error : "");
			CHECK(run.ignored == c->ignored, "reader '%s': %llu ignored, want %llu", c->name, run.ignored,
			      c->ignored);
		}
	}
}

/* The replies themselves, byte for byte. */
static void test_reader_replies(void)
{
	static const struct {
		const char *name;
		struct rec rec;
		const char *reply; /* content */
		size_t reply_len;
		unsigned type, id;
	} cases[] = {
#define REPLY(s) s, sizeof(s) - 1
		{ "repeated name answered once", R(9, 0, MPXS MPXS MPXS MPXS, 0), REPLY("\x0f\x01" FCGI_MPXS_CONNS "0"),
		  FCGI_GET_VALUES_RESULT, 0 },
		{ "all three and an unknown name",
		  R(9, 0, "\x01\x00Q\x0f\x00" FCGI_MPXS_CONNS "\x0d\x00" FCGI_MAX_REQS "\x0e\x00" FCGI_MAX_CONNS, 0),
		  REPLY("\x0e\x02" FCGI_MAX_CONNS "64\x0d\x02" FCGI_MAX_REQS "64\x0f\x01" FCGI_MPXS_CONNS "0"),
		  FCGI_GET_VALUES_RESULT, 0 },
		{ "a name with a value", R(9, 0, "\x0e\x03" FCGI_MAX_CONNS "abc", 0), REPLY("\x0e\x02" FCGI_MAX_CONNS "64"),
		  FCGI_GET_VALUES_RESULT, 0 },
		{ "a longer name starting like a known one", R(9, 0, "\x10\x00" FCGI_MPXS_CONNS "S", 0), REPLY(""),
		  FCGI_GET_VALUES_RESULT, 0 },
		{ "unknown type", R(200, 0, "", 0), REPLY("\xc8\0\0\0\0\0\0\0"), FCGI_UNKNOWN_TYPE, 0 },
#undef REPLY
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct reader_case c = { cases[i].name, { cases[i].rec }, "", "", NULL, 0 };
		struct reader_run run;
		run_reader_case(&c, 0, 64, &run);
		CHECK(run.reply_len == 8 + cases[i].reply_len && run.reply[1] == cases[i].type && run.reply[3] == cases[i].id &&
			      run.reply[4] == 0 && run.reply[5] == cases[i].reply_len &&
			      memcmp(run.reply + 8, cases[i].reply, cases[i].reply_len) == 0,
		      "reply '%s': %zu bytes, type %u", cases[i].name, run.reply_len, run.reply[1]);
	}
	{
		struct reader_case c = { "CANT_MPX_CONN", { R(1, 1, BEGIN_, 0), R(1, 0x1234, BEGIN_, 0) }, "", "", NULL, 0 };
		struct reader_run run;
		run_reader_case(&c, 0, 64, &run);
		CHECK(run.reply_len == 16 && run.reply[1] == FCGI_END_REQUEST && run.reply[2] == 0x12 && run.reply[3] == 0x34 &&
			      run.reply[12] == FCGI_CANT_MPX_CONN,
		      "CANT_MPX_CONN reply");
	}
	{
		struct reader_case c = { "keep", { R(1, 1, BEGIN_KEEP, 0), R(4, 1, "", 0) }, "", "", NULL, 0 };
		struct reader_run run;
		run_reader_case(&c, 1, 64, &run);
		CHECK(run.keep_conn, "FCGI_KEEP_CONN not seen");
	}
}

/* An abort seen behind body bytes not taken yet. */
static void test_abort_ahead(void)
{
	static unsigned char head[64], body[4];
	static const unsigned char conv[] = "\1\1\0\1\0\x08\0\0" BEGIN_ "\1\4\0\1\0\0\0\0"
					    "\1\5\0\1\0\x08\0\0" "12345678"
					    "\1\5\0\7\0\2\3\0" "zz\0\0\0"
					    "\1\2\0\1\0\0\0\0";
	size_t len = sizeof(conv) - 1, used, ab = len - 8;
	struct fcgi_reader rd;
	enum fcgi_event ev;

	fcgi_reader_init(&rd, 1, head, sizeof(head));
	used = fcgi_reader_run(&rd, conv, len, &ev);
	CHECK(ev == FCGI_EV_HEAD, "abort ahead: no head");
	rd.body = body;
	rd.body_cap = sizeof(body);
	used += fcgi_reader_run(&rd, conv + used, len - used, &ev);
	CHECK(ev == FCGI_EV_BODY_FULL && rd.body_len == 4, "abort ahead: body not full");
	CHECK(fcgi_reader_abort_ahead(&rd, conv + used, len - used), "abort behind the body not seen");
	CHECK(!fcgi_reader_abort_ahead(&rd, conv + used, ab - used + 7), "a partial abort header seen");
	CHECK(!fcgi_reader_abort_ahead(&rd, conv + used, ab - used), "an abort seen that is not there");
	/* Answered there, in the middle of a STDIN record: the rest of the
	 * request's records are ignored, and the next request is read. */
	fcgi_reader_request_done(&rd);
	{
		static const unsigned char next[] = "\1\1\0\2\0\x08\0\0" BEGIN_ "\1\4\0\2\0\0\0\0" "\1\5\0\2\0\0\0\0";
		unsigned char all[sizeof(conv) + sizeof(next)];
		size_t n = len - used, total, at = 0;
		char events[8] = "";
		size_t nev = 0;
		memcpy(all, conv + used, n);
		memcpy(all + n, next, sizeof(next) - 1);
		total = n + sizeof(next) - 1;
		while (at < total && nev < sizeof(events) - 1) {
			at += fcgi_reader_run(&rd, all + at, total - at, &ev);
			if (ev == FCGI_EV_HEAD) {
				rd.body = body;
				rd.body_cap = sizeof(body);
			}
			if (ev == FCGI_EV_HEAD || ev == FCGI_EV_BODY_END || ev == FCGI_EV_ERROR || ev == FCGI_EV_BODY_FULL)
				events[nev++] = ev == FCGI_EV_HEAD ? 'H' : ev == FCGI_EV_BODY_END ? 'E' : ev == FCGI_EV_ERROR ? 'X' : 'F';
			if (ev == FCGI_EV_MORE)
				break;
		}
		CHECK(strcmp(events, "HE") == 0 && rd.id == 2, "after an answer mid-record: events '%s'", events);
	}
}

/* A body known to be empty and ended, from the reader and the bytes
 * after those it used: only an empty FCGI_STDIN of the active request,
 * whole, or a body that has ended without content. */
static void test_body_ends_empty(void)
{
	static unsigned char head[64], body[8];
	static const unsigned char conv[] = "\1\1\0\1\0\x08\0\0" BEGIN_ "\1\4\0\1\0\0\0\0";
	static const unsigned char end[] = "\1\5\0\1\0\0\0\0", other_id[] = "\1\5\0\2\0\0\0\0",
				   content[] = "\1\5\0\1\0\2\0\0" "ab" "\1\5\0\1\0\0\0\0";
	struct fcgi_reader rd;
	enum fcgi_event ev;

	fcgi_reader_init(&rd, 1, head, sizeof(head));
	fcgi_reader_run(&rd, conv, sizeof(conv) - 1, &ev);
	CHECK(ev == FCGI_EV_HEAD, "body ends empty: no head");
	rd.body = body;
	rd.body_cap = sizeof(body);
	CHECK(fcgi_reader_body_ends_empty(&rd, end, 8), "the empty end record ahead not seen");
	CHECK(!fcgi_reader_body_ends_empty(&rd, end, 7), "a partial end record taken for the end");
	CHECK(!fcgi_reader_body_ends_empty(&rd, other_id, 8), "another request's end taken for this one's");
	CHECK(!fcgi_reader_body_ends_empty(&rd, content, sizeof(content) - 1), "a body with content taken for empty");
	/* Half a header used: the bytes ahead are not a header. */
	fcgi_reader_run(&rd, end, 4, &ev);
	CHECK(!fcgi_reader_body_ends_empty(&rd, end + 4, 4), "half a header taken for a whole one");
	fcgi_reader_run(&rd, end + 4, 4, &ev);
	CHECK(ev == FCGI_EV_BODY_END && fcgi_reader_body_ends_empty(&rd, NULL, 0), "an empty body that ended not seen");
	/* Content, then the end: ended, but not empty. */
	fcgi_reader_request_done(&rd);
	fcgi_reader_init(&rd, 1, head, sizeof(head));
	fcgi_reader_run(&rd, conv, sizeof(conv) - 1, &ev);
	rd.body = body;
	rd.body_cap = sizeof(body);
	fcgi_reader_run(&rd, content, sizeof(content) - 1, &ev);
	CHECK(ev == FCGI_EV_BODY_END && !fcgi_reader_body_ends_empty(&rd, NULL, 0), "a body with content seen as empty");
}

/* What the relay needs to splice body content past the reader: how much
 * content it stands before, and how much to read to get past a header. */
static void test_reader_splice(void)
{
	static unsigned char head[64], body[64];
	/* BEGIN, PARAMS end, STDIN of 5 bytes with 3 of padding, STDIN end. */
	static const unsigned char conv[] = "\1\1\0\1\0\x08\0\0" BEGIN_ "\1\4\0\1\0\0\0\0"
					    "\1\5\0\1\0\5\3\0" "abcde\0\0\0" "\1\5\0\1\0\0\0\0";
	struct fcgi_reader rd;
	enum fcgi_event ev;
	size_t used;

	fcgi_reader_init(&rd, 1, head, sizeof(head));
	CHECK(fcgi_reader_header_need(&rd) == 8 && fcgi_reader_body_pending(&rd) == 0, "splice: fresh reader");
	used = fcgi_reader_run(&rd, conv, 24, &ev); /* up to the end of the head */
	CHECK(ev == FCGI_EV_HEAD && used == 24, "splice: head");
	rd.body = body;
	rd.body_cap = sizeof(body);
	CHECK(fcgi_reader_header_need(&rd) == 8 && fcgi_reader_body_pending(&rd) == 0, "splice: before a header");
	used = fcgi_reader_run(&rd, conv + 24, 5, &ev);
	CHECK(ev == FCGI_EV_MORE && fcgi_reader_header_need(&rd) == 3, "splice: a header in part");
	used = fcgi_reader_run(&rd, conv + 29, 3, &ev);
	CHECK(fcgi_reader_body_pending(&rd) == 5 && fcgi_reader_header_need(&rd) == 0, "splice: before content");
	/* Three bytes go past the reader, two through it. */
	fcgi_reader_body_moved(&rd, 3);
	CHECK(fcgi_reader_body_pending(&rd) == 2, "splice: after moving 3");
	used = fcgi_reader_run(&rd, conv + 35, 2, &ev);
	CHECK(rd.body_len == 2 && memcmp(body, "de", 2) == 0, "splice: the rest through the buffer");
	CHECK(fcgi_reader_body_pending(&rd) == 0 && fcgi_reader_header_need(&rd) == 3 + 8, "splice: padding first");
	used = fcgi_reader_run(&rd, conv + 37, 11, &ev);
	CHECK(ev == FCGI_EV_BODY_END && used == 11, "splice: end of the body");
	(void)used;
}

static const struct {
	const char *name;
	const char *stream;
	size_t len;
	int ok;
	const char *env[4];
	size_t dropped;
	const char *script_name, *why;
} params_cases[] = {
#define S(s) s, sizeof(s) - 1
	{ "one pair", S("\3\1abcX"), 0, { "abc=X" }, 0, NULL, NULL },
	{ "empty stream", S(""), 0, { NULL }, 0, NULL, NULL },
	{ "four-byte lengths", S("\x80\0\0\3\x80\0\0\1abcX"), 0, { "abc=X" }, 0, NULL, NULL },
	{ "empty value", S("\3\0abc\1\1dE"), 0, { "abc=", "d=E" }, 0, NULL, NULL },
	{ "first SCRIPT_NAME wins", S("\x0b\2SCRIPT_NAME/a\x0b\2SCRIPT_NAME/b"), 0, { "SCRIPT_NAME=/a", "SCRIPT_NAME=/b" },
	  0, "/a", NULL },
	{ "names that cannot be variables", S("\0\1X\3\1a=bY\3\1a\0bZ\1\1kV"), 0, { "k=V" }, 3, NULL, NULL },
	{ "value with NUL", S("\1\3kA\0B"), 0, { "k=A" }, 0, NULL, NULL },
	{ "name past the end", S("\5\1abc"), -1, { NULL }, 0, NULL, "runs past the end" },
	{ "value of 2 GiB", S("\1\xff\xff\xff\xffkX"), -1, { NULL }, 0, NULL, "runs past the end" },
	{ "name of 2 GiB", S("\xff\xff\xff\xff\1kX"), -1, { NULL }, 0, NULL, "runs past the end" },
	{ "ends inside a length", S("\1\x80\0"), -1, { NULL }, 0, NULL, "inside a length" },
	{ "ends after a name length", S("\1"), -1, { NULL }, 0, NULL, "inside a length" },
#undef S
};

static void test_params(void)
{
	for (size_t i = 0; i < sizeof(params_cases) / sizeof(params_cases[0]); i++) {
		unsigned char buf[128];
		struct request_params p;
		const char *why = NULL;
		int rc;
		size_t n = 0;
		memcpy(buf, params_cases[i].stream, params_cases[i].len);
		rc = request_params_decode(buf, params_cases[i].len, &p, &why);
		CHECK(rc == params_cases[i].ok, "params '%s': %d (%s)", params_cases[i].name, rc, why ? why : "");
		if (rc < 0) {
			CHECK(why && strstr(why, params_cases[i].why), "params '%s': why '%s'", params_cases[i].name,
			      why ? why : "");
			continue;
		}
		while (params_cases[i].env[n])
			n++;
		CHECK(p.count == n && !p.env[n], "params '%s': %zu entries, want %zu", params_cases[i].name, p.count, n);
		for (size_t k = 0; k < n && k < p.count; k++)
			CHECK(strcmp(p.env[k], params_cases[i].env[k]) == 0, "params '%s': '%s'", params_cases[i].name,
			      p.env[k]);
		CHECK(p.dropped == params_cases[i].dropped, "params '%s': %zu dropped", params_cases[i].name, p.dropped);
		CHECK((!p.script_name && !params_cases[i].script_name) ||
			      (p.script_name && params_cases[i].script_name &&
			       strcmp(p.script_name, params_cases[i].script_name) == 0),
		      "params '%s': SCRIPT_NAME", params_cases[i].name);
		request_params_free(&p);
	}
	/* CONTENT_LENGTH, parsed once: digits only. */
	{
		static const struct {
			const char *value;
			long long length;
		} lengths[] = {
			{ "0", 0 }, { "1048576", 1048576 }, { "9223372036854775807", 9223372036854775807LL },
			{ "9223372036854775808", -1 }, { "", -1 }, { " 12", -1 }, { "12 ", -1 }, { "+12", -1 },
			{ "-1", -1 }, { "0x10", -1 }, { NULL, -1 },
		};
		for (size_t i = 0; i < sizeof(lengths) / sizeof(lengths[0]); i++) {
			unsigned char buf[64];
			size_t len = 0, vl = lengths[i].value ? strlen(lengths[i].value) : 0;
			struct request_params p;
			const char *why = NULL;
			if (lengths[i].value) {
				buf[len++] = 14;
				buf[len++] = (unsigned char)vl;
				memcpy(buf + len, "CONTENT_LENGTH", 14);
				memcpy(buf + len + 14, lengths[i].value, vl);
				len += 14 + vl;
			}
			CHECK(request_params_decode(buf, len, &p, &why) == 0 && p.body_length == lengths[i].length,
			      "CONTENT_LENGTH '%s': %lld", lengths[i].value ? lengths[i].value : "(none)", p.body_length);
			request_params_free(&p);
		}
	}
	/* The limit on their number. */
	{
		size_t len = 2 * (FCGI_PARAMS_MAX + 1);
		unsigned char *buf = calloc(len, 1);
		struct request_params p;
		const char *why = NULL;
		for (size_t k = 0; k < len; k += 2)
			buf[k] = buf[k + 1] = 0;
		CHECK(request_params_decode(buf, len, &p, &why) < 0 && why && strstr(why, "more than 4096"),
		      "more than FCGI_PARAMS_MAX parameters accepted");
		CHECK(request_params_decode(buf, len - 2, &p, &why) == 0 && p.count == 0 && p.dropped == FCGI_PARAMS_MAX,
		      "FCGI_PARAMS_MAX parameters refused");
		request_params_free(&p);
		free(buf);
	}
}

/* ---- Escaping for log lines ---- */

static void test_escape(void)
{
	static const struct {
		const char *in;
		size_t len, size;
		const char *extra, *want;
	} cases[] = {
		{ "plain text", 10, 64, NULL, "plain text" },
		{ "a\nb", 3, 64, NULL, "a\\x0ab" },
		{ "\r\t\x1b\x7f\\", 5, 64, NULL, "\\x0d\\x09\\x1b\\x7f\\x5c" },
		{ "nul\0byte", 8, 64, NULL, "nul\\x00byte" },
		{ "say \"hi\"", 8, 64, "\"", "say \\x22hi\\x22" },
		{ "\xc3\xa9t\xc3\xa9", 5, 64, NULL, "\xc3\xa9t\xc3\xa9" },
		{ "abc\n", 4, 6, NULL, "abc" },   /* an escape that does not fit is left out whole */
		{ "abcdef", 6, 4, NULL, "abc" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char out[64];
		size_t n = escape_bytes(out, cases[i].size, cases[i].in, cases[i].len, cases[i].extra);
		CHECK(n == strlen(cases[i].want) && strcmp(out, cases[i].want) == 0, "escape case %zu: '%s'", i, out);
		/* With room enough, escaped_length() says what escape_bytes()
		 * writes. */
		n = escape_bytes(out, sizeof(out), cases[i].in, cases[i].len, cases[i].extra);
		CHECK(escaped_length(cases[i].in, cases[i].len, cases[i].extra) == n, "escaped_length case %zu", i);
	}
}

/* ---- JSON strings of the status page ---- */

static void test_escape_json(void)
{
	static const struct {
		const char *in, *want;
	} cases[] = {
		{ "/plain", "\"/plain\"" },
		{ "say \"hi\" \\", "\"say \\\"hi\\\" \\\\\"" },
		{ "a\nb\x1f\x7f", "\"a\\u000ab\\u001f\\u007f\"" },
		/* Well-formed UTF-8, one to four bytes, as it is; the bounds. */
		{ "\xc3\xa9t\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", "\"\xc3\xa9t\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"" },
		{ "\xc2\x80\xdf\xbf\xe0\xa0\x80\xef\xbf\xbf\xf0\x90\x80\x80\xf4\x8f\xbf\xbf",
		  "\"\xc2\x80\xdf\xbf\xe0\xa0\x80\xef\xbf\xbf\xf0\x90\x80\x80\xf4\x8f\xbf\xbf\"" },
		/* Each byte that starts no well-formed sequence: U+FFFD. */
		{ "/x\xff\xc3", "\"/x\\ufffd\\ufffd\"" },
		{ "\x80\xbf", "\"\\ufffd\\ufffd\"" },                    /* lone continuation bytes */
		{ "\xc3(", "\"\\ufffd(\"" },                               /* cut short */
		{ "\xe2\x82", "\"\\ufffd\\ufffd\"" },                     /* cut short by the end */
		{ "\xc0\xaf\xc1\xbf", "\"\\ufffd\\ufffd\\ufffd\\ufffd\"" }, /* overlong '/' and DEL */
		{ "\xe0\x80\xaf", "\"\\ufffd\\ufffd\\ufffd\"" },           /* overlong, three bytes */
		{ "\xf0\x80\x80\xaf", "\"\\ufffd\\ufffd\\ufffd\\ufffd\"" }, /* overlong, four bytes */
		{ "\xed\xa0\x80", "\"\\ufffd\\ufffd\\ufffd\"" },           /* surrogate U+D800 */
		{ "\xf4\x90\x80\x80", "\"\\ufffd\\ufffd\\ufffd\\ufffd\"" }, /* U+110000 */
		{ "\xf5\x80\x80\x80", "\"\\ufffd\\ufffd\\ufffd\\ufffd\"" }, /* past F4 */
		{ "\xc3\n", "\"\\ufffd\\u000a\"" },                       /* a control byte stays escaped */
		{ "", "\"\"" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *out = NULL;
		size_t len = 0;
		FILE *m = open_memstream(&out, &len);
		if (!m) {
			CHECK(false, "open_memstream");
			return;
		}
		escape_json_string(m, cases[i].in);
		fclose(m);
		CHECK(strcmp(out, cases[i].want) == 0, "escape_json_string case %zu: '%s'", i, out);
		free(out);
	}
}

/* ---- --rlimit ---- */

static void test_rlimit_spec(void)
{
	static const struct {
		const char *spec;
		int ok, resource;
		unsigned long long value;
	} cases[] = {
		{ "cpu=30", 1, RLIMIT_CPU, 30 },
		{ "nofile=1024", 1, RLIMIT_NOFILE, 1024 },
		{ "as=512M", 1, RLIMIT_AS, 512ULL << 20 },
		{ "as=2g", 1, RLIMIT_AS, 2ULL << 30 },
		{ "fsize=10k", 1, RLIMIT_FSIZE, 10ULL << 10 },
		{ "core=0", 1, RLIMIT_CORE, 0 },
		{ "nproc=unlimited", 1, RLIMIT_NPROC, (unsigned long long)RLIM_INFINITY },
		{ "stack=8M", 1, RLIMIT_STACK, 8ULL << 20 },
		{ "data=1", 1, RLIMIT_DATA, 1 },
		{ "cpu=10M", 0, 0, 0 },
		{ "cpu=", 0, 0, 0 },
		{ "cpu=-1", 0, 0, 0 },
		{ "cpu", 0, 0, 0 },
		{ "bogus=1", 0, 0, 0 },
		{ "as=12Q", 0, 0, 0 },
		{ "as=1MB", 0, 0, 0 },
		{ "=5", 0, 0, 0 },
		{ "as=99999999999999999999G", 0, 0, 0 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct rlimit_setting r;
		const char *why = NULL;
		int rc = rlimit_spec_parse(cases[i].spec, &r, &why);
		CHECK((rc == 0) == cases[i].ok, "rlimit '%s': rc %d (%s)", cases[i].spec, rc, why ? why : "");
		if (rc == 0 && cases[i].ok)
			CHECK(r.resource == cases[i].resource && r.limit.rlim_cur == cases[i].value &&
				      r.limit.rlim_max == cases[i].value,
			      "rlimit '%s': %d %llu", cases[i].spec, r.resource, (unsigned long long)r.limit.rlim_cur);
	}
}

/* ---- --allow-from, and '..' segments ---- */

static void test_peer_acl(void)
{
	static const struct {
		const char *rule, *peer;
		int ok, match;
	} cases[] = {
		{ "127.0.0.1", "127.0.0.1", 1, 1 },    { "127.0.0.1", "127.0.0.2", 1, 0 },
		{ "10.0.0.0/8", "10.200.3.4", 1, 1 },  { "10.0.0.0/8", "11.0.0.1", 1, 0 },
		{ "10.1.2.3/8", "10.9.9.9", 1, 1 },    { "192.168.1.0/25", "192.168.1.127", 1, 1 },
		{ "192.168.1.0/25", "192.168.1.128", 1, 0 }, { "0.0.0.0/0", "8.8.8.8", 1, 1 },
		{ "::1", "::1", 1, 1 },                { "::1", "::2", 1, 0 },
		{ "fd00::/8", "fd12:3456::1", 1, 1 },  { "fd00::/8", "fe80::1", 1, 0 },
		{ "2001:db8::/33", "2001:db8:7fff::1", 1, 1 }, { "2001:db8::/33", "2001:db8:8000::1", 1, 0 },
		{ "127.0.0.0/8", "::ffff:127.0.0.5", 1, 1 }, { "::/0", "1.2.3.4", 1, 0 },
		{ "10.0.0.0/33", NULL, 0, 0 },         { "10.0.0.0/", NULL, 0, 0 },
		{ "::/129", NULL, 0, 0 },              { "localhost", NULL, 0, 0 },
		{ "", NULL, 0, 0 },                    { "1.2.3.4/x", NULL, 0, 0 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct peer_rule r;
		const char *why;
		int rc = peer_rule_parse(cases[i].rule, &r, &why);
		CHECK((rc == 0) == cases[i].ok, "rule '%s': rc %d", cases[i].rule, rc);
		if (rc == 0 && cases[i].peer) {
			struct sockaddr_storage ss;
			memset(&ss, 0, sizeof(ss));
			if (strchr(cases[i].peer, ':')) {
				ss.ss_family = AF_INET6;
				inet_pton(AF_INET6, cases[i].peer, &((struct sockaddr_in6 *)&ss)->sin6_addr);
			} else {
				ss.ss_family = AF_INET;
				inet_pton(AF_INET, cases[i].peer, &((struct sockaddr_in *)&ss)->sin_addr);
			}
			CHECK(peer_allowed(&r, 1, (struct sockaddr *)&ss) == cases[i].match, "rule '%s' peer %s",
			      cases[i].rule, cases[i].peer);
		}
	}
	{
		struct sockaddr_in sin = { .sin_family = AF_INET };
		struct sockaddr_in6 sin6 = { .sin6_family = AF_INET6 };
		inet_pton(AF_INET, "127.3.4.5", &sin.sin_addr);
		CHECK(addr_is_loopback((struct sockaddr *)&sin), "127.3.4.5 is loopback");
		inet_pton(AF_INET, "0.0.0.0", &sin.sin_addr);
		CHECK(!addr_is_loopback((struct sockaddr *)&sin), "0.0.0.0 is not loopback");
		inet_pton(AF_INET6, "::1", &sin6.sin6_addr);
		CHECK(addr_is_loopback((struct sockaddr *)&sin6), "::1 is loopback");
		inet_pton(AF_INET6, "::", &sin6.sin6_addr);
		CHECK(!addr_is_loopback((struct sockaddr *)&sin6), ":: is not loopback");
	}
}

static void test_dotdot(void)
{
	static const struct {
		const char *path;
		bool dotdot;
	} cases[] = {
		{ "/a/../b", true }, { "../x", true }, { "/a/..", true }, { "..", true }, { "/a/b", false },
		{ "/a/..b/c", false }, { "/a/b../c", false }, { "/a/.../c", false }, { "/a/./b", false },
		{ "/srv/www//../x", true }, { "", false },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		CHECK(path_has_dotdot(cases[i].path) == cases[i].dotdot, "dotdot '%s'", cases[i].path);
}

/* ---- --interpreter ---- */

static void test_interpreters(void)
{
	static const struct {
		const char *spec;
		bool ok;
	} specs[] = {
		{ ".php=/usr/bin/php-cgi", true }, { ".pl=/usr/bin/perl", true }, { "x.tar.php=/usr/bin/t=1", true },
		{ ".php=/usr/bin/other", false }, /* mapped twice */
		{ "=/usr/bin/perl", false },      { ".py", false },   { ".py=python3", false },
		{ ".py=", false },                { "a/.py=/usr/bin/python3", false },
	};
	static const struct {
		const char *path, *program;
	} finds[] = {
		{ "/srv/www/index.php", "/usr/bin/php-cgi" },
		{ "/srv/www/a.pl", "/usr/bin/perl" },
		{ "/srv/x.tar.php", "/usr/bin/t=1" }, /* the longest suffix */
		{ "/srv/www/index.PHP", NULL },       /* case counts, as in lighttpd */
		{ "/srv/www/index.php/x", NULL },
		{ "/srv/www/index.phps", NULL },
		{ "/srv/www/run.cgi", NULL },
		{ "php", NULL },
		{ ".php", "/usr/bin/php-cgi" },
	};
	struct interpreters m = { 0 };
	const char *why;

	for (size_t i = 0; i < sizeof(specs) / sizeof(specs[0]); i++)
		CHECK((interpreters_add(&m, specs[i].spec, &why) == 0) == specs[i].ok, "--interpreter '%s'",
		      specs[i].spec);
	CHECK(m.n == 3, "3 interpreters mapped, not %zu", m.n);
	for (size_t i = 0; i < sizeof(finds) / sizeof(finds[0]); i++) {
		const char *got = interpreters_find(&m, finds[i].path);
		CHECK(got == finds[i].program || (got && finds[i].program && strcmp(got, finds[i].program) == 0),
		      "interpreter of '%s': '%s'", finds[i].path, got ? got : "(none)");
	}
	for (size_t i = 0; i < m.n; i++) {
		free(m.v[i].suffix);
		free(m.v[i].program);
	}
	free(m.v);
}

/* ---- the status page's query ---- */

static void test_status_query(void)
{
	static const struct {
		const char *query, *format;
		bool full;
	} cases[] = {
		{ NULL, "text", false },
		{ "", "text", false },
		{ "json", "json", false },
		{ "openmetrics", "openmetrics", false },
		{ "full", "text", true },
		{ "json&full", "json", true },
		{ "full&openmetrics", "openmetrics", true },
		{ "json=1&full=yes", "json", true },
		{ "nojson", "text", false },      /* a key that only holds one */
		{ "fullness&jsonp", "text", false },
		{ "openmetrics&json", "openmetrics", false }, /* the first format */
		{ "&&json&", "json", false },
		{ "x=json", "text", false },      /* a value is no key */
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct status_query q = status_query_parse(cases[i].query);
		CHECK(strcmp(q.format, cases[i].format) == 0 && q.full == cases[i].full, "status query '%s': %s%s",
		      cases[i].query ? cases[i].query : "(none)", q.format, q.full ? " full" : "");
	}
}

/* ---- the main loop's timers ---- */

/* Which timer wakes the loop, and when: the nearest armed one, a due
 * time past is 0, none armed is -1 (poll() waits for ever). */
static void test_timers_timeout(void)
{
	static const struct {
		struct timer t[3];
		long long now;
		int timeout;
	} cases[] = {
		{ { { false, 100, TIMER_ONCE }, { false, 5, 10 }, { false, 0, 0 } }, 0, -1 },
		{ { { true, 100, TIMER_ONCE }, { false, 5, 10 }, { false, 0, 0 } }, 0, 100 },
		{ { { true, 100, TIMER_ONCE }, { true, 40, 10 }, { false, 5, 0 } }, 0, 40 },
		{ { { true, 100, TIMER_ONCE }, { true, 40, 10 }, { true, 70, 0 } }, 30, 10 },
		{ { { true, 100, TIMER_ONCE }, { true, 0, 2000 }, { false, 0, 0 } }, 30, 0 },  /* overdue */
		{ { { true, 1030, TIMER_ONCE }, { false, 0, 0 }, { false, 0, 0 } }, 1030, 0 }, /* due now */
		{ { { true, 5000000000LL, 0 }, { false, 0, 0 }, { false, 0, 0 } }, 7, 2147483647 },
		{ { { true, -20, 0 }, { true, 1LL << 62, 0 }, { false, 0, 0 } }, -30, 10 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int got = timers_poll_timeout(cases[i].t, 3, cases[i].now);
		CHECK(got == cases[i].timeout, "timers case %zu: timeout %d, not %d", i, got, cases[i].timeout);
	}
}

/* A timer fires when armed and due; a periodic one is due again a period
 * after it fired (not after it was due: a late wake-up does not bunch the
 * next ones), one of TIMER_ONCE is disarmed. */
static void test_timer_fire(void)
{
	static const struct {
		struct timer t;
		long long now;
		bool fired;
		struct timer after;
	} cases[] = {
		{ { false, 0, 2000 }, 10, false, { false, 0, 2000 } },         /* disarmed: kept due */
		{ { true, 0, 2000 }, 10, true, { true, 2010, 2000 } },         /* first time, at once */
		{ { true, 2010, 2000 }, 2009, false, { true, 2010, 2000 } },
		{ { true, 2010, 2000 }, 2010, true, { true, 4010, 2000 } },
		{ { true, 2010, 2000 }, 3500, true, { true, 5500, 2000 } },    /* late */
		{ { true, 500, TIMER_ONCE }, 499, false, { true, 500, TIMER_ONCE } },
		{ { true, 500, TIMER_ONCE }, 600, true, { false, 500, TIMER_ONCE } },
		{ { true, 7, 0 }, 9, true, { true, 9, 0 } },                   /* no period: due again now */
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct timer t = cases[i].t;
		bool fired = timer_fire(&t, cases[i].now);
		CHECK(fired == cases[i].fired && t.armed == cases[i].after.armed && t.due == cases[i].after.due &&
			      t.period == cases[i].after.period,
		      "timer case %zu: %s, %s, due %lld", i, fired ? "fired" : "not fired",
		      t.armed ? "armed" : "disarmed", t.due);
	}
	{
		struct timer t = { false, 0, 5000 };

		timer_start(&t, 1234);
		CHECK(t.armed && t.due == 1234 && t.period == 5000, "timer_start");
		timer_stop(&t);
		CHECK(!t.armed && t.due == 1234, "timer_stop");
	}
}

/* ---- access log lines ---- */

static void test_access_format(void)
{
	struct access_entry full = { "10.0.0.9", "POST", "/cgi-bin/x?y", "/usr/lib/cgi-bin/x", 201, 12, 3456, 78,
				     3 << 8, 4242, 0, 0 };
	struct access_entry none = { NULL, NULL, NULL, NULL, 0, 0, 0, 5, -1, 0, -1, -1 };
	struct access_entry measured = { "::1", "GET", "/", "/s", 200, 0, 0, 300, 0, 7, 250, 51234 };
	struct access_entry killed = { "::1", "GET", "/", "/s", 504, 0, 0, 1000, 9, 7, 0, 0 };
	/* nginx decodes %0A in the URI into the script's name. */
	struct access_entry forged = { "1.2.3.4\n<0>x", "GET\r", "/a\"b\\c", "/x\n<0>y\x7f", 404, 0, 0, 1, -1, 0, -1, -1 };
	const struct {
		const char *fmt;
		const struct access_entry *e;
		const char *want;
	} cases[] = {
		{ "%a \"%m %u\" %S %I %O %Dms %s exit=%x pid=%p", &full,
		  "10.0.0.9 \"POST /cgi-bin/x?y\" 201 12 3456 78ms /usr/lib/cgi-bin/x exit=3 pid=4242\n" },
		{ "%a %m %u %S %s %x %p", &none, "- - - - - - -\n" },
		{ "%S %x %p", &killed, "504 sig9 7\n" },
		{ "cpu=%Cms mem=%MKiB", &measured, "cpu=250ms mem=51234KiB\n" },
		{ "%C %M", &none, "- -\n" },
		{ "%a \"%m %u\" %s\t%S", &forged,
		  "1.2.3.4\\x0a<0>x \"GET\\x0d /a\\x22b\\x5cc\" /x\\x0a<0>y\\x7f\t404\n" },
		{ "100%% %q %", &full, "100% %q %\n" },
		{ "", &full, "\n" },
	};
	char buf[256];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t n = access_format(buf, sizeof(buf), cases[i].fmt, cases[i].e, 0);
		CHECK(n == strlen(cases[i].want) && strcmp(buf, cases[i].want) == 0, "access format '%s': '%s'",
		      cases[i].fmt, buf);
	}
	/* %t is a date in brackets' usual form; a line never overflows. */
	access_format(buf, sizeof(buf), "[%t]", &full, 86400);
	CHECK(strlen(buf) > 20 && buf[0] == '[' && strstr(buf, "/1970:") != NULL, "time '%s'", buf);
	{
		char small[16];
		size_t n = access_format(small, sizeof(small), "%s %s %s", &full, 0);
		CHECK(n < sizeof(small) && small[n - 1] == '\n' && small[n] == '\0', "cut line '%s'", small);
	}
}

/* fcgi_out_streamv: parts are joined into records of at most 65535 bytes,
 * in order, several records to a sendmsg, with END_REQUEST last; written
 * by a child process, read back here from a socketpair. */
static void test_fcgi_out(void)
{
	enum { BIG = 300000, TOTAL = BIG + 6 };
	static char big[BIG], got[TOTAL + 1];
	static unsigned char wire[TOTAL + 4096];
	struct iovec parts[4] = { { "abc", 3 }, { big, sizeof(big) }, { "", 0 }, { "xyz", 3 } };
	size_t wire_len = 0, got_len = 0, pos = 0;
	int sv[2], records = 0, end_seen = 0, status;
	ssize_t n;
	pid_t pid;

	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (char)('a' + i % 26);
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0 || (pid = fork()) < 0) {
		CHECK(0, "socketpair or fork");
		return;
	}
	if (pid == 0) {
		struct fcgi_out o;
		struct peer_wait w = { .progress_ms = 5000, .deadline = 0, .cancel_fd = -1 };
		close(sv[1]);
		fcgi_out_init(&o, sv[0], 7, &w);
		o.holding = false;
		_exit(fcgi_out_streamv(&o, FCGI_STDOUT, parts, 4) == 0 && o.stdout_bytes == TOTAL &&
				      fcgi_out_end_request(&o, 3, FCGI_REQUEST_COMPLETE) == 0
			      ? 0
			      : 1);
	}
	close(sv[0]);
	while ((n = read(sv[1], wire + wire_len, sizeof(wire) - wire_len)) > 0)
		wire_len += (size_t)n;
	close(sv[1]);
	CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0,
	      "writing the records failed");
	while (pos + FCGI_HEADER_LEN <= wire_len) {
		const FCGI_Header *h = (const FCGI_Header *)(wire + pos);
		size_t len = (size_t)h->contentLengthB1 << 8 | h->contentLengthB0;
		CHECK(h->version == FCGI_VERSION_1 && h->requestIdB0 == 7 && h->requestIdB1 == 0, "record header");
		CHECK(!end_seen, "record after END_REQUEST");
		if (h->type == FCGI_STDOUT && len > 0 && got_len + len <= TOTAL) {
			memcpy(got + got_len, wire + pos + FCGI_HEADER_LEN, len);
			got_len += len;
			records++;
		} else if (h->type == FCGI_END_REQUEST) {
			end_seen = 1;
			CHECK(len == 8 && wire[pos + FCGI_HEADER_LEN + 3] == 3, "appStatus");
		}
		pos += FCGI_HEADER_LEN + len + h->paddingLength;
	}
	CHECK(pos == wire_len && end_seen, "records do not add up (%zu of %zu bytes)", pos, wire_len);
	CHECK(records == (TOTAL + 65534) / 65535, "%d STDOUT records for %d bytes", records, TOTAL);
	CHECK(got_len == TOTAL && memcmp(got, "abc", 3) == 0 && memcmp(got + 3, big, sizeof(big)) == 0 &&
		      memcmp(got + 3 + BIG, "xyz", 3) == 0,
	      "payload differs (%zu bytes)", got_len);
}

/* Whether a waiter's eventfd is readable now: what its poll() would see. */
static bool woken(const struct slot_waiter *w)
{
	struct pollfd pfd = { .fd = w->efd, .events = POLLIN };

	return poll(&pfd, 1, 0) == 1 && (pfd.revents & POLLIN);
}

/* Slot pools: a slot freed between slot_try_take() and slot_wait_begin()
 * is granted at once and wakes the waiter (which would otherwise sleep
 * its whole --queue-timeout on it); a released slot goes to the first
 * waiter, in order; a waiter that gives up leaves the queue. */
static void test_slots(void)
{
	struct slot_pool p;
	struct slot_waiter a, b, c;

	a.efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	b.efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	c.efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	CHECK(a.efd >= 0 && b.efd >= 0 && c.efd >= 0, "eventfd: %s", strerror(errno));
	slot_pool_init(&p, 1);
	slot_wait_begin(&p, &a);
	CHECK(a.granted && woken(&a), "a free slot granted at once does not wake its waiter");
	CHECK(slot_wait_end(&p, &a) && p.running == 1 && p.queued == 0, "a granted wait does not end with the slot");
	CHECK(!woken(&a), "a waiter's eventfd is left readable for its next wait");
	CHECK(!slot_try_take(&p), "a second slot taken from a pool of one");

	slot_wait_begin(&p, &a);
	slot_wait_begin(&p, &b);
	slot_wait_begin(&p, &c);
	CHECK(!woken(&a) && !woken(&b) && !woken(&c) && p.queued == 3, "a waiter woken with no slot free");
	CHECK(!slot_wait_end(&p, &b), "a waiter that gave up got a slot");
	slot_release(&p);
	CHECK(woken(&a) && !woken(&c), "the slot did not go to the first waiter");
	CHECK(slot_wait_end(&p, &a), "the first waiter's slot is lost");
	slot_release(&p);
	CHECK(woken(&c) && slot_wait_end(&p, &c), "the slot did not go to the next waiter");
	slot_release(&p);
	CHECK(p.free == 1 && p.running == 0 && p.queued == 0 && !p.head && !p.tail,
	      "the pool does not add up: %u free, %u running, %u queued", p.free, (unsigned)p.running,
	      (unsigned)p.queued);
	CHECK(!woken(&a) && !woken(&b) && !woken(&c), "a waiter's eventfd is left readable after its wait");
	close(a.efd);
	close(b.efd);
	close(c.efd);
}

/* test_slots_late_wake() holds up the hand-over's wake: this program's
 * write() (it takes the place of libc's here) waits on write_go for the
 * fd in held_fd, having said so in write_held. */
static int held_fd = -1;
static atomic_bool write_held;
static sem_t write_go;

ssize_t write(int fd, const void *buf, size_t n)
{
	if (fd == held_fd && held_fd >= 0) {
		atomic_store(&write_held, true);
		while (sem_wait(&write_go) < 0 && errno == EINTR)
			;
	}
	return syscall(SYS_write, fd, buf, n);
}

static void *release_one(void *pool)
{
	slot_release(pool);
	return NULL;
}

/* Lets the held wake go after 50 ms. */
static void *let_go_later(void *unused)
{
	(void)unused;
	poll(NULL, 0, 50);
	sem_post(&write_go);
	return NULL;
}

/* A waiter whose wait ends (its time up, its peer) just as a slot is
 * handed to it: the wake is written after the pool's lock is let go, so
 * it may come after the waiter has looked, here 50 ms after.  Its eventfd
 * must still be empty once its wait has ended, or its next wait would end
 * at once without a slot (a false 503). */
static void test_slots_late_wake(void)
{
	struct slot_pool p;
	struct slot_waiter a;
	pthread_t releaser, later;
	bool got;

	a.efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	sem_init(&write_go, 0, 0);
	slot_pool_init(&p, 1);
	CHECK(a.efd >= 0 && slot_try_take(&p), "setup");
	slot_wait_begin(&p, &a);
	held_fd = a.efd;
	if (pthread_create(&releaser, NULL, release_one, &p) != 0 ||
	    pthread_create(&later, NULL, let_go_later, NULL) != 0) {
		CHECK(0, "pthread_create");
		return;
	}
	/* The hand-over is made, its wake not written yet. */
	while (!atomic_load(&write_held))
		poll(NULL, 0, 1);
	got = slot_wait_end(&p, &a);
	pthread_join(releaser, NULL);
	pthread_join(later, NULL);
	held_fd = -1;
	CHECK(got && !woken(&a), "granted %d, the eventfd readable after the wait ended: %d", got, woken(&a));
	slot_release(&p);
	sem_destroy(&write_go);
	close(a.efd);
}

int main(void)
{
	test_headers();
	test_socket_urls();
	test_env();
	test_script_path();
	test_reader();
	test_reader_replies();
	test_abort_ahead();
	test_body_ends_empty();
	test_reader_splice();
	test_params();
	test_rlimit_spec();
	test_peer_acl();
	test_dotdot();
	test_interpreters();
	test_status_query();
	test_timers_timeout();
	test_timer_fire();
	test_escape();
	test_escape_json();
	test_access_format();
	test_fcgi_out();
	test_slots();
	test_slots_late_wake();
	printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
