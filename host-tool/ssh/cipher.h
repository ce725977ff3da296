/* SPDX-License-Identifier: MIT */
/*
 * Packet ciphers of the SSH transport (RFC 4253 6, OpenSSH
 * PROTOCOL.chacha20poly1305, RFC 5647 as amended by OpenSSH's
 * aes*-gcm@openssh.com).  All primitives come from libcrypto.
 */
#ifndef WICKET_SSH_CIPHER_H
#define WICKET_SSH_CIPHER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum cipher_kind { CIPHER_NONE, CIPHER_CHACHA, CIPHER_AES_GCM };

struct cipher_info {
	const char *name;
	enum cipher_kind kind;
	unsigned keylen, ivlen, blocksize, taglen;
};

struct ssh_cipher {
	const struct cipher_info *info;
	void *main_ctx; /* EVP_CIPHER_CTX: payload (chacha K_2) or AES-GCM */
	void *hdr_ctx;  /* EVP_CIPHER_CTX: chacha K_1, length only */
	void *mac_ctx;  /* EVP_MAC_CTX poly1305 */
	uint8_t iv[12]; /* AES-GCM: fixed 4 bytes + invocation counter */
	bool enc;
};

/* Comma-separated list of supported names in preference order. */
extern const char cipher_names[];
const struct cipher_info *cipher_find(const char *name, size_t n);
const struct cipher_info *cipher_none(void);

/* Set up @c for @info with @key/@iv (lengths from @info); 0 or -1. */
int cipher_init(struct ssh_cipher *c, const struct cipher_info *info, const uint8_t *key,
		const uint8_t *iv, bool enc);
void cipher_free(struct ssh_cipher *c);

/* The packet_length field of a received packet starting at @p. */
uint32_t cipher_peek_len(struct ssh_cipher *c, uint32_t seq, const uint8_t *p);
/*
 * cipher_seal() - encrypt the packet p[0..n) (4-byte length first) in place
 * and write the tag (taglen bytes) at p + n.
 */
int cipher_seal(struct ssh_cipher *c, uint32_t seq, uint8_t *p, size_t n);
/*
 * cipher_open() - check the tag at p + n over p[0..n) and decrypt in place
 * (p[0..4) becomes the plain length).  -1 when the integrity check fails;
 * the caller must then drop the packet and the connection.
 */
int cipher_open(struct ssh_cipher *c, uint32_t seq, uint8_t *p, size_t n);

#endif
