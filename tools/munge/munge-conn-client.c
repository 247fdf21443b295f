/*
 * munge-conn-client: the client side of a MUNGE-authenticated connection,
 * for `make bench-munge` (see conn.h for the wire format).
 *
 * One operation: a new TCP connection from one of the thread's own
 * loopback source addresses to --connect, a credential encoded through
 * libmunge and the munged at --socket (payload "user:group" of our real
 * uid, as a PBS client encodes; resolved once at start), sent, the reply
 * read and checked to be an acceptance, close. As in PBS, the credential
 * is encoded after connecting, one per connection.
 *
 * Bench mode (default) runs --threads threads, each doing operations back
 * to back: --warmup seconds unmeasured, then --duration seconds measured,
 * and prints one line:
 *   threads=N seconds=S ops=N errors=N per_second=R first_error="..."
 * Operations that fail are counted, not retried; only those finished
 * inside the measured window count, as in momgate-bench.
 *
 * --check MODE makes one self-test exchange and exits 0 only if the
 * server answered as it must:
 *   accept   a fresh credential is accepted;
 *   refuse   a fresh credential is refused (server expecting another uid);
 *   replay   a credential accepted once is refused when sent again;
 *   garbage  a string that is no credential is refused.
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

#define MAX_THREADS 255 /* one address byte each */

struct thread {
	int index;
	munge_ctx_t ctx;
	unsigned long next_source;
	pthread_t tid;
};

static struct {
	const char *socket_path;
	struct sockaddr_in target;
	long source_base, sources_per_thread;
	int raw; /* --raw: send raw_frame, no credential (reference only) */
	char raw_frame[164]; /* 163 bytes: the size of a credential of user:group */
	char payload[512];
	size_t payload_len;
	atomic_int measuring, stop;
	atomic_ulong ops, errors;
	pthread_mutex_t first_mu;
	char first_error[320];
} cl = {.source_base = 83, .sources_per_thread = 4, .first_mu = PTHREAD_MUTEX_INITIALIZER};

static void usage(void)
{
	fprintf(stderr,
		"usage: munge-conn-client --socket MUNGED_SOCKET --connect 127.x.y.z:PORT\n"
		"         [--threads N] [--warmup SECS] [--duration SECS]\n"
		"         [--source-base B] [--sources-per-thread K] [--check accept|refuse|replay|garbage]\n"
		"  thread t connects from 127.B.t.1 .. 127.B.t.K in turn (default B 83, K 4)\n"
		"  --raw  no MUNGE: send a credential-sized frame (reference, with munge-conn-server --raw)\n");
}

/*
 * One connection. cred is sent as is when given, else a fresh one is
 * encoded after connecting. Returns 0 if accepted, 1 if refused (reason
 * in why), -1 on any other failure (why says what).
 */
static int exchange(struct thread *t, const char *cred, char *why, size_t whylen)
{
	struct sockaddr_in src = {.sin_family = AF_INET};
	unsigned char body[CONN_MAX_FRAME];
	char *fresh = NULL;
	int one = 1, rc = -1, fd;
	long n;
	munge_err_t e;

	src.sin_addr.s_addr = htonl(127u << 24 | (uint32_t)cl.source_base << 16 | (uint32_t)t->index << 8 |
				    (uint32_t)(1 + t->next_source++ % (unsigned long)cl.sources_per_thread));
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(why, whylen, "socket: %s", strerror(errno));
		return -1;
	}
	/* The kernel picks the source port at connect time, per destination,
	 * as for the Go dialer (IP_BIND_ADDRESS_NO_PORT). */
	if (setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one)) != 0 ||
	    bind(fd, (struct sockaddr *)&src, sizeof(src)) != 0 || conn_tune(fd) != 0) {
		snprintf(why, whylen, "bind source: %s", strerror(errno));
		goto out;
	}
	if (connect(fd, (struct sockaddr *)&cl.target, sizeof(cl.target)) != 0) {
		snprintf(why, whylen, "connect: %s", strerror(errno));
		goto out;
	}
	if (cred == NULL && cl.raw)
		cred = cl.raw_frame;
	if (cred == NULL) {
		e = munge_encode(&fresh, t->ctx, cl.payload, (int)cl.payload_len);
		if (e != EMUNGE_SUCCESS) {
			snprintf(why, whylen, "munge_encode: %s", munge_ctx_strerror(t->ctx));
			goto out;
		}
		cred = fresh;
	}
	if (conn_write_frame(fd, cred, strlen(cred)) != 0) {
		snprintf(why, whylen, "send credential: %s", strerror(errno));
		goto out;
	}
	n = conn_read_frame(fd, body, sizeof(body), CONN_MAX_FRAME);
	if (n != CONN_REPLY_BODY) {
		snprintf(why, whylen, "read reply: %s", n < 0 ? strerror(errno) : "wrong length");
		goto out;
	}
	body[n - 1] = '\0';
	snprintf(why, whylen, "%.*s", CONN_REPLY_BODY - 2, (const char *)body + 1);
	rc = body[0] == CONN_ACCEPTED ? 0 : 1;
