/* Table-driven unit tests of the parts that do no I/O: CGI header parsing,
 * socket URLs, environment building and script path resolution.
 * Prints one line per failure and a closing "N passed, N failed". */
#include "config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fastcgi.h>

#include "../src/access_log.h"
#include "../src/cgi_env.h"
#include "../src/cgi_header.h"
#include "../src/fcgi_head.h"
#include "../src/fcgi_out.h"
#include "../src/peer_acl.h"
#include "../src/rlimit_spec.h"
#include "../src/script_path.h"
#include "../src/socket_url.h"

static int passed, failed;

#define CHECK(cond, ...)                                          \
	do {                                                      \
		if (cond) {                                       \
			passed++;                                 \
		} else {                                          \
			failed++;                                 \
			printf("FAIL %s:%d: ", __FILE__, __LINE__); \
			printf(__VA_ARGS__);                      \
			printf("\n");                             \
		}                                                 \
	} while (0)

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
			       "NOEQUALS", "=empty-name", "LANG=C", NULL };
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
			{ "HTTP_HOST", 0 }, { "HTTP_PROXY_AUTH", 0 }, { "HTTPS", 0 }, { "LD", 0 },
			{ "ENVIRONMENT", 0 }, { "PATH", 0 }, { "QUERY_STRING", 0 }, { "TMPDIR", 0 },
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

static enum file_kind fake_probe(const char *path, void *ctx)
{
	(void)ctx;
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
}

/* ---- FastCGI request heads ---- */

static size_t put_record(unsigned char *b, int version, int type, int id, size_t clen, int plen)
{
	b[0] = (unsigned char)version;
	b[1] = (unsigned char)type;
	b[2] = (unsigned char)(id >> 8);
	b[3] = (unsigned char)id;
	b[4] = (unsigned char)(clen >> 8);
	b[5] = (unsigned char)clen;
	b[6] = (unsigned char)plen;
	b[7] = 0;
	memset(b + 8, 'p', clen + (size_t)plen);
	return 8 + clen + (size_t)plen;
}

