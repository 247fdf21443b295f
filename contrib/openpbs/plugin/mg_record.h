/*
 * Records of an encrypted PBS connection (docs/OPENPBS.md section 6): each
 * buffer PBS hands the plugin becomes one ChaCha20-Poly1305 record under
 * the key of its direction, with a strict implicit counter, in the record
 * layout of momgate's sealed sessions (docs/PROTOCOL.md 6.5).
 */
#ifndef MOMGATE_MG_RECORD_H
#define MOMGATE_MG_RECORD_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#define MG_RECORD_HEADER 8
#define MG_RECORD_TAG 16
#define MG_RECORD_OVERHEAD (MG_RECORD_HEADER + MG_RECORD_TAG)
/* The largest buffer one record carries (EVP takes an int length). */
#define MG_RECORD_MAX_DATA (1u << 30)
/* Records one key seals or opens before the connection must be made anew. */
#define MG_RECORD_MAX_COUNT (UINT64_C(1) << 32)

/* One direction of a connection: its key and the counter of its next record. */
struct mg_direction {
	pthread_mutex_t lock;
	unsigned char key[32];
	uint64_t next;
	int ready;
	int failed; /* a record failed to open: nothing opens after it */
};

void mg_direction_init(struct mg_direction *d);
/* mg_direction_set installs key (32 bytes), counter 0. */
void mg_direction_set(struct mg_direction *d, const unsigned char *key);
/* mg_direction_wipe erases the key and destroys the lock. */
void mg_direction_wipe(struct mg_direction *d);

/*
 * mg_seal makes the record of in (len bytes, at most MG_RECORD_MAX_DATA) in
 * a new buffer *out of *outlen bytes. mg_open checks and opens one whole
 * record. Both return 0, or -1 with the reason in err.
 */
int mg_seal(struct mg_direction *d, const void *in, size_t len, void **out, size_t *outlen, char *err, size_t errsz);
int mg_open(struct mg_direction *d, const void *in, size_t len, void **out, size_t *outlen, char *err, size_t errsz);

#endif
