/* Parser for the header block a CGI script prints before its body
 * (RFC 3875 section 6).  Pure: no I/O. */
#ifndef FCGIWRAP_CGI_HEADER_H
#define FCGIWRAP_CGI_HEADER_H

#include <stdbool.h>
#include <stddef.h>

/* Longest header block accepted, blank line included. */
#define CGI_HEADER_MAX (64 * 1024)

enum cgi_header_result {
	CGI_HEADER_MORE,  /* feed more bytes */
	CGI_HEADER_DONE,  /* block complete: see out/out_len */
	CGI_HEADER_ERROR, /* malformed: see error */
};

struct cgi_header {
	char *raw; /* bytes received so far, up to the blank line */
	size_t raw_len, raw_cap;
	size_t scan; /* where the search for the blank line resumes */
	char *out; /* normalised block: "Name: value\r\n"... "\r\n" */
	size_t out_len;
	int status; /* 200, the Status: code, or 302 for a bare Location: */
	const char *error;
};

void cgi_header_init(struct cgi_header *h);
void cgi_header_free(struct cgi_header *h);

/* Feeds len bytes of script output.  *consumed is how many belong to the
 * header block (all of them unless the result is DONE, when the rest is
 * body). */
enum cgi_header_result cgi_header_feed(struct cgi_header *h, const char *data, size_t len,
				       size_t *consumed);

/* The script's output ended before the header block did: sets error. */
void cgi_header_eof(struct cgi_header *h);

#endif
