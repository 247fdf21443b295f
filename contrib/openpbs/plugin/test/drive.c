/*
 * drive: loads libauth_momgate.so as OpenPBS does (dlopen, the libauth
 * symbols) and runs handshakes between an initiator and a responder
 * context, carrying the tokens as PBS would. For plugin_test.go.
 *
 *   drive LIB once    INI_SOCK INI_HOST RESP_SOCK RESP_PEER KIND
 *   drive LIB fork    INI_SOCK INI_HOST RESP_SOCK RESP_PEER KIND
 *   drive LIB encrypt INI_SOCK INI_HOST RESP_SOCK RESP_PEER KIND
 *   drive LIB threads|threads-encrypt N M SOCK HOST PEER KIND
 *   drive LIB bench|bench-encrypt N SECONDS SOCK HOST PEER KIND
 *   drive LIB check   INI_SOCK INI_HOST RESP_SOCK RESP_PEER KIND
 *   drive LIB euid    SOCK HOST PEER UID GID
 *
 * once: one handshake; the initiator's calls go to INI_SOCK (naming the
 * responder INI_HOST), the responder's to RESP_SOCK (naming the initiator
 * RESP_PEER). fork: one handshake, then an encrypted one in a forked child. encrypt: one
 * handshake with PBS_ENCRYPT_METHOD=momgate, then records both ways, and
 * the records PBS must never accept (damaged, replayed, reordered, from a
 * connection without keys). threads: N threads of M handshakes each, both
 * sides on SOCK (threads-encrypt: every other thread's encrypted, so that
 * each thread's configuration must reach its own connections alone). KIND
 * is user or service. bench: N processes run handshakes for SECONDS, nothing
 * else, and the rate is printed ("bench: H handshakes in S s, R/s"): any
 * libauth plugin (libauth_munge.so too) against its daemons, with the CPU
 * time the processes spent per handshake. Prints "user=U host=H" per
 * handshake (once, fork, encrypt; then "records ok"), "ok N" (threads); on
 * failure the plugin's error text, and exits 1.
 *
 * check: one handshake, then, for each line read on stdin, one call of
 * pbs_auth_check_ctx on the responder's context, as patched pbs_comm
 * makes them: prints "check=RC REASON" (0 admitted, 1 revoked, -1 could
 * not check). euid: three user handshakes in one thread, as root, with
 * effective UID and GID, as root again (the plugin keeps its connection to
 * the daemon between them): prints the user each was vouched for.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../libauth_abi.h"

static int (*create_ctx)(void **, int, int, const char *);
static void (*destroy_ctx)(void *);
static int (*get_userinfo)(void *, char **, char **, char **);
static int (*process)(void *, void *, size_t, void **, size_t *, int *);
static void (*set_config)(const mg_pbs_auth_config_t *);
static int (*encrypt_data)(void *, void *, size_t, void **, size_t *);
static int (*decrypt_data)(void *, void *, size_t, void **, size_t *);
static int (*check_ctx)(void *, char **);

/* check mode: the responder's context outlives its handshake. */
static void *kept_resp;

/* bench: handshakes only, no checks of records or keys after them. */
static int bench_mode;

/* What the plugin logged last in this thread, as PBS's log would have it. */
static __thread char last_log[1300];

static void drive_log(int type, int objclass, int severity, const char *objname, const char *text)
{
	(void) type, (void) objclass, (void) severity;
	snprintf(last_log, sizeof(last_log), "%s;%s", objname, text);
}

/* The configurations PBS gives: with PBS_ENCRYPT_METHOD=momgate, without. */
static mg_pbs_auth_config_t cfg_plain = {.auth_method = "momgate", .encrypt_method = "", .logfunc = drive_log};
static mg_pbs_auth_config_t cfg_encrypt = {.auth_method = "momgate", .encrypt_method = "momgate", .logfunc = drive_log};

struct side {
	const char *sock; /* NULL: leave MOMGATE_PBS_SOCKET alone */
	void *ctx;
};

static int step(struct side *s, void *in, size_t inlen, void **out, size_t *outlen, int *done, char *err, size_t errsz)
{
	if (s->sock != NULL)
		setenv("MOMGATE_PBS_SOCKET", s->sock, 1);
	if (process(s->ctx, in, inlen, out, outlen, done) != 0) {
		snprintf(err, errsz, "%.*s", (int) *outlen, *outlen > 0 ? (char *) *out : "(no error text)");
		free(*out);
		*out = NULL;
		return -1;
	}
	return 0;
}

