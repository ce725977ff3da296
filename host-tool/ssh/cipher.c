/* SPDX-License-Identifier: MIT */
/*
 * Packet ciphers.  chacha20-poly1305@openssh.com: two ChaCha20 instances,
 * K_2 (first 32 key bytes) for the payload and the Poly1305 key, K_1 (last
 * 32) for the length only; the nonce is the 64-bit sequence number, the
 * Poly1305 key is block 0 of K_2's stream and the payload starts at block 1;
 * the tag covers the encrypted length and payload.  aes*-gcm@openssh.com:
 * the length is additional authenticated data, the 12-byte nonce is a
 * 4-byte fixed part and an 8-byte invocation counter incremented per packet.
 * aes*-ctr (RFC 4344): one AES-CTR stream per direction whose 128-bit
 * counter, the IV, runs on across packets.  Its MAC (RFC 4253 6.4, RFC
 * 6668) is HMAC(key, uint32 seq || packet): over the plaintext packet for
 * hmac-sha2-*, where the length is encrypted with the rest; over the
 * length in clear and the ciphertext for *-etm@openssh.com (OpenSSH
 * PROTOCOL 1.7), so a packet is authenticated before anything in it but
 * its length is decrypted.
 */
#include "cipher.h"

#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>

#include "buf.h"

static const struct cipher_info ciphers[] = {
	{ "chacha20-poly1305@openssh.com", CIPHER_CHACHA, 64, 0, 8, 16 },
	{ "aes256-gcm@openssh.com", CIPHER_AES_GCM, 32, 12, 16, 16 },
	{ "aes128-gcm@openssh.com", CIPHER_AES_GCM, 16, 12, 16, 16 },
	{ "aes256-ctr", CIPHER_AES_CTR, 32, 16, 16, 0 },
	{ "aes128-ctr", CIPHER_AES_CTR, 16, 16, 16, 0 },
};
static const struct cipher_info none_info = { "none", CIPHER_NONE, 0, 0, 8, 0 };

/* The AEAD ciphers first: a client that has them takes one. */
const char cipher_names[] = "chacha20-poly1305@openssh.com,aes256-gcm@openssh.com,"
			    "aes128-gcm@openssh.com,aes256-ctr,aes128-ctr";

static const struct mac_info macs[] = {
	{ "hmac-sha2-256-etm@openssh.com", "SHA256", 32, 32, true },
	{ "hmac-sha2-512-etm@openssh.com", "SHA512", 64, 64, true },
	{ "hmac-sha2-256", "SHA256", 32, 32, false },
	{ "hmac-sha2-512", "SHA512", 64, 64, false },
};

/* Encrypt-then-MAC first: it authenticates before it decrypts. */
const char mac_names[] = "hmac-sha2-256-etm@openssh.com,hmac-sha2-512-etm@openssh.com,"
			 "hmac-sha2-256,hmac-sha2-512";

const struct mac_info *mac_find(const char *name, size_t n)
{
	for (size_t i = 0; i < sizeof(macs) / sizeof(macs[0]); i++)
		if (strlen(macs[i].name) == n && memcmp(macs[i].name, name, n) == 0)
			return &macs[i];
	return NULL;
}

bool cipher_needs_mac(const struct cipher_info *info)
{
	return info->kind == CIPHER_AES_CTR;
}

const struct cipher_info *cipher_find(const char *name, size_t n)
{
	for (size_t i = 0; i < sizeof(ciphers) / sizeof(ciphers[0]); i++)
		if (strlen(ciphers[i].name) == n && memcmp(ciphers[i].name, name, n) == 0)
			return &ciphers[i];
	return NULL;
}

const struct cipher_info *cipher_none(void)
{
	return &none_info;
}

static EVP_MAC *poly1305(void)
{
	static EVP_MAC *mac;
	if (!mac)
		mac = EVP_MAC_fetch(NULL, "POLY1305", NULL);
	return mac;
}

static EVP_MAC *hmac(void)
{
	static EVP_MAC *mac;
	if (!mac)
		mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
	return mac;
}

int cipher_prewarm(void)
{
	return poly1305() && hmac() ? 0 : -1;
}

