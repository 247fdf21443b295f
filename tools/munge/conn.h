/*
 * Shared pieces of munge-conn-client and munge-conn-server: the wire
 * format of a MUNGE-authenticated connection, socket helpers and a
 * strict number parser.
 *
 * Wire format, one exchange per TCP connection:
 *   request: 4-byte big-endian length L (1..CONN_MAX_FRAME), then L bytes:
 *            the credential text exactly as munge_encode() returned it
 *            (no NUL).
 *   reply:   4-byte big-endian length (always CONN_REPLY_BODY), then the
 *            body: one status byte (CONN_ACCEPTED or CONN_REFUSED), the
 *            reason as text, zero padding. A reply is 140 bytes on the
 *            wire, as a momgate PingReply is.
 * After the reply the client closes; the server reads to end of stream
 * and closes, as a momgate MOM does after a PING swap.
 */
#ifndef MOMGATE_MUNGE_CONN_H
#define MOMGATE_MUNGE_CONN_H

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>

#define CONN_MAX_FRAME 4096
#define CONN_REPLY_BODY 136
#define CONN_ACCEPTED 0
#define CONN_REFUSED 1
/* Seconds any one read or write may block, like the Go side's deadlines. */
#define CONN_IO_TIMEOUT 5

/* Parses a base-10 integer in [min, max]; 0 on success, -1 otherwise. */
int conn_parse_long(const char *s, long min, long max, long *out);

/* Parses "a.b.c.d:port" (IPv4 loopback only, 127.0.0.0/8); 0 on success,
 * -1 with a message in err otherwise. Port 0 is allowed when allow_zero. */
int conn_parse_loopback(const char *s, int allow_zero, struct sockaddr_in *out,
			char *err, size_t errlen);

/* Sets the send and receive timeouts (CONN_IO_TIMEOUT) and TCP_NODELAY
 * (Go sets it on every TCP connection, so both sides match). */
int conn_tune(int fd);

/* Reads exactly n bytes; 0 on success, -1 (errno set; EPIPE on early end
 * of stream). */
int conn_read_full(int fd, void *buf, size_t n);

/* Writes all n bytes; 0 on success, -1 with errno. */
int conn_write_all(int fd, const void *buf, size_t n);

/* Reads one frame (header, then body, as two reads like the Go side) into
 * buf of size cap; returns the body length, or -1 (errno EMSGSIZE when the
 * length is 0 or over max). */
long conn_read_frame(int fd, unsigned char *buf, size_t cap, size_t max);

/* Writes header and body with a single write. */
int conn_write_frame(int fd, const void *body, size_t len);

/* Monotonic time in seconds. */
double conn_now(void);

#endif
