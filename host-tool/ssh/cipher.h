/* SPDX-License-Identifier: MIT */
/*
 * Packet ciphers and MACs of the SSH transport (RFC 4253 6, OpenSSH
 * PROTOCOL.chacha20poly1305, RFC 5647 as amended by OpenSSH's
 * aes*-gcm@openssh.com, aes*-ctr of RFC 4344 with hmac-sha2-* of RFC 6668
 * and OpenSSH's encrypt-then-MAC *-etm@openssh.com forms).  All primitives
 * come from libcrypto.
 */
#ifndef WICKET_SSH_CIPHER_H
#define WICKET_SSH_CIPHER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum cipher_kind { CIPHER_NONE, CIPHER_CHACHA, CIPHER_AES_GCM, CIPHER_AES_CTR };

struct cipher_info {
	const char *name;
	enum cipher_kind kind;
	unsigned keylen, ivlen, blocksize, taglen;
};

/* A MAC for the non-AEAD ciphers (taglen 0 in their cipher_info). */
struct mac_info {
	const char *name;
	const char *digest; /* libcrypto name */
	unsigned keylen, len;
	bool etm; /* MAC over the encrypted packet, length in clear */
};

struct ssh_cipher {
	const struct cipher_info *info;
	const struct mac_info *mac;	/* NULL with an AEAD cipher or none */
	void *hmac_ctx;			/* EVP_MAC_CTX HMAC, keyed */
	unsigned taglen;		/* bytes after the packet: AEAD tag or MAC */
	bool len_clear;			/* length outside the encrypted, aligned part */
	bool peeked;			/* CTR: the first block is decrypted already */
	void *main_ctx; /* EVP_CIPHER_CTX: payload (chacha K_2) or AES-GCM */
	void *hdr_ctx;  /* EVP_CIPHER_CTX: chacha K_1, length only */
	void *mac_ctx;  /* EVP_MAC_CTX poly1305 */
	uint8_t iv[12]; /* AES-GCM: fixed 4 bytes + invocation counter */
	bool enc;
};

/* Comma-separated lists of supported names in preference order. */
extern const char cipher_names[];
extern const char mac_names[];
const struct cipher_info *cipher_find(const char *name, size_t n);
const struct mac_info *mac_find(const char *name, size_t n);
const struct cipher_info *cipher_none(void);
/* The cipher needs a MAC (it is not AEAD). */
bool cipher_needs_mac(const struct cipher_info *info);
/* Largest IV and MAC key of any cipher / MAC. */
#define CIPHER_IV_MAX 16
#define MAC_KEY_MAX 64

/*
 * Set up @c for @info with @key/@iv (lengths from @info) and, for a cipher
 * that needs one, @mac keyed with @mackey; 0 or -1.
 */
int cipher_init(struct ssh_cipher *c, const struct cipher_info *info, const uint8_t *key,
		const uint8_t *iv, const struct mac_info *mac, const uint8_t *mackey, bool enc);
void cipher_free(struct ssh_cipher *c);
/* Libcrypto's HMAC, fetched before a sandbox (0 or -1). */
int cipher_prewarm(void);

/* Bytes cipher_peek_len() needs at the head of a packet. */
size_t cipher_peek_need(const struct ssh_cipher *c);
/*
 * The packet_length field of a received packet starting at @p
 * (cipher_peek_need() bytes).  With aes-ctr and a MAC-then-encrypt MAC this
 * decrypts the first block in place; cipher_open() then goes on from there.
 */
uint32_t cipher_peek_len(struct ssh_cipher *c, uint32_t seq, uint8_t *p);
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
