/*
 * munge-conn-server: the server side of a MUNGE-authenticated connection,
 * for `make bench-munge` (see conn.h for the wire format).
 *
 * For each accepted TCP connection it reads one credential, decodes it
 * through libmunge and the munged at --socket, and accepts the connection
 * only if munged says the credential is valid (MAC, time to live, and not
 * replayed: munged keeps a replay cache and refuses a credential decoded
 * before) and the credential's uid, gid and payload are the expected ones
 * (a PBS daemon checks the decoded user the same way; the expected values
 * are resolved once at start, not per connection). It answers with one
 * reply frame, reads until the client closes, and closes.
 *
 * --threads accept threads share the listening socket; each has its own
 * munge context, so as many connections are served at once as there are
 * threads, each blocking in munged's round trip like a goroutine would.
 *
 * Prints "listening IP:PORT" once ready, and on SIGTERM or SIGINT stops
 * accepting, finishes the connections in progress and prints its counters.
 */
#include "conn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <munge.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_THREADS 1024

struct counters {
	atomic_ulong accepted, bad_frame, decode_failed, replayed, wrong_uid, wrong_gid,
		wrong_payload;
};

static struct {
	const char *socket_path;
	uid_t uid;
	gid_t gid;
	char payload[512];
	size_t payload_len;
	int listen_fd;
	int raw; /* --raw: answer without decoding (reference only) */
	atomic_int stopping;
	struct counters n;
} srv;

static void usage(void)
{
	fprintf(stderr,
		"usage: munge-conn-server --socket MUNGED_SOCKET --listen 127.x.y.z:PORT\n"
		"         [--threads N] [--uid UID] [--gid GID] [--payload USER:GROUP]\n"
		"  --threads  accept threads, each serving one connection at a time (default 2)\n"
		"  --uid/--gid  the uid and gid a credential must carry (default: ours)\n"
		"  --payload  the payload it must carry (default: user:group of --uid, as PBS encodes)\n"
		"  --raw      no MUNGE: accept any frame (reference: the same TCP exchange in C)\n");
}

/* Sends the reply frame: status byte, reason, zero padding. */
static void reply(int fd, int status, const char *reason)
{
	unsigned char body[CONN_REPLY_BODY] = {0};
	size_t n = strlen(reason);

	body[0] = (unsigned char)status;
	if (n > sizeof(body) - 2)
		n = sizeof(body) - 2;
	memcpy(body + 1, reason, n);
	(void)conn_write_frame(fd, body, sizeof(body));
}

/* Checks one decoded credential; returns NULL if it is accepted, or why not. */
static const char *check(munge_err_t e, uid_t uid, gid_t gid, const void *payload, int len)
{
	if (e == EMUNGE_CRED_REPLAYED) {
		atomic_fetch_add(&srv.n.replayed, 1);
		return "replayed credential";
	}
	if (e != EMUNGE_SUCCESS) {
		atomic_fetch_add(&srv.n.decode_failed, 1);
		return munge_strerror(e);
	}
	if (uid != srv.uid) {
		atomic_fetch_add(&srv.n.wrong_uid, 1);
		return "wrong uid";
	}
	if (gid != srv.gid) {
		atomic_fetch_add(&srv.n.wrong_gid, 1);
		return "wrong gid";
	}
	if (len < 0 || (size_t)len != srv.payload_len || memcmp(payload, srv.payload, srv.payload_len) != 0) {
		atomic_fetch_add(&srv.n.wrong_payload, 1);
		return "payload does not name the expected user:group";
	}
	atomic_fetch_add(&srv.n.accepted, 1);
	return NULL;
}

static void serve(int fd, munge_ctx_t ctx)
{
	unsigned char buf[CONN_MAX_FRAME + 1];
	void *payload = NULL;
	int len = 0;
	uid_t uid = (uid_t)-1;
	gid_t gid = (gid_t)-1;
	const char *why;
	munge_err_t e;
	long n;

	if (conn_tune(fd) != 0 || (n = conn_read_frame(fd, buf, CONN_MAX_FRAME, CONN_MAX_FRAME)) < 0) {
		atomic_fetch_add(&srv.n.bad_frame, 1);
		return;
	}
	buf[n] = '\0';
	if (memchr(buf, '\0', (size_t)n) != NULL) {
		atomic_fetch_add(&srv.n.bad_frame, 1);
		reply(fd, CONN_REFUSED, "credential contains NUL");
		return;
	}
	if (srv.raw) {
		atomic_fetch_add(&srv.n.accepted, 1);
		why = NULL;
	} else {
		e = munge_decode((const char *)buf, ctx, &payload, &len, &uid, &gid);
		why = check(e, uid, gid, payload, len);
	}
	free(payload); /* munge_decode may allocate it even on error */
	reply(fd, why == NULL ? CONN_ACCEPTED : CONN_REFUSED, why == NULL ? "ok" : why);
	/* Until the client closes (or the timeout), as a MOM does. */
	while (read(fd, buf, sizeof(buf)) > 0)
		;
}

static void *accept_loop(void *arg)
{
	munge_ctx_t ctx = arg;

	while (!atomic_load(&srv.stopping)) {
		int fd = accept4(srv.listen_fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
				struct timespec ts = {.tv_sec = 0, .tv_nsec = 10 * 1000 * 1000};
				nanosleep(&ts, NULL); /* back off until descriptors free up */
			}
			continue; /* EINTR, ECONNABORTED; EINVAL once shut down */
		}
		serve(fd, ctx);
		close(fd);
	}
	return NULL;
}