void cipher_free(struct ssh_cipher *c)
{
	EVP_CIPHER_CTX_free(c->main_ctx);
	EVP_CIPHER_CTX_free(c->hdr_ctx);
	EVP_MAC_CTX_free(c->mac_ctx);
	EVP_MAC_CTX_free(c->hmac_ctx);
	OPENSSL_cleanse(c->iv, sizeof(c->iv));
	c->main_ctx = c->hdr_ctx = c->mac_ctx = c->hmac_ctx = NULL;
	c->info = &none_info;
	c->mac = NULL;
	c->taglen = 0;
	c->len_clear = c->peeked = false;
}

static int mac_init(struct ssh_cipher *c, const struct mac_info *mac, const uint8_t *key)
{
	EVP_MAC *m = hmac();
	c->hmac_ctx = m ? EVP_MAC_CTX_new(m) : NULL;
	if (!c->hmac_ctx)
		return -1;
	char digest[16];
	snprintf(digest, sizeof(digest), "%s", mac->digest);
	OSSL_PARAM params[] = {
		OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
		OSSL_PARAM_construct_end(),
	};
	/* Keyed once; EVP_MAC_init() with no key starts over with this one. */
	if (EVP_MAC_init(c->hmac_ctx, key, mac->keylen, params) != 1)
		return -1;
	c->mac = mac;
	c->taglen = mac->len;
	c->len_clear = mac->etm;
	return 0;
}

int cipher_init(struct ssh_cipher *c, const struct cipher_info *info, const uint8_t *key,
		const uint8_t *iv, const struct mac_info *mac, const uint8_t *mackey, bool enc)
{
	memset(c, 0, sizeof(*c));
	c->info = info;
	c->enc = enc;
	if (info->kind == CIPHER_NONE)
		return 0;
	c->taglen = info->taglen;
	c->len_clear = true; /* AEAD */
	c->main_ctx = EVP_CIPHER_CTX_new();
	if (!c->main_ctx)
		goto fail;
	if (info->kind == CIPHER_AES_CTR) {
		const EVP_CIPHER *alg = info->keylen == 32 ? EVP_aes_256_ctr() : EVP_aes_128_ctr();
		if (!mac || mac_init(c, mac, mackey) < 0 ||
		    EVP_EncryptInit_ex(c->main_ctx, alg, NULL, key, iv) != 1)
			goto fail;
		return 0;
	}
	if (info->kind == CIPHER_CHACHA) {
		static const uint8_t zero_iv[16];
		c->hdr_ctx = EVP_CIPHER_CTX_new();
		EVP_MAC *m = poly1305();
		if (!c->hdr_ctx || !m)
			goto fail;
		c->mac_ctx = EVP_MAC_CTX_new(m);
		if (!c->mac_ctx)
			goto fail;
		/* The stream cipher is its own inverse: always "encrypt". */
		if (EVP_EncryptInit_ex(c->main_ctx, EVP_chacha20(), NULL, key, zero_iv) != 1 ||
		    EVP_EncryptInit_ex(c->hdr_ctx, EVP_chacha20(), NULL, key + 32, zero_iv) != 1)
			goto fail;
		return 0;
	}
	const EVP_CIPHER *alg = info->keylen == 32 ? EVP_aes_256_gcm() : EVP_aes_128_gcm();
	if (EVP_CipherInit_ex(c->main_ctx, alg, NULL, NULL, NULL, enc) != 1 ||
	    EVP_CIPHER_CTX_ctrl(c->main_ctx, EVP_CTRL_GCM_SET_IVLEN, 12, NULL) != 1 ||
	    EVP_CipherInit_ex(c->main_ctx, NULL, NULL, key, NULL, enc) != 1)
		goto fail;
	memcpy(c->iv, iv, 12);
	return 0;
fail:
	cipher_free(c);
	return -1;
}

/* ChaCha20 IV as OpenSSL wants it: 64-bit LE block counter, 64-bit BE seq. */
static void chacha_iv(uint8_t iv[16], uint32_t seq)
{
	memset(iv, 0, 16);
	put_be32(iv + 12, seq);
}