out:
	free(fresh);
	close(fd);
	return rc;
}

static void *bench_loop(void *arg)
{
	struct thread *t = arg;
	char why[256];

	while (!atomic_load(&cl.stop)) {
		int rc = exchange(t, NULL, why, sizeof(why));
		if (!atomic_load(&cl.measuring) || atomic_load(&cl.stop))
			continue;
		if (rc == 0) {
			atomic_fetch_add(&cl.ops, 1);
			continue;
		}
		atomic_fetch_add(&cl.errors, 1);
		pthread_mutex_lock(&cl.first_mu);
		if (cl.first_error[0] == '\0')
			snprintf(cl.first_error, sizeof(cl.first_error), "%s%s", rc == 1 ? "refused: " : "", why);
		pthread_mutex_unlock(&cl.first_mu);
	}
	return NULL;
}

static void sleep_seconds(double s)
{
	struct timespec ts = {.tv_sec = (time_t)s, .tv_nsec = (long)((s - (double)(time_t)s) * 1e9)};

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static int check(struct thread *t, const char *mode)
{
	char why[256], *cred = NULL;
	int rc;

	if (strcmp(mode, "accept") == 0 || strcmp(mode, "refuse") == 0) {
		int want = strcmp(mode, "accept") == 0 ? 0 : 1;
		rc = exchange(t, NULL, why, sizeof(why));
		printf("check %s: %s (%s)\n", mode, rc == 0 ? "accepted" : rc == 1 ? "refused" : "failed", why);
		return rc == want ? 0 : 1;
	}
	if (strcmp(mode, "garbage") == 0) {
		rc = exchange(t, "MUNGE:this-is-not-a-credential:", why, sizeof(why));
		printf("check garbage: %s (%s)\n", rc == 0 ? "accepted" : rc == 1 ? "refused" : "failed", why);
		return rc == 1 ? 0 : 1;
	}
	if (strcmp(mode, "replay") == 0) {
		if (munge_encode(&cred, t->ctx, cl.payload, (int)cl.payload_len) != EMUNGE_SUCCESS) {
			printf("check replay: munge_encode: %s\n", munge_ctx_strerror(t->ctx));
			return 1;
		}
		rc = exchange(t, cred, why, sizeof(why));
		printf("check replay, first use: %s (%s)\n", rc == 0 ? "accepted" : "not accepted", why);
		if (rc == 0) {
			rc = exchange(t, cred, why, sizeof(why));
			printf("check replay, second use: %s (%s)\n", rc == 1 ? "refused" : "not refused", why);
			rc = rc == 1 && strstr(why, "replay") != NULL ? 0 : 1;
		} else {
			rc = 1;
		}
		free(cred);
		return rc;
	}
	fprintf(stderr, "munge-conn-client: --check %s: want accept, refuse, replay or garbage\n", mode);
	return 2;
}

static int own_payload(void)
{
	struct passwd *pw = getpwuid(getuid());
	struct group *gr = pw != NULL ? getgrgid(pw->pw_gid) : NULL;
	int n;

	if (pw == NULL || gr == NULL) {
		fprintf(stderr, "munge-conn-client: no user or group for uid %ld\n", (long)getuid());
		return -1;
	}
	n = snprintf(cl.payload, sizeof(cl.payload), "%s:%s", pw->pw_name, gr->gr_name);
	if (n < 0 || (size_t)n >= sizeof(cl.payload))
		return -1;
	cl.payload_len = (size_t)n;
	return 0;
}

int main(int argc, char **argv)
{
	static struct thread threads[MAX_THREADS];
	const char *connect_arg = NULL, *mode = NULL;
	long nthreads = 2, warmup = 1, duration = 5;
	double began, elapsed;
	char err[256];

	static const struct option opts[] = {
		{"socket", required_argument, NULL, 'S'},
		{"connect", required_argument, NULL, 'c'},
		{"check", required_argument, NULL, 'k'},
		{"threads", required_argument, NULL, 't'},
		{"warmup", required_argument, NULL, 'w'},
		{"duration", required_argument, NULL, 'd'},
		{"source-base", required_argument, NULL, 'b'},
		{"sources-per-thread", required_argument, NULL, 'n'},
		{"raw", no_argument, NULL, 'r'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	for (int c, li = 0; (c = getopt_long(argc, argv, "h", opts, &li)) != -1;) {
		int ok = 1;
		switch (c) {
		case 'S': cl.socket_path = optarg; break;
		case 'c': connect_arg = optarg; break;
		case 'k': mode = optarg; break;
		case 'r': cl.raw = 1; break;
		case 't': ok = conn_parse_long(optarg, 1, MAX_THREADS, &nthreads) == 0; break;
		case 'w': ok = conn_parse_long(optarg, 0, 3600, &warmup) == 0; break;
		case 'd': ok = conn_parse_long(optarg, 1, 3600, &duration) == 0; break;
		case 'b': ok = conn_parse_long(optarg, 1, 255, &cl.source_base) == 0; break;
		case 'n': ok = conn_parse_long(optarg, 1, 254, &cl.sources_per_thread) == 0; break;
		case 'h': usage(); return 0;
		default: usage(); return 2; /* getopt_long said what was wrong */
		}
		if (!ok) {
			fprintf(stderr, "munge-conn-client: --%s %s: bad value\n", opts[li].name, optarg);
			return 2;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "munge-conn-client: unexpected argument %s\n", argv[optind]);
		return 2;
	}
	if (cl.socket_path == NULL || connect_arg == NULL) {
		usage();
		return 2;
	}
	if (conn_parse_loopback(connect_arg, 0, &cl.target, err, sizeof(err)) != 0) {
		fprintf(stderr, "munge-conn-client: --connect %s\n", err);
		return 2;
	}
	if (own_payload() != 0)
		return 2;
	memset(cl.raw_frame, 'x', sizeof(cl.raw_frame) - 1);
	signal(SIGPIPE, SIG_IGN);
	for (long t = 0; t < nthreads; t++) {
		threads[t].index = (int)t;
		threads[t].ctx = munge_ctx_create();
		if (threads[t].ctx == NULL ||
		    munge_ctx_set(threads[t].ctx, MUNGE_OPT_SOCKET, cl.socket_path) != EMUNGE_SUCCESS) {
			fprintf(stderr, "munge-conn-client: munge context for socket %s failed\n", cl.socket_path);
			return 1;
		}
	}
	if (mode != NULL)
		return check(&threads[0], mode);

	for (long t = 0; t < nthreads; t++) {
		if ((errno = pthread_create(&threads[t].tid, NULL, bench_loop, &threads[t])) != 0) {
			fprintf(stderr, "munge-conn-client: thread: %s\n", strerror(errno));
			return 1;
		}
	}
	sleep_seconds((double)warmup);
	atomic_store(&cl.measuring, 1);
	began = conn_now();
	sleep_seconds((double)duration);
	atomic_store(&cl.stop, 1);
	elapsed = conn_now() - began;
	for (long t = 0; t < nthreads; t++) {
		pthread_join(threads[t].tid, NULL);
		munge_ctx_destroy(threads[t].ctx);
	}
	for (char *p = cl.first_error; *p != '\0'; p++)
		if (*p == '"' || *p == '\n')
			*p = '\'';
	printf("threads=%ld seconds=%.3f ops=%lu errors=%lu per_second=%.1f first_error=\"%s\"\n", nthreads,
	       elapsed, atomic_load(&cl.ops), atomic_load(&cl.errors),
	       (double)atomic_load(&cl.ops) / elapsed, cl.first_error);
	return 0;
}
