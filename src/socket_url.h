/* Socket URLs as fcgiwrap 1.1.0 accepts them: unix:/path,
 * tcp:dot.ted.qu.ad:port and tcp6:[ipv6_addr]:port. */
#ifndef FCGIWRAP_SOCKET_URL_H
#define FCGIWRAP_SOCKET_URL_H

#include <sys/socket.h>
#include <sys/un.h>

struct socket_addr {
	struct sockaddr_storage ss;
	socklen_t len;
	int family; /* AF_UNIX, AF_INET or AF_INET6 */
};

/* Parses url into *out.  Returns 0, or -1 with a static reason in *why. */
int socket_url_parse(const char *url, struct socket_addr *out, const char **why);

/* Formats addr as a URL into buf (for log lines).  Returns buf. */
char *socket_addr_format(const struct socket_addr *addr, char *buf, size_t size);

extern const char socket_url_help[];

#endif