/*
 * records checks an encrypted connection as PBS uses it: buffers both
 * ways open to what was sealed, in order; a damaged record, a replayed
 * one and a reordered one are refused, and nothing opens after a refusal.
 */
static int records(void *ini, void *resp, char *result, size_t rsz)
{
	static const char *msgs[] = {"#!/bin/sh\necho job script\n", "", "a longer buffer, as a TPP packet would be"};
	void *rec[3] = {0}, *out = NULL, *bad = NULL;
	size_t rlen[3] = {0}, olen = 0;
	int i, rc = -1;

	for (i = 0; i < 3; i++) {
		void *from = i == 1 ? resp : ini, *to = i == 1 ? ini : resp;
		size_t n = strlen(msgs[i]);
		if (encrypt_data(from, (void *) msgs[i], n, &rec[i], &rlen[i]) != 0 || rlen[i] != n + 24) {
			snprintf(result, rsz, "encrypt of buffer %d failed", i);
			goto out;
		}
		if (n > 0 && memmem(rec[i], rlen[i], msgs[i], n) != NULL) {
			snprintf(result, rsz, "record %d holds its buffer in the clear", i);
			goto out;
		}
		if (decrypt_data(to, rec[i], rlen[i], &out, &olen) != 0 || olen != n || memcmp(out, msgs[i], n) != 0) {
			snprintf(result, rsz, "record %d did not open to its buffer", i);
			goto out;
		}
		free(out);
		out = NULL;
	}
	/* Replayed: record 0 again. */
	if (decrypt_data(resp, rec[0], rlen[0], &out, &olen) == 0) {
		snprintf(result, rsz, "a replayed record opened");
		goto out;
	}
	/* The refusal sticks: even the next genuine record does not open. */
	if (encrypt_data(ini, (void *) msgs[0], strlen(msgs[0]), &bad, &olen) != 0 ||
	    decrypt_data(resp, bad, olen, &out, &olen) == 0) {
		snprintf(result, rsz, "a record opened after a refused one");
		goto out;
	}
	free(bad);
	bad = NULL;
	/* Damaged, on the other direction (still good): one bit of the tag. */
	if (encrypt_data(resp, (void *) msgs[2], strlen(msgs[2]), &bad, &olen) != 0) {
		snprintf(result, rsz, "encrypt failed");
		goto out;
	}
	((unsigned char *) bad)[olen - 1] ^= 1;
	if (decrypt_data(ini, bad, olen, &out, &olen) == 0) {
		snprintf(result, rsz, "a damaged record opened");
		goto out;
	}
	snprintf(result, rsz, "records ok");
	rc = 0;
out:
	for (i = 0; i < 3; i++)
		free(rec[i]);
	free(out);
	free(bad);
	return rc;
}

/* handshake runs one; the responder's user and host go to result. With
 * encrypt, the initiator is configured as PBS_ENCRYPT_METHOD=momgate and
 * records are checked after. */
