/* SPDX-License-Identifier: MIT */
/*
 * Packet ciphers.  chacha20-poly1305@openssh.com: two ChaCha20 instances,
 * K_2 (first 32 key bytes) for the payload and the Poly1305 key, K_1 (last
 * 32) for the length only; the nonce is the 64-bit sequence number, the
 * Poly1305 key is block 0 of K_2's stream and the payload starts at block 1;
 * the tag covers the encrypted length and payload.  aes*-gcm@openssh.com:
 * the length is additional authenticated data, the 12-byte nonce is a
 * 4-byte fixed part and an 8-byte invocation counter incremented per packet.
 */
#include "cipher.h"

#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "buf.h"

static const struct cipher_info ciphers[] = {
	{ "chacha20-poly1305@openssh.com", CIPHER_CHACHA, 64, 0, 8, 16 },
	{ "aes256-gcm@openssh.com", CIPHER_AES_GCM, 32, 12, 16, 16 },
	{ "aes128-gcm@openssh.com", CIPHER_AES_GCM, 16, 12, 16, 16 },
};
static const struct cipher_info none_info = { "none", CIPHER_NONE, 0, 0, 8, 0 };

const char cipher_names[] =
	"chacha20-poly1305@openssh.com,aes256-gcm@openssh.com,aes128-gcm@openssh.com";

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

void cipher_free(struct ssh_cipher *c)
{
	EVP_CIPHER_CTX_free(c->main_ctx);
	EVP_CIPHER_CTX_free(c->hdr_ctx);
	EVP_MAC_CTX_free(c->mac_ctx);
	OPENSSL_cleanse(c->iv, sizeof(c->iv));
	c->main_ctx = c->hdr_ctx = c->mac_ctx = NULL;
	c->info = &none_info;
}

int cipher_init(struct ssh_cipher *c, const struct cipher_info *info, const uint8_t *key,
		const uint8_t *iv, bool enc)
{
	memset(c, 0, sizeof(*c));
	c->info = info;
	c->enc = enc;
	if (info->kind == CIPHER_NONE)
		return 0;
	c->main_ctx = EVP_CIPHER_CTX_new();
	if (!c->main_ctx)
		goto fail;
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

uint32_t cipher_peek_len(struct ssh_cipher *c, uint32_t seq, const uint8_t *p)
{
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

int cipher_seal(struct ssh_cipher *c, uint32_t seq, uint8_t *p, size_t n)
{
	int outl, rc = -1;
	if (c->info->kind == CIPHER_NONE)
		return 0;
	if (n > INT32_MAX)
		return -1;
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