static void test_fcgi_head(void)
{
	static const struct {
		const char *name;
		int records[6][5]; /* version, type, id, content length, padding; version 0 ends */
		enum fcgi_head_result want;
		const char *why;
	} cases[] = {
		{ "begin, params, end", { { 1, 1, 1, 8, 0 }, { 1, 4, 1, 30, 2 }, { 1, 4, 1, 0, 0 } }, FCGI_HEAD_COMPLETE, NULL },
		{ "no params at all", { { 1, 1, 1, 8, 0 }, { 1, 4, 1, 0, 0 } }, FCGI_HEAD_COMPLETE, NULL },
		{ "management record first", { { 1, 9, 0, 12, 4 }, { 1, 1, 1, 8, 0 }, { 1, 4, 1, 0, 0 } }, FCGI_HEAD_COMPLETE, NULL },
		{ "other id skipped", { { 1, 1, 1, 8, 0 }, { 1, 5, 7, 3, 0 }, { 1, 4, 1, 0, 0 } }, FCGI_HEAD_COMPLETE, NULL },
		{ "params not ended", { { 1, 1, 1, 8, 0 }, { 1, 4, 1, 30, 2 } }, FCGI_HEAD_INCOMPLETE, NULL },
		{ "empty", { { 0 } }, FCGI_HEAD_INCOMPLETE, NULL },
		{ "bad version", { { 2, 1, 1, 8, 0 } }, FCGI_HEAD_INVALID, "unsupported FastCGI version" },
		{ "begin too short", { { 1, 1, 1, 7, 0 } }, FCGI_HEAD_INVALID, "malformed BEGIN_REQUEST" },
		{ "begin id 0", { { 1, 1, 0, 8, 0 } }, FCGI_HEAD_INVALID, "malformed BEGIN_REQUEST" },
		{ "stdin before begin", { { 1, 5, 1, 1, 0 } }, FCGI_HEAD_INVALID, "before BEGIN_REQUEST" },
		{ "stdin inside params", { { 1, 1, 1, 8, 0 }, { 1, 5, 1, 1, 0 } }, FCGI_HEAD_INVALID, "other than PARAMS" },
		{ "second begin", { { 1, 1, 1, 8, 0 }, { 1, 1, 2, 8, 0 } }, FCGI_HEAD_INVALID, "second BEGIN_REQUEST" },
	};
	unsigned char *buf = malloc(FCGI_HEAD_MAX + 70000);

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t len = 0, head_len = 0;
		const char *why = NULL;
		enum fcgi_head_result res;
		for (int r = 0; r < 6 && cases[i].records[r][0]; r++)
			len += put_record(buf + len, cases[i].records[r][0], cases[i].records[r][1],
					  cases[i].records[r][2], (size_t)cases[i].records[r][3], cases[i].records[r][4]);
		res = fcgi_head_scan(buf, len, &head_len, &why);
		CHECK(res == cases[i].want, "head '%s': %d, want %d (%s)", cases[i].name, res, cases[i].want,
		      why ? why : "");
		if (res == FCGI_HEAD_COMPLETE)
			CHECK(head_len == len, "head '%s': length %zu of %zu", cases[i].name, head_len, len);
		if (cases[i].why && why)
			CHECK(strstr(why, cases[i].why) != NULL, "head '%s': why '%s'", cases[i].name, why);
		/* Every proper prefix of a complete head is incomplete. */
		if (res == FCGI_HEAD_COMPLETE) {
			for (size_t cut = 0; cut < len; cut++)
				CHECK(fcgi_head_scan(buf, cut, &head_len, &why) == FCGI_HEAD_INCOMPLETE,
				      "head '%s' cut at %zu", cases[i].name, cut);
		}
	}
	/* The size limit: PARAMS records adding up to more than FCGI_HEAD_MAX. */
	{
		size_t len = put_record(buf, 1, 1, 1, 8, 0), head_len;
		const char *why = NULL;
		while (len < FCGI_HEAD_MAX + 100)
			len += put_record(buf + len, 1, 4, 1, 65535, 1);
		CHECK(fcgi_head_scan(buf, len, &head_len, &why) == FCGI_HEAD_INVALID && why &&
			      strstr(why, "larger than"),
		      "oversized head accepted");
		/* Known too large from its first bytes: no need to wait for them. */
		CHECK(fcgi_head_scan(buf, FCGI_HEAD_MAX - 10, &head_len, &why) != FCGI_HEAD_COMPLETE,
		      "truncated oversized head complete");
	}
	free(buf);
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

/* ---- access log lines ---- */

static void test_access_format(void)
{
	struct access_entry full = { "10.0.0.9", "POST", "/cgi-bin/x?y", "/usr/lib/cgi-bin/x", 201, 12, 3456, 78,
				     3 << 8, 4242 };
	struct access_entry none = { NULL, NULL, NULL, NULL, 0, 0, 0, 5, -1, 0 };
	struct access_entry killed = { "::1", "GET", "/", "/s", 504, 0, 0, 1000, 9, 7 };
	const struct {
		const char *fmt;
		const struct access_entry *e;
		const char *want;
	} cases[] = {
		{ "%a \"%m %u\" %S %I %O %Dms %s exit=%x pid=%p", &full,
		  "10.0.0.9 \"POST /cgi-bin/x?y\" 201 12 3456 78ms /usr/lib/cgi-bin/x exit=3 pid=4242\n" },
		{ "%a %m %u %S %s %x %p", &none, "- - - - - - -\n" },
		{ "%S %x %p", &killed, "504 sig9 7\n" },
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
		close(sv[1]);
		fcgi_out_init(&o, sv[0], 7, 5000);
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

int main(void)
{
	test_headers();
	test_socket_urls();
	test_env();
	test_script_path();
	test_fcgi_head();
	test_rlimit_spec();
	test_peer_acl();
	test_dotdot();
	test_access_format();
	test_fcgi_out();
	printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