static int handshake(const char *isock, const char *ihost, const char *rsock, const char *rpeer, int kind, int encrypt,
		     char *result, size_t rsz)
{
	struct side ini = {.sock = isock}, resp = {.sock = rsock};
	void *tok = NULL, *next = NULL;
	size_t len = 0, nlen = 0;
	int idone = 0, rdone = 0, rc = -1, rounds;
	char *user = NULL, *host = NULL, *realm = NULL;

	set_config(encrypt ? &cfg_encrypt : &cfg_plain);
	if (create_ctx(&ini.ctx, MG_AUTH_CLIENT, kind, ihost)) {
		snprintf(result, rsz, "create_ctx failed");
		return -1;
	}
	set_config(&cfg_plain);
	if (create_ctx(&resp.ctx, MG_AUTH_SERVER, kind, rpeer)) {
		snprintf(result, rsz, "create_ctx failed");
		destroy_ctx(ini.ctx);
		return -1;
	}
	if (step(&ini, NULL, 0, &tok, &len, &idone, result, rsz) != 0)
		goto out;
	for (rounds = 0; rounds < 4 && !(idone && rdone); rounds++) {
		if (!rdone && len > 0) {
			if (step(&resp, tok, len, &next, &nlen, &rdone, result, rsz) != 0)
				goto out;
			free(tok);
			tok = next, len = nlen, next = NULL, nlen = 0;
		}
		if (!idone && len > 0) {
			if (step(&ini, tok, len, &next, &nlen, &idone, result, rsz) != 0)
				goto out;
			free(tok);
			tok = next, len = nlen, next = NULL, nlen = 0;
		}
	}
	if (!(idone && rdone) || len != 0) {
		snprintf(result, rsz, "handshake did not finish (initiator done %d, responder done %d, %zu bytes left)", idone,
			 rdone, len);
		goto out;
	}
	if (get_userinfo(resp.ctx, &user, &host, &realm) != 0) {
		snprintf(result, rsz, "get_userinfo failed");
		goto out;
	}
	snprintf(result, rsz, "user=%s host=%s", user, host != NULL ? host : "(none)");
	rc = 0;
	if (bench_mode) {
		/* nothing but the handshake */
	} else if (encrypt) {
		size_t n = strlen(result);
		rc = records(ini.ctx, resp.ctx, result + n + 1, rsz - n - 1);
		result[n] = rc == 0 ? '\n' : ':';
	} else {
		/* Without encryption the connection has no keys: PBS gets an error. */
		void *out = NULL;
		size_t olen = 0;
		last_log[0] = '\0';
		if (encrypt_data(ini.ctx, "x", 1, &out, &olen) == 0 || strstr(last_log, "no momgate keys") == NULL) {
			snprintf(result, rsz, "a connection without encryption sealed a record (log: %s)", last_log);
			rc = -1;
		}
		free(out);
	}
out:
	free(tok);
	free(user);
	free(host);
	free(realm);
	destroy_ctx(ini.ctx);
	if (rc == 0 && kept_resp == (void *) &kept_resp)
		kept_resp = resp.ctx;
	else
		destroy_ctx(resp.ctx);
	return rc;
}

/* check_loop: a handshake, then one check per line of stdin. */
static int check_loop(const char *isock, const char *ihost, const char *rsock, const char *rpeer, int kind)
{
	char res[1300], line[64];
	if (check_ctx == NULL) {
		fprintf(stderr, "the plugin has no pbs_auth_check_ctx\n");
		return 2;
	}
	kept_resp = &kept_resp;
	if (handshake(isock, ihost, rsock, rpeer, kind, 0, res, sizeof(res)) != 0) {
		printf("%s\n", res);
		return 1;
	}
	printf("%s\n", res);
	fflush(stdout);
	/* DRIVE_CHECK_SOCK: ask another socket (a daemon that is down). */
	setenv("MOMGATE_PBS_SOCKET", getenv("DRIVE_CHECK_SOCK") != NULL ? getenv("DRIVE_CHECK_SOCK") : rsock, 1);
	while (fgets(line, sizeof(line), stdin) != NULL) {
		char *reason = NULL;
		int rc = check_ctx(kept_resp, &reason);
		printf("check=%d %s\n", rc, reason != NULL ? reason : "");
		fflush(stdout);
		free(reason);
	}
	destroy_ctx(kept_resp);
	return 0;
}

/* euid_loop: user handshakes as root, as uid/gid, as root again, in one
 * thread: each vouched for the effective user of its moment. */
static int euid_loop(const char *sock, const char *host, const char *peer, uid_t uid, gid_t gid)
{
	char res[1300];
	int i;
	setenv("MOMGATE_PBS_SOCKET", sock, 1);
	for (i = 0; i < 3; i++) {
		if (i == 1 && (setegid(gid) != 0 || seteuid(uid) != 0)) {
			perror("seteuid");
			return 2;
		}
		if (i == 2 && (seteuid(0) != 0 || setegid(0) != 0)) {
			perror("seteuid back");
			return 2;
		}
		if (handshake(NULL, host, NULL, peer, MG_AUTH_USER_CONN, 0, res, sizeof(res)) != 0) {
			printf("%s\n", res);
			return 1;
		}
		printf("%s\n", res);
	}
	return 0;
}

struct job {
	const char *sock, *host, *peer;
	int kind, count, failed, encrypt;
	char err[1300];
};

