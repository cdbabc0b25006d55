/* The status page's query string, parsed once.  Pure: no I/O. */
#ifndef FCGIWRAP_STATUS_QUERY_H
#define FCGIWRAP_STATUS_QUERY_H

#include <stdbool.h>

struct status_query {
	const char *format; /* "text", "json" or "openmetrics" */
	bool full;          /* ?full: the requests running now too */
};

/* Keys separated by '&', each up to an '=' (whose value is ignored), as
 * PHP-FPM's status page takes them: "json" or "openmetrics" pick the
 * format (the first one given counts), "full" the list; other keys are
 * ignored, and so is a key that only contains one ("?nojson" is text). */
struct status_query status_query_parse(const char *query);

#endif
