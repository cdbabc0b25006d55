/* The status page's query string (see status_query.h). */
#include "config.h"

#include <string.h>

#include "status_query.h"

/* Whether the key at p, len bytes long, is word. */
static bool key_is(const char *p, size_t len, const char *word)
{
	return len == strlen(word) && strncmp(p, word, len) == 0;
}

struct status_query status_query_parse(const char *query)
{
	struct status_query q = { "text", false };
	bool chosen = false;

	while (query && *query) {
		size_t len = strcspn(query, "&"), key = strcspn(query, "=&");
		if (key > len)
			key = len;
		if (!chosen && (key_is(query, key, "json") || key_is(query, key, "openmetrics"))) {
			q.format = key_is(query, key, "json") ? "json" : "openmetrics";
			chosen = true;
		} else if (key_is(query, key, "full")) {
			q.full = true;
		}
		query += len;
		if (*query == '&')
			query++;
	}
	return q;
}