static void *worker(void *arg)
{
	struct job *j = arg;
	char res[1300];
	for (int i = 0; i < j->count; i++) {
		if (handshake(NULL, j->host, NULL, j->peer, j->kind, j->encrypt, res, sizeof(res)) != 0) {
			j->failed++;
			snprintf(j->err, sizeof(j->err), "%s", res);
		}
	}
	return NULL;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double) ts.tv_sec + ts.tv_nsec / 1e9;
}

/*
 * bench runs n processes (PBS's daemons and commands are processes, and
 * some plugins, OpenPBS's munge one among them, are not thread-safe), each
 * running handshakes one after another for secs seconds, both sides' calls
 * going to sock (MOMGATE_PBS_SOCKET; other plugins ignore it). Each child
 * reports its count and failures on a pipe.
 */
static int bench(int n, int secs, const char *sock, const char *host, const char *peer, int kind, int encrypt)
{
	long done = 0, failed = 0;
	double start, took, cpu;
	struct rusage ru;
	int fds[2], i;

	if (n < 1 || n > 64 || secs < 1 || secs > 600) {
		fprintf(stderr, "bench: 1..64 processes for 1..600 seconds\n");
		return 2;
	}
	setenv("MOMGATE_PBS_SOCKET", sock, 1);
	if (pipe(fds) != 0) {
		perror("pipe");
		return 2;
	}
	fflush(stdout);
	start = now_s();
	for (i = 0; i < n; i++) {
		pid_t pid = fork();
		if (pid < 0) {
			perror("fork");
			return 2;
		}
		if (pid == 0) {
			long counts[2] = {0, 0};
			char res[1300];
			close(fds[0]);
			while (now_s() < start + secs) {
				if (handshake(NULL, host, NULL, peer, kind, encrypt, res, sizeof(res)) == 0) {
					counts[0]++;
				} else {
					if (counts[1]++ == 0)
						fprintf(stderr, "process %d: %s\n", i, res);
					if (counts[1] > 10)
						break;
				}
			}
			if (write(fds[1], counts, sizeof(counts)) != (ssize_t) sizeof(counts))
				_exit(1);
			_exit(0);
		}
	}
	close(fds[1]);
	for (i = 0; i < n; i++) {
		long counts[2];
		if (read(fds[0], counts, sizeof(counts)) != (ssize_t) sizeof(counts)) {
			fprintf(stderr, "bench: a process died before reporting\n");
			failed++;
			continue;
		}
		done += counts[0];
		failed += counts[1];
	}
	took = now_s() - start;
	while (wait(NULL) > 0)
		;
	getrusage(RUSAGE_CHILDREN, &ru);
	cpu = ru.ru_utime.tv_sec + ru.ru_stime.tv_sec + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
	printf("bench: %ld handshakes in %.2f s, %.0f/s, %d processes, %ld failed, %.1f us CPU per handshake in them\n", done, took,
	       done / took, n, failed, done > 0 ? cpu * 1e6 / done : 0.0);
	return failed != 0;
}

/* sockets counts this process's open socket descriptors. */
static int sockets(void)
{
	char path[64], target[64];
	int fd, n = 0;
	for (fd = 0; fd < 1024; fd++) {
		ssize_t len;
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		len = readlink(path, target, sizeof(target) - 1);
		if (len > 0 && strncmp(target, "socket:", 7) == 0 && (target[len] = '\0', 1))
			n++;
	}
	return n;
}

static int kind_of(const char *s)
{
	if (strcmp(s, "service") == 0)
		return MG_AUTH_SERVICE_CONN;
	if (strcmp(s, "user") == 0)
		return MG_AUTH_USER_CONN;
	fprintf(stderr, "kind %s: want user or service\n", s);
	exit(2);
}

