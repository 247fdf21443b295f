/*
 * record_vector: the plugin's records (mg_record.c) against the vectors of
 * docs/PROTOCOL.md 6.9: the same key, counters and bytes give the same
 * records as momgate's sessions seal, so the layout of docs/OPENPBS.md 6
 * is the session's byte for byte. Then what must not open does not.
 * Prints "vectors ok" and exits 0, or says what differs and exits 1.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../mg_record.h"

static int unhex(const char *h, unsigned char *out, size_t max)
{
	size_t n = 0;
	unsigned v;
	for (; *h != '\0'; h++) {
		if (*h == ' ')
			continue;
		if (n >= max || sscanf(h, "%2x", &v) != 1)
			return -1;
		out[n++] = (unsigned char) v;
		h++;
	}
	return (int) n;
}

static int check(const char *what, const void *got, size_t glen, const char *want_hex)
{
	unsigned char want[256];
	int n = unhex(want_hex, want, sizeof(want));
	if (n < 0 || (size_t) n != glen || memcmp(got, want, glen) != 0) {
		printf("%s differs from the vector\n", what);
		return -1;
	}
	return 0;
}

int main(void)
{
	unsigned char key[32], frame[64];
	struct mg_direction send, recv;
	void *rec[2], *out;
	size_t rlen[2], olen;
	char err[512];
	int n, i;

	unhex("8c6f768dffe25c563cec9f53700934ca11ab9dc9b3ebe329d77b9d9ac1b569e6", key, sizeof(key));
	n = unhex("4d4702410000000f00056a6f622e310000000000000001", frame, sizeof(frame));
	mg_direction_init(&send);
	mg_direction_init(&recv);
	mg_direction_set(&send, key);
	mg_direction_set(&recv, key);
	for (i = 0; i < 2; i++) {
		if (mg_seal(&send, frame, (size_t) n, &rec[i], &rlen[i], err, sizeof(err)) != 0) {
			printf("seal: %s\n", err);
			return 1;
		}
	}
	if (check("record 0", rec[0], rlen[0],
		  "4d47026000000027 6f93885106fb76c68f8d33096bf445afaef7e4d957abd4 417435fc6edf8cb84c53d4f08b00a7f9") ||
	    check("record 1", rec[1], rlen[1],
		  "4d47026000000027 0d65260fabdf70bfb89725d2e3967cff83422bf728fdbd 601c6ef158859968a1aed77c373e5749"))
		return 1;
	/* Out of order: record 1 first. */
	if (mg_open(&recv, rec[1], rlen[1], &out, &olen, err, sizeof(err)) == 0) {
		printf("record 1 opened before record 0\n");
		return 1;
	}
	mg_direction_set(&recv, key);
	for (i = 0; i < 2; i++) {
		if (mg_open(&recv, rec[i], rlen[i], &out, &olen, err, sizeof(err)) != 0 || olen != (size_t) n ||
		    memcmp(out, frame, olen) != 0) {
			printf("record %d: %s\n", i, err);
			return 1;
		}
		free(out);
	}
	/* A header that lies about the length, a cut record. */
	((unsigned char *) rec[0])[7]++;
	if (mg_open(&recv, rec[0], rlen[0], &out, &olen, err, sizeof(err)) == 0 ||
	    mg_open(&recv, rec[1], 10, &out, &olen, err, sizeof(err)) == 0) {
		printf("a malformed record opened\n");
		return 1;
	}
	free(rec[0]);
	free(rec[1]);
	mg_direction_wipe(&send);
	mg_direction_wipe(&recv);
	printf("vectors ok\n");
	return 0;
}