size_t cipher_peek_need(const struct ssh_cipher *c)
{
	return c->info->kind == CIPHER_AES_CTR && !c->len_clear ? c->info->blocksize : 4;
}

/* Run the CTR stream over @n bytes in place (encryption and decryption alike). */
static int ctr_crypt(struct ssh_cipher *c, uint8_t *p, size_t n)
{
	int outl;
	return n == 0 || EVP_EncryptUpdate(c->main_ctx, p, &outl, p, (int)n) == 1 ? 0 : -1;
}

uint32_t cipher_peek_len(struct ssh_cipher *c, uint32_t seq, uint8_t *p)
{
	if (c->info->kind == CIPHER_AES_CTR && !c->len_clear) {
		if (!c->peeked) {
			if (ctr_crypt(c, p, 16) < 0)
				return UINT32_MAX;
			c->peeked = true;
		}
		return get_be32(p);
	}
	if (c->info->kind != CIPHER_CHACHA)
		return get_be32(p);
	uint8_t iv[16], out[4];
	int outl;
	chacha_iv(iv, seq);
	if (EVP_EncryptInit_ex(c->hdr_ctx, NULL, NULL, NULL, iv) != 1 ||
	    EVP_EncryptUpdate(c->hdr_ctx, out, &outl, p, 4) != 1)
		return UINT32_MAX;
	return get_be32(out);
}

/* Poly1305 key for @seq; leaves main_ctx positioned at block 1. */
static int chacha_polykey(struct ssh_cipher *c, uint32_t seq, uint8_t key[64])
{
	static const uint8_t zero[64];
	uint8_t iv[16];
	int outl;
	chacha_iv(iv, seq);
	if (EVP_EncryptInit_ex(c->main_ctx, NULL, NULL, NULL, iv) != 1 ||
	    EVP_EncryptUpdate(c->main_ctx, key, &outl, zero, 64) != 1)
		return -1;
	return 0;
}

static int chacha_tag(struct ssh_cipher *c, const uint8_t *key, const uint8_t *p, size_t n,
		      uint8_t tag[16])
{
	size_t outl;
	if (EVP_MAC_init(c->mac_ctx, key, 32, NULL) != 1 ||
	    EVP_MAC_update(c->mac_ctx, p, n) != 1 ||
	    EVP_MAC_final(c->mac_ctx, tag, &outl, 16) != 1 || outl != 16)
		return -1;
	return 0;
}

static void gcm_next_iv(struct ssh_cipher *c)
{
	for (int i = 11; i >= 4; i--)
		if (++c->iv[i])
			break;
}

/* HMAC(key, uint32 seq || p[0..n)) into @out (c->taglen bytes). */
static int mac_compute(struct ssh_cipher *c, uint32_t seq, const uint8_t *p, size_t n,
		       uint8_t *out)
{
	uint8_t sq[4];
	size_t outl;
	put_be32(sq, seq);
	if (EVP_MAC_init(c->hmac_ctx, NULL, 0, NULL) != 1 || EVP_MAC_update(c->hmac_ctx, sq, 4) != 1 ||
	    EVP_MAC_update(c->hmac_ctx, p, n) != 1 ||
	    EVP_MAC_final(c->hmac_ctx, out, &outl, c->taglen) != 1 || outl != c->taglen)
		return -1;
	return 0;
}

static int ctr_seal(struct ssh_cipher *c, uint32_t seq, uint8_t *p, size_t n)
{
	if (c->len_clear) /* etm: encrypt all but the length, then MAC that */
		return ctr_crypt(c, p + 4, n - 4) == 0 && mac_compute(c, seq, p, n, p + n) == 0 ? 0
											    : -1;
	return mac_compute(c, seq, p, n, p + n) == 0 && ctr_crypt(c, p, n) == 0 ? 0 : -1;
}