int main(int argc, char **argv)
{
	void *lib;
	char res[1300];
	mg_pbs_auth_config_t cfg = {.logfunc = drive_log};

	if (argc < 3) {
		fprintf(stderr, "usage: drive LIB once|fork|threads ...\n");
		return 2;
	}
	lib = dlopen(argv[1], RTLD_LAZY);
	if (lib == NULL) {
		fprintf(stderr, "%s\n", dlerror());
		return 2;
	}
	set_config = dlsym(lib, "pbs_auth_set_config");
	create_ctx = dlsym(lib, "pbs_auth_create_ctx");
	destroy_ctx = dlsym(lib, "pbs_auth_destroy_ctx");
	get_userinfo = dlsym(lib, "pbs_auth_get_userinfo");
	process = dlsym(lib, "pbs_auth_process_handshake_data");
	encrypt_data = dlsym(lib, "pbs_auth_encrypt_data");
	decrypt_data = dlsym(lib, "pbs_auth_decrypt_data");
	check_ctx = dlsym(lib, "pbs_auth_check_ctx");
	if (!set_config || !create_ctx || !destroy_ctx || !get_userinfo || !process) {
		fprintf(stderr, "a libauth symbol is missing\n");
		return 2;
	}
	bench_mode = strncmp(argv[2], "bench", 5) == 0;
	if (!bench_mode && (!encrypt_data || !decrypt_data)) {
		fprintf(stderr, "pbs_auth_encrypt_data or pbs_auth_decrypt_data is missing\n");
		return 2;
	}
	set_config(&cfg);
	if (strcmp(argv[2], "check") == 0 && argc == 8)
		return check_loop(argv[3], argv[4], argv[5], argv[6], kind_of(argv[7]));
	if (strcmp(argv[2], "euid") == 0 && argc == 8)
		return euid_loop(argv[3], argv[4], argv[5], (uid_t) atoi(argv[6]), (gid_t) atoi(argv[7]));
	if ((strcmp(argv[2], "once") == 0 || strcmp(argv[2], "fork") == 0 || strcmp(argv[2], "encrypt") == 0) && argc == 8) {
		int enc = strcmp(argv[2], "encrypt") == 0;
		int rc = handshake(argv[3], argv[4], argv[5], argv[6], kind_of(argv[7]), enc, res, sizeof(res));
		printf("%s\n", res);
		fflush(stdout);
		if (rc != 0 || strcmp(argv[2], "fork") != 0)
			return rc != 0;
		int before = sockets();
		pid_t pid = fork();
		if (pid == 0) {
			/* The parent's connection to its daemon is not the child's. */
			printf("sockets: parent %d, child %d\n", before, sockets());
			rc = handshake(argv[3], argv[4], argv[5], argv[6], kind_of(argv[7]), 1, res, sizeof(res));
			printf("child %s\n", res);
			fflush(stdout);
			_exit(rc != 0);
		}
		int st = 0;
		if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
			return 1;
		return 0;
	}
	if ((strcmp(argv[2], "threads") == 0 || strcmp(argv[2], "threads-encrypt") == 0) && argc == 9) {
		int n = atoi(argv[3]), m = atoi(argv[4]), failed = 0;
		pthread_t th[64];
		struct job jobs[64];
		if (n < 1 || n > 64 || m < 1) {
			fprintf(stderr, "threads: 1..64 threads of at least 1 handshake\n");
			return 2;
		}
		setenv("MOMGATE_PBS_SOCKET", argv[5], 1);
		for (int i = 0; i < n; i++) {
			jobs[i] = (struct job){.sock = argv[5], .host = argv[6], .peer = argv[7], .kind = kind_of(argv[8]), .count = m,
					       .encrypt = strcmp(argv[2], "threads-encrypt") == 0 && i % 2 == 0};
			pthread_create(&th[i], NULL, worker, &jobs[i]);
		}
		for (int i = 0; i < n; i++) {
			pthread_join(th[i], NULL);
			failed += jobs[i].failed;
			if (jobs[i].failed)
				fprintf(stderr, "thread %d: %s\n", i, jobs[i].err);
		}
		if (failed) {
			printf("failed %d of %d\n", failed, n * m);
			return 1;
		}
		printf("ok %d\n", n * m);
		return 0;
	}
	if ((strcmp(argv[2], "bench") == 0 || strcmp(argv[2], "bench-encrypt") == 0) && argc == 9)
		return bench(atoi(argv[3]), atoi(argv[4]), argv[5], argv[6], argv[7], kind_of(argv[8]),
			     strcmp(argv[2], "bench-encrypt") == 0);
	fprintf(stderr, "usage: drive LIB once|fork|encrypt|threads|threads-encrypt|bench|bench-encrypt|check|euid ...\n");
	return 2;
}
