/* A request's parameters: the FCGI_PARAMS stream decoded once, at the
 * edge, into NAME=VALUE strings and the named fields the daemon reads.
 * Pure: no I/O. */
#ifndef FCGIWRAP_FCGI_PARAMS_H
#define FCGIWRAP_FCGI_PARAMS_H

#include <stddef.h>

/* At most this many parameters per request: nginx sends about 20 plus one
 * per HTTP header line. */
#define FCGI_PARAMS_MAX 4096

struct request_params {
	char **env;           /* NAME=VALUE strings in arrival order, NULL-ended */
	size_t count;
	size_t dropped;       /* pairs whose name was empty or held '=' or NUL */
	/* The first value of each name the daemon itself reads, or NULL. */
	const char *script_filename, *document_root, *script_name, *path_info, *fcgi_chdir;
	const char *query_string, *request_method, *request_uri, *remote_addr, *content_length;
	/* CONTENT_LENGTH as a number; -1 when it was not sent, or is not a
	 * plain decimal that fits. */
	long long body_length;
};

/* Decodes the PARAMS stream in buf[0..len) in place (the strings end up in
 * buf, which must outlive p).  Every length is checked against what is
 * left of the stream.  Returns 0, or -1 with *why (p is then empty).
 * Free p with request_params_free(). */
int request_params_decode(unsigned char *buf, size_t len, struct request_params *p, const char **why);

void request_params_free(struct request_params *p);

#endif
