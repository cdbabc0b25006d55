/* Parsing of listen socket URLs.  Pure: no I/O, unit-tested by table. */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stddef.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "socket_url.h"

const char socket_url_help[] =
	"Valid socket URLs are:\n"
	"  unix:/path/to/socket     for Unix sockets\n"
	"  tcp:dot.ted.qu.ad:port   for IPv4 sockets\n"
	"  tcp6:[ipv6_addr]:port    for IPv6 sockets\n";

/* Strict decimal port 1..65535: atoi() as in 1.1.0 would take "80x". */
static int parse_port(const char *s, in_port_t *port)
{
	char *end;
	long v;

	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *end != '\0' || v < 1 || v > 65535)
		return -1;
	*port = htons((in_port_t)v);
	return 0;
}

/* Parses the address text host[0..hlen) of family af into addr, and the
 * port text into *port. */
static int parse_host_port(const char *host, size_t hlen, const char *port_text, int af, void *addr,
			   in_port_t *port, const char **why)
{
	char buf[INET6_ADDRSTRLEN + 1];

	if (hlen == 0 || hlen >= sizeof(buf)) {
		*why = af == AF_INET ? "bad IPv4 address" : "bad IPv6 address";
		return -1;
	}
	memcpy(buf, host, hlen);
	buf[hlen] = '\0';
	if (inet_pton(af, buf, addr) != 1) {
		*why = af == AF_INET ? "bad IPv4 address" : "bad IPv6 address";
		return -1;
	}
	if (parse_port(port_text, port) < 0) {
		*why = "bad port (1-65535)";
		return -1;
	}
	return 0;
}

int socket_url_parse(const char *url, struct socket_addr *out, const char **why)
{
	const char *p;

	memset(out, 0, sizeof(*out));
	if (strncmp(url, "unix:", 5) == 0) {
		struct sockaddr_un *sun = (struct sockaddr_un *)&out->ss;
		p = url + 5;
		if (*p == '\0') {
			*why = "empty unix socket path";
			return -1;
		}
		if (strlen(p) >= sizeof(sun->sun_path)) {
			*why = "unix socket path too long";
			return -1;
		}
		sun->sun_family = AF_UNIX;
		strcpy(sun->sun_path, p);
		out->len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(p) + 1);
		out->family = AF_UNIX;
		return 0;
	}
	if (strncmp(url, "tcp:", 4) == 0) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&out->ss;
		const char *colon;
		p = url + 4;
		colon = strrchr(p, ':');
		if (!colon) {
			*why = "tcp: URL without :port";
			return -1;
		}
		if (parse_host_port(p, (size_t)(colon - p), colon + 1, AF_INET, &sin->sin_addr,
				    &sin->sin_port, why) < 0)
			return -1;
		sin->sin_family = AF_INET;
		out->len = sizeof(*sin);
		out->family = AF_INET;
		return 0;
	}
	if (strncmp(url, "tcp6:[", 6) == 0) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&out->ss;
		const char *close;
		p = url + 6;
		close = strchr(p, ']');
		if (!close || close[1] != ':') {
			*why = "tcp6: URL must be tcp6:[address]:port";
			return -1;
		}
		if (parse_host_port(p, (size_t)(close - p), close + 2, AF_INET6, &sin6->sin6_addr,
				    &sin6->sin6_port, why) < 0)
			return -1;
		sin6->sin6_family = AF_INET6;
		out->len = sizeof(*sin6);
		out->family = AF_INET6;
		return 0;
	}
	*why = "unknown socket URL scheme";
	return -1;
}

char *socket_addr_format(const struct socket_addr *addr, char *buf, size_t size)
{
	char host[INET6_ADDRSTRLEN];

	switch (addr->family) {
	case AF_UNIX:
		snprintf(buf, size, "unix:%s", ((const struct sockaddr_un *)&addr->ss)->sun_path);
		break;
	case AF_INET: {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)&addr->ss;
		inet_ntop(AF_INET, &sin->sin_addr, host, sizeof(host));
		snprintf(buf, size, "tcp:%s:%u", host, ntohs(sin->sin_port));
		break;
	}
	case AF_INET6: {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&addr->ss;
		inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof(host));
		snprintf(buf, size, "tcp6:[%s]:%u", host, ntohs(sin6->sin6_port));
		break;
	}
	default:
		snprintf(buf, size, "(unknown)");
	}
	return buf;
}