static int expected_payload(void)
{
	struct passwd *pw = getpwuid(srv.uid);
	struct group *gr = getgrgid(srv.gid);
	int n;

	if (pw == NULL || gr == NULL) {
		fprintf(stderr, "munge-conn-server: no user or group for uid %ld gid %ld: give --payload\n",
			(long)srv.uid, (long)srv.gid);
		return -1;
	}
	n = snprintf(srv.payload, sizeof(srv.payload), "%s:%s", pw->pw_name, gr->gr_name);
	if (n < 0 || (size_t)n >= sizeof(srv.payload))
		return -1;
	srv.payload_len = (size_t)n;
	return 0;
}

int main(int argc, char **argv)
{
	const char *listen_arg = NULL, *payload_arg = NULL;
	struct sockaddr_in addr;
	socklen_t alen = sizeof(addr);
	pthread_t tids[MAX_THREADS];
	munge_ctx_t ctxs[MAX_THREADS];
	long threads = 2, v = 0;
	char err[256], ip[INET_ADDRSTRLEN];
	sigset_t sigs;
	int sig, one = 1;

	srv.uid = getuid();
	srv.gid = getgid();
	static const struct option opts[] = {
		{"socket", required_argument, NULL, 'S'},
		{"listen", required_argument, NULL, 'l'},
		{"threads", required_argument, NULL, 't'},
		{"uid", required_argument, NULL, 'u'},
		{"gid", required_argument, NULL, 'g'},
		{"payload", required_argument, NULL, 'p'},
		{"raw", no_argument, NULL, 'r'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	for (int c, li = 0; (c = getopt_long(argc, argv, "h", opts, &li)) != -1;) {
		int ok = 1;
		switch (c) {
		case 'S': srv.socket_path = optarg; break;
		case 'l': listen_arg = optarg; break;
		case 'p': payload_arg = optarg; break;
		case 'r': srv.raw = 1; break;
		case 't': ok = conn_parse_long(optarg, 1, MAX_THREADS, &threads) == 0; break;
		case 'u':
			if ((ok = conn_parse_long(optarg, 0, 0x7fffffff, &v) == 0))
				srv.uid = (uid_t)v;
			break;
		case 'g':
			if ((ok = conn_parse_long(optarg, 0, 0x7fffffff, &v) == 0))
				srv.gid = (gid_t)v;
			break;
		case 'h': usage(); return 0;
		default: usage(); return 2; /* getopt_long said what was wrong */
		}
		if (!ok) {
			fprintf(stderr, "munge-conn-server: --%s %s: bad value\n", opts[li].name, optarg);
			return 2;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "munge-conn-server: unexpected argument %s\n", argv[optind]);
		return 2;
	}
	if (srv.socket_path == NULL || listen_arg == NULL) {
		usage();
		return 2;
	}
	if (conn_parse_loopback(listen_arg, 1, &addr, err, sizeof(err)) != 0) {
		fprintf(stderr, "munge-conn-server: --listen %s\n", err);
		return 2;
	}
	if (payload_arg != NULL) {
		srv.payload_len = strlen(payload_arg);
		if (srv.payload_len >= sizeof(srv.payload)) {
			fprintf(stderr, "munge-conn-server: --payload too long\n");
			return 2;
		}
		memcpy(srv.payload, payload_arg, srv.payload_len);
	} else if (expected_payload() != 0) {
		return 2;
	}

	srv.listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (srv.listen_fd < 0 ||
	    setsockopt(srv.listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
	    bind(srv.listen_fd, (struct sockaddr *)&addr, sizeof(addr)) != 0 ||
	    listen(srv.listen_fd, 4096) != 0 ||
	    getsockname(srv.listen_fd, (struct sockaddr *)&addr, &alen) != 0) {
		fprintf(stderr, "munge-conn-server: listen on %s: %s\n", listen_arg, strerror(errno));
		return 1;
	}

	/* Only the main thread takes SIGINT and SIGTERM (with sigwait). */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);

	for (long t = 0; t < threads; t++) {
		ctxs[t] = munge_ctx_create();
		if (ctxs[t] == NULL || munge_ctx_set(ctxs[t], MUNGE_OPT_SOCKET, srv.socket_path) != EMUNGE_SUCCESS) {
			fprintf(stderr, "munge-conn-server: munge context for socket %s failed\n", srv.socket_path);
			return 1;
		}
		if ((errno = pthread_create(&tids[t], NULL, accept_loop, ctxs[t])) != 0) {
			fprintf(stderr, "munge-conn-server: thread: %s\n", strerror(errno));
			return 1;
		}
	}
	inet_ntop(AF_INET, &addr.sin_addr, ip, sizeof(ip));
	printf("listening %s:%u threads=%ld uid=%ld gid=%ld payload=%.*s\n", ip, ntohs(addr.sin_port),
	       threads, (long)srv.uid, (long)srv.gid, (int)srv.payload_len, srv.payload);
	fflush(stdout);

	while (sigwait(&sigs, &sig) != 0)
		;
	atomic_store(&srv.stopping, 1);
	shutdown(srv.listen_fd, SHUT_RDWR); /* wakes every accept() */
	for (long t = 0; t < threads; t++) {
		pthread_join(tids[t], NULL);
		munge_ctx_destroy(ctxs[t]);
	}
	close(srv.listen_fd);
	printf("accepted=%lu bad_frame=%lu decode_failed=%lu replayed=%lu wrong_uid=%lu wrong_gid=%lu "
	       "wrong_payload=%lu\n",
	       atomic_load(&srv.n.accepted), atomic_load(&srv.n.bad_frame),
	       atomic_load(&srv.n.decode_failed), atomic_load(&srv.n.replayed),
	       atomic_load(&srv.n.wrong_uid), atomic_load(&srv.n.wrong_gid),
	       atomic_load(&srv.n.wrong_payload));
	return 0;
}