static int ctr_open(struct ssh_cipher *c, uint32_t seq, uint8_t *p, size_t n)
{
	uint8_t tag[64];
	if (c->len_clear) {
		if (mac_compute(c, seq, p, n, tag) < 0 || CRYPTO_memcmp(tag, p + n, c->taglen) != 0)
			return -1;
		return ctr_crypt(c, p + 4, n - 4);
	}
	/* The first block was decrypted by cipher_peek_len(); the rest now. */
	size_t done = c->peeked ? 16 : 0;
	c->peeked = false;
	if (n < done || ctr_crypt(c, p + done, n - done) < 0 || mac_compute(c, seq, p, n, tag) < 0)
		return -1;
	return CRYPTO_memcmp(tag, p + n, c->taglen) == 0 ? 0 : -1;
}

int cipher_seal(struct ssh_cipher *c, uint32_t seq, uint8_t *p, size_t n)
{
	int outl, rc = -1;
	if (c->info->kind == CIPHER_NONE)
		return 0;
	if (n > INT32_MAX)
		return -1;
	if (c->info->kind == CIPHER_AES_CTR)
		return ctr_seal(c, seq, p, n);
	if (c->info->kind == CIPHER_CHACHA) {
		uint8_t key[64], iv[16];
		chacha_iv(iv, seq);
		if (chacha_polykey(c, seq, key) == 0 &&
		    EVP_EncryptUpdate(c->main_ctx, p + 4, &outl, p + 4, (int)n - 4) == 1 &&
		    EVP_EncryptInit_ex(c->hdr_ctx, NULL, NULL, NULL, iv) == 1 &&
		    EVP_EncryptUpdate(c->hdr_ctx, p, &outl, p, 4) == 1 &&
		    chacha_tag(c, key, p, n, p + n) == 0)
			rc = 0;
		OPENSSL_cleanse(key, sizeof(key));
		return rc;
	}
	if (EVP_CipherInit_ex(c->main_ctx, NULL, NULL, NULL, c->iv, -1) == 1 &&
	    EVP_CipherUpdate(c->main_ctx, NULL, &outl, p, 4) == 1 &&
	    EVP_CipherUpdate(c->main_ctx, p + 4, &outl, p + 4, (int)n - 4) == 1 &&
	    EVP_CipherFinal_ex(c->main_ctx, p + n, &outl) == 1 &&
	    EVP_CIPHER_CTX_ctrl(c->main_ctx, EVP_CTRL_GCM_GET_TAG, 16, p + n) == 1)
		rc = 0;
	gcm_next_iv(c);
	return rc;
}

int cipher_open(struct ssh_cipher *c, uint32_t seq, uint8_t *p, size_t n)
{
	int outl, rc = -1;
	if (c->info->kind == CIPHER_NONE)
		return 0;
	if (n > INT32_MAX)
		return -1;
	if (c->info->kind == CIPHER_AES_CTR)
		return ctr_open(c, seq, p, n);
	if (c->info->kind == CIPHER_CHACHA) {
		uint8_t key[64], tag[16];
		uint32_t len = cipher_peek_len(c, seq, p);
		if (chacha_polykey(c, seq, key) == 0 && chacha_tag(c, key, p, n, tag) == 0 &&
		    CRYPTO_memcmp(tag, p + n, 16) == 0 &&
		    EVP_EncryptUpdate(c->main_ctx, p + 4, &outl, p + 4, (int)n - 4) == 1) {
			put_be32(p, len);
			rc = 0;
		}
		OPENSSL_cleanse(key, sizeof(key));
		return rc;
	}
	uint8_t fin[16];
	/* GCM decrypts before the tag is known good; the caller drops the
	 * connection on failure, so the plaintext is never used. */
	if (EVP_CipherInit_ex(c->main_ctx, NULL, NULL, NULL, c->iv, -1) == 1 &&
	    EVP_CipherUpdate(c->main_ctx, NULL, &outl, p, 4) == 1 &&
	    EVP_CipherUpdate(c->main_ctx, p + 4, &outl, p + 4, (int)n - 4) == 1 &&
	    EVP_CIPHER_CTX_ctrl(c->main_ctx, EVP_CTRL_GCM_SET_TAG, 16, p + n) == 1 &&
	    EVP_CipherFinal_ex(c->main_ctx, fin, &outl) == 1)
		rc = 0;
	gcm_next_iv(c);
	return rc;
}
