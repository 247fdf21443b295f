/*
 * Records of an encrypted PBS connection, with OpenSSL's libcrypto (which
 * every PBS daemon and command already links): ChaCha20-Poly1305 of RFC
 * 8439, the AEAD of momgate's session records.
 */
#define _GNU_SOURCE
#include "mg_record.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const unsigned char record_magic[4] = {0x4D, 0x47, 0x02, 0x60}; /* "MG", version 2, type Record */

void mg_direction_init(struct mg_direction *d)
{
	memset(d, 0, sizeof(*d));
	pthread_mutex_init(&d->lock, NULL);
}

void mg_direction_set(struct mg_direction *d, const unsigned char *key)
{
	pthread_mutex_lock(&d->lock);
	memcpy(d->key, key, sizeof(d->key));
	d->next = 0;
	d->ready = 1;
	d->failed = 0;
	pthread_mutex_unlock(&d->lock);
}

void mg_direction_wipe(struct mg_direction *d)
{
	explicit_bzero(d->key, sizeof(d->key));
	d->ready = 0;
	pthread_mutex_destroy(&d->lock);
}

static void header(unsigned char *h, size_t len)
{
	uint32_t n = (uint32_t) (len + MG_RECORD_TAG);
	memcpy(h, record_magic, 4);
	h[4] = (unsigned char) (n >> 24);
	h[5] = (unsigned char) (n >> 16);
	h[6] = (unsigned char) (n >> 8);
	h[7] = (unsigned char) n;
}

/*
 * aead seals (enc) or opens len bytes from in to out under key and the
 * nonce of counter ctr (four zero bytes, then ctr big-endian), with the
 * record header as associated data; tag is written (enc) or checked.
 */
static int aead(int enc, const unsigned char *key, uint64_t ctr, const unsigned char *hdr, const unsigned char *in,
		size_t len, unsigned char *out, unsigned char *tag)
{
	unsigned char iv[12] = {0};
	EVP_CIPHER_CTX *x;
	int n = 0, ok = 0, i;

	for (i = 0; i < 8; i++)
		iv[4 + i] = (unsigned char) (ctr >> (56 - 8 * i));
	x = EVP_CIPHER_CTX_new();
	if (x == NULL)
		return -1;
	if (EVP_CipherInit_ex(x, EVP_chacha20_poly1305(), NULL, NULL, NULL, enc) != 1 ||
	    EVP_CIPHER_CTX_ctrl(x, EVP_CTRL_AEAD_SET_IVLEN, (int) sizeof(iv), NULL) != 1 ||
	    EVP_CipherInit_ex(x, NULL, NULL, key, iv, enc) != 1)
		goto out;
	if (!enc && EVP_CIPHER_CTX_ctrl(x, EVP_CTRL_AEAD_SET_TAG, MG_RECORD_TAG, tag) != 1)
		goto out;
	if (EVP_CipherUpdate(x, NULL, &n, hdr, MG_RECORD_HEADER) != 1)
		goto out;
	if (len > 0 && EVP_CipherUpdate(x, out, &n, in, (int) len) != 1)
		goto out;
	if (EVP_CipherFinal_ex(x, out + (len > 0 ? n : 0), &n) != 1)
		goto out;
	if (enc && EVP_CIPHER_CTX_ctrl(x, EVP_CTRL_AEAD_GET_TAG, MG_RECORD_TAG, tag) != 1)
		goto out;
	ok = 1;
out:
	EVP_CIPHER_CTX_free(x);
	return ok ? 0 : -1;
}

int mg_seal(struct mg_direction *d, const void *in, size_t len, void **out, size_t *outlen, char *err, size_t errsz)
{
	unsigned char *b;
	int rc = -1;

	*out = NULL;
	*outlen = 0;
	if (len > MG_RECORD_MAX_DATA) {
		snprintf(err, errsz, "a buffer of %zu bytes is over the record limit of %u", len, MG_RECORD_MAX_DATA);
		return -1;
	}
	b = malloc(len + MG_RECORD_OVERHEAD);
	if (b == NULL) {
		snprintf(err, errsz, "out of memory");
		return -1;
	}
	header(b, len);
	pthread_mutex_lock(&d->lock);
	if (!d->ready)
		snprintf(err, errsz, "this connection has no momgate keys (its handshake did not ask for encryption)");
	else if (d->next >= MG_RECORD_MAX_COUNT)
		snprintf(err, errsz, "this connection sealed %llu records under one key: it must be made anew",
			 (unsigned long long) d->next);
	else if (aead(1, d->key, d->next, b, in, len, b + MG_RECORD_HEADER, b + MG_RECORD_HEADER + len) != 0)
		snprintf(err, errsz, "sealing a record failed (libcrypto)");
	else {
		d->next++;
		rc = 0;
	}
	pthread_mutex_unlock(&d->lock);
	if (rc != 0) {
		free(b);
		return -1;
	}
	*out = b;
	*outlen = len + MG_RECORD_OVERHEAD;
	return 0;
}

int mg_open(struct mg_direction *d, const void *in, size_t len, void **out, size_t *outlen, char *err, size_t errsz)
{
	const unsigned char *r = in;
	unsigned char tag[MG_RECORD_TAG];
	unsigned char *b;
	size_t n;
	int rc = -1;

	*out = NULL;
	*outlen = 0;
	if (len < MG_RECORD_OVERHEAD || len - MG_RECORD_OVERHEAD > MG_RECORD_MAX_DATA) {
		snprintf(err, errsz, "a record of %zu bytes: not a momgate record", len);
		return -1;
	}
	n = len - MG_RECORD_OVERHEAD;
	if (memcmp(r, record_magic, 4) != 0 ||
	    ((size_t) r[4] << 24 | (size_t) r[5] << 16 | (size_t) r[6] << 8 | r[7]) != n + MG_RECORD_TAG) {
		snprintf(err, errsz, "a record whose header is not a momgate record header of its length");
		return -1;
	}
	b = malloc(n > 0 ? n : 1);
	if (b == NULL) {
		snprintf(err, errsz, "out of memory");
		return -1;
	}
	memcpy(tag, r + MG_RECORD_HEADER + n, MG_RECORD_TAG);
	pthread_mutex_lock(&d->lock);
	if (!d->ready)
		snprintf(err, errsz, "this connection has no momgate keys (its handshake did not ask for encryption)");
	else if (d->failed)
		snprintf(err, errsz, "an earlier record of this connection failed to open");
	else if (d->next >= MG_RECORD_MAX_COUNT)
		snprintf(err, errsz, "this connection opened %llu records under one key: it must be made anew",
			 (unsigned long long) d->next);
	else if (aead(0, d->key, d->next, r, r + MG_RECORD_HEADER, n, b, tag) != 0) {
		d->failed = 1;
		snprintf(err, errsz, "record %llu failed to authenticate (forged, damaged, replayed, out of order, or of another connection)",
			 (unsigned long long) d->next);
	} else {
		d->next++;
		rc = 0;
	}
	pthread_mutex_unlock(&d->lock);
	if (rc != 0) {
		explicit_bzero(b, n);
		free(b);
		return -1;
	}
	*out = b;
	*outlen = n;
	return 0;
}
