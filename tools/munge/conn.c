/* Helpers shared by munge-conn-client and munge-conn-server (see conn.h). */
#include "conn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

int conn_parse_long(const char *s, long min, long max, long *out)
{
	char *end;
	long v;

	if (s == NULL || *s == '\0')
		return -1;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

int conn_parse_loopback(const char *s, int allow_zero, struct sockaddr_in *out,
			char *err, size_t errlen)
{
	char host[64];
	const char *colon = strrchr(s, ':');
	long port;

	if (colon == NULL || (size_t)(colon - s) >= sizeof(host)) {
		snprintf(err, errlen, "%s: want IPv4:PORT", s);
		return -1;
	}
	memcpy(host, s, (size_t)(colon - s));
	host[colon - s] = '\0';
	memset(out, 0, sizeof(*out));
	out->sin_family = AF_INET;
	if (inet_pton(AF_INET, host, &out->sin_addr) != 1) {
		snprintf(err, errlen, "%s: %s is not an IPv4 address", s, host);
		return -1;
	}
	if ((ntohl(out->sin_addr.s_addr) >> 24) != 127) {
		snprintf(err, errlen, "%s: only loopback addresses (127.0.0.0/8) are allowed", s);
		return -1;
	}
	if (conn_parse_long(colon + 1, allow_zero ? 0 : 1, 65535, &port) != 0) {
		snprintf(err, errlen, "%s: bad port", s);
		return -1;
	}
	out->sin_port = htons((uint16_t)port);
	return 0;
}

int conn_tune(int fd)
{
	struct timeval tv = {.tv_sec = CONN_IO_TIMEOUT, .tv_usec = 0};
	int one = 1;

	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) != 0 ||
	    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0)
		return -1;
	return 0;
}

int conn_read_full(int fd, void *buf, size_t n)
{
	unsigned char *p = buf;

	while (n > 0) {
		ssize_t r = read(fd, p, n);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (r == 0) {
			errno = EPIPE;
			return -1;
		}
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

int conn_write_all(int fd, const void *buf, size_t n)
{
	const unsigned char *p = buf;

	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

long conn_read_frame(int fd, unsigned char *buf, size_t cap, size_t max)
{
	unsigned char hdr[4];
	uint32_t len;

	if (conn_read_full(fd, hdr, sizeof(hdr)) != 0)
		return -1;
	len = (uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 | (uint32_t)hdr[2] << 8 | hdr[3];
	if (len == 0 || len > max || len > cap) {
		errno = EMSGSIZE;
		return -1;
	}
	if (conn_read_full(fd, buf, len) != 0)
		return -1;
	return (long)len;
}

int conn_write_frame(int fd, const void *body, size_t len)
{
	unsigned char out[4 + CONN_MAX_FRAME];

	if (len == 0 || len > CONN_MAX_FRAME) {
		errno = EMSGSIZE;
		return -1;
	}
	out[0] = (unsigned char)(len >> 24);
	out[1] = (unsigned char)(len >> 16);
	out[2] = (unsigned char)(len >> 8);
	out[3] = (unsigned char)len;
	memcpy(out + 4, body, len);
	return conn_write_all(fd, out, 4 + len);
}

double conn_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}
