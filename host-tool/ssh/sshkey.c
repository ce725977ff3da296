/* SPDX-License-Identifier: MIT */
/*
 * SSH public keys, signature verification and the ed25519 host key, on
 * OpenSSL libcrypto.  Wire formats:
 *
 *   ssh-ed25519 (RFC 8709):          string "ssh-ed25519", string A (32 bytes)
 *   ecdsa-sha2-nistp256 (RFC 5656):  string name, string "nistp256",
 *                                    string Q (uncompressed point, 65 bytes)
 *   ssh-rsa (RFC 4253 6.6):          string "ssh-rsa", mpint e, mpint n
 *   signature:                       string algorithm, string signature
 *     ssh-ed25519: 64 bytes R || S; ecdsa: mpint r, mpint s (SHA-256);
 *     rsa-sha2-256/512 (RFC 8332): PKCS#1 v1.5, modulus-sized (shorter is
 *     left-padded with zeros, as OpenSSH does).
 *
 * Each key keeps its canonical blob, re-encoded from the libcrypto object, so
 * key equality is blob equality and fingerprints match ssh-keygen's.
 */
#include "sshkey.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ecdsa.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>

#define ED25519_KEY_LEN 32
#define ED25519_SIG_LEN 64
#define P256_POINT_LEN 65 /* 0x04 || X || Y */
#define P256_SCALAR_LEN 32
#define RSA_MIN_BITS 2048
#define RSA_MAX_BITS 16384
#define RSA_MAX_E_LEN 8 /* 64-bit public exponent at most: bounds verify cost */
#define PUB_B64_MAX 8192
#define PRIVFILE_MAX (64 * 1024)
#define HOST_KEY_COMMENT "wicket host key"

struct sshkey {
	enum sshkey_type type;
	bool priv;
	EVP_PKEY *pkey;
	uint8_t *blob; /* canonical public key blob */
	size_t bloblen;
};

static const char *const type_names[] = {
	[SSHKEY_ED25519] = "ssh-ed25519",
	[SSHKEY_ECDSA_P256] = "ecdsa-sha2-nistp256",
	[SSHKEY_RSA] = "ssh-rsa",
};

/* Signature algorithms we verify; ssh-rsa (SHA-1) is deliberately absent. */
static const struct sigalg {
	const char *name;
	enum sshkey_type type;
	const EVP_MD *(*md)(void); /* NULL: ed25519 hashes internally */
} sigalgs[] = {
	{ "ssh-ed25519", SSHKEY_ED25519, NULL },
	{ "ecdsa-sha2-nistp256", SSHKEY_ECDSA_P256, EVP_sha256 },
	{ "rsa-sha2-256", SSHKEY_RSA, EVP_sha256 },
	{ "rsa-sha2-512", SSHKEY_RSA, EVP_sha512 },
};

static const char MARK_BEGIN[] = "-----BEGIN OPENSSH PRIVATE KEY-----";
static const char MARK_END[] = "-----END OPENSSH PRIVATE KEY-----";
/* "openssh-key-v1" including its terminating NUL, as PROTOCOL.key wants. */
static const char AUTH_MAGIC[] = "openssh-key-v1";

/* ---- cleanup helpers ---- */

static void pkey_freep(EVP_PKEY **p) { EVP_PKEY_free(*p); }
static void pctx_freep(EVP_PKEY_CTX **p) { EVP_PKEY_CTX_free(*p); }
static void mdctx_freep(EVP_MD_CTX **p) { EVP_MD_CTX_free(*p); }
static void bn_freep(BIGNUM **p) { BN_clear_free(*p); }
static void bld_freep(OSSL_PARAM_BLD **p) { OSSL_PARAM_BLD_free(*p); }
static void params_freep(OSSL_PARAM **p) { OSSL_PARAM_free(*p); }
static void ecsig_freep(ECDSA_SIG **p) { ECDSA_SIG_free(*p); }
static void ossl_freep(unsigned char **p) { OPENSSL_free(*p); }
static void freep(void *p) { free(*(void **)p); }
static void closep(int *fd) { if (*fd >= 0) close(*fd); }
static void keyp_free(struct sshkey **k) { sshkey_free(*k); }
static void bufp_free(struct buf *b) { buf_free(b); }

/* Buffers holding secrets are wiped before they are freed. */
static void sbuf_free(struct buf *b)
{
	if (b->p)
		OPENSSL_cleanse(b->p, b->cap);
	buf_free(b);
}

/*
 * A buffer for secrets, allocated once at its full size: buf_reserve() would
 * otherwise leave an unwiped copy behind when it grows.  Overflow is an error.
 */
static bool sbuf_init(struct buf *b, size_t size)
{
	buf_init(b, size ? size : 1);
	return buf_reserve(b, size ? size : 1) != NULL;
}

#define AUTO(f) __attribute__((cleanup(f)))

static void seterr(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
	if (!err || !errlen)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static bool sv_same(struct sv a, struct sv b)
{
	return a.n == b.n && (a.n == 0 || memcmp(a.p, b.p, a.n) == 0);
}

/* ---- mpint and base64 ---- */

/*
 * A non-negative mpint: returns its magnitude without leading zeros.
 * Negative values or magnitudes over @max bytes set the sticky error.
 */
static struct sv rd_mpint_pos(struct rd *r, size_t max)
{
	struct sv v = rd_str(r);
	if (r->err)
		return SV_NULL;
	if (v.n && (v.p[0] & 0x80)) {
		r->err = true;
		return SV_NULL;
	}
	while (v.n && v.p[0] == 0) {
		v.p++;
		v.n--;
	}
	if (v.n > max) {
		r->err = true;
		return SV_NULL;
	}
	return v;
}

/* Append an unsigned big-endian magnitude as an mpint (RFC 4251 5). */
static void buf_mpint(struct buf *b, const uint8_t *p, size_t n)
{
	while (n && p[0] == 0) {
		p++;
		n--;
	}
	bool pad = n && (p[0] & 0x80);
	buf_u32(b, (uint32_t)(n + pad));
	if (pad)
		buf_u8(b, 0);
	buf_put(b, p, n);
}

static bool b64_char(uint8_t c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '+' || c == '/';
}

/* Strict base64 (padded, no whitespace) appended to @out; 0 or -1. */
static int b64_decode(struct sv in, struct buf *out)
{
	if (in.n == 0 || in.n % 4 || in.n > INT_MAX)
		return -1;
	size_t pad = 0;
	while (pad < 2 && in.p[in.n - 1 - pad] == '=')
		pad++;
	for (size_t i = 0; i < in.n - pad; i++)
		if (!b64_char(in.p[i]))
			return -1;
	size_t full = in.n / 4 * 3;
	uint8_t *w = buf_reserve(out, full);
	if (!w || EVP_DecodeBlock(w, in.p, (int)in.n) != (int)full)
		return -1;
	buf_commit(out, full - pad);
	return 0;
}

/* Append base64 of @p (padded, one line, no NUL). */
static void b64_encode(struct buf *out, const uint8_t *p, size_t n)
{
	if (n > INT_MAX / 2) {
		out->err = true;
		return;
	}
	size_t enc = (n + 2) / 3 * 4;
	uint8_t *w = buf_reserve(out, enc + 1);
	if (!w)
		return;
	EVP_EncodeBlock(w, p, (int)n);
	buf_commit(out, enc);
}

/* ---- key objects ---- */

/* The canonical public blob of a libcrypto key of type @t. */
static int encode_blob(enum sshkey_type t, EVP_PKEY *pkey, struct buf *b)
{
	buf_cstr(b, type_names[t]);
	switch (t) {
	case SSHKEY_ED25519: {
		uint8_t a[ED25519_KEY_LEN];
		size_t n = sizeof(a);
		if (EVP_PKEY_get_raw_public_key(pkey, a, &n) != 1 || n != sizeof(a))
			return -1;
		buf_str(b, a, n);
		break;
	}
	case SSHKEY_ECDSA_P256: {
		uint8_t q[P256_POINT_LEN];
		size_t n = 0;
		if (EVP_PKEY_get_octet_string_param(pkey, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, q,
						    sizeof(q), &n) != 1 ||
		    n != sizeof(q) || q[0] != 0x04)
			return -1;
		buf_cstr(b, "nistp256");
		buf_str(b, q, n);
		break;
	}
	case SSHKEY_RSA: {
		AUTO(bn_freep) BIGNUM *e = NULL;
		AUTO(bn_freep) BIGNUM *n = NULL;
		if (EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_E, &e) != 1 ||
		    EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_N, &n) != 1)
			return -1;
		uint8_t tmp[RSA_MAX_BITS / 8];
		int el = BN_bn2bin(e, tmp);
		if (el < 0)
			return -1;
		buf_mpint(b, tmp, (size_t)el);
		if (BN_num_bytes(n) > (int)sizeof(tmp))
			return -1;
		int nl = BN_bn2bin(n, tmp);
		if (nl < 0)
			return -1;
		buf_mpint(b, tmp, (size_t)nl);
		break;
	}
	default:
		return -1;
	}
	return b->err ? -1 : 0;
}

/* Wrap @*pkey (taken on success, *pkey becomes NULL) into a key. */
static struct sshkey *key_finish(enum sshkey_type t, bool priv, EVP_PKEY **pkey)
{
	AUTO(bufp_free) struct buf b;
	buf_init(&b, RSA_MAX_BITS / 8 + 256);
	if (encode_blob(t, *pkey, &b) < 0) {
		ERR_clear_error();
		return NULL;
	}
	struct sshkey *k = calloc(1, sizeof(*k));
	if (!k)
		return NULL;
	k->blob = malloc(buf_used(&b));
	if (!k->blob) {
		free(k);
		return NULL;
	}
	memcpy(k->blob, buf_data(&b), buf_used(&b));
	k->bloblen = buf_used(&b);
	k->type = t;
	k->priv = priv;
	k->pkey = *pkey;
	*pkey = NULL;
	return k;
}

static EVP_PKEY *pkey_fromdata(const char *alg, OSSL_PARAM *params)
{
	AUTO(pctx_freep) EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, alg, NULL);
	EVP_PKEY *pkey = NULL;
	if (!ctx || EVP_PKEY_fromdata_init(ctx) != 1 ||
	    EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1) {
		ERR_clear_error();
		return NULL;
	}
	return pkey;
}

static struct sshkey *parse_ed25519(struct rd *r)
{
	struct sv a = rd_str(r); /* ENC(A): the 32-byte public key */
	if (!rd_end(r) || a.n != ED25519_KEY_LEN)
		return NULL;
	AUTO(pkey_freep) EVP_PKEY *pkey =
		EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, a.p, a.n);
	if (!pkey) {
		ERR_clear_error();
		return NULL;
	}
	return key_finish(SSHKEY_ED25519, false, &pkey);
}

static struct sshkey *parse_ecdsa(struct rd *r)
{
	struct sv curve = rd_str(r); /* identifier: "nistp256" */
	struct sv q = rd_str(r);     /* Q: only the uncompressed form */
	if (!rd_end(r) || !sv_eq(curve, "nistp256") || q.n != P256_POINT_LEN || q.p[0] != 0x04)
		return NULL;
	char group[] = "prime256v1";
	uint8_t point[P256_POINT_LEN];
	memcpy(point, q.p, q.n);
	OSSL_PARAM params[] = {
		OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, group, 0),
		OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, point, sizeof(point)),
		OSSL_PARAM_construct_end(),
	};
	AUTO(pkey_freep) EVP_PKEY *pkey = pkey_fromdata("EC", params);
	if (!pkey)
		return NULL;
	/* On the curve, not infinity, in the prime-order subgroup. */
	AUTO(pctx_freep) EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
	if (!ctx || EVP_PKEY_public_check(ctx) != 1) {
		ERR_clear_error();
		return NULL;
	}
	return key_finish(SSHKEY_ECDSA_P256, false, &pkey);
}

static struct sshkey *parse_rsa(struct rd *r)
{
	struct sv e = rd_mpint_pos(r, RSA_MAX_E_LEN);	 /* e: public exponent */
	struct sv n = rd_mpint_pos(r, RSA_MAX_BITS / 8); /* n: modulus */
	if (!rd_end(r) || !e.n || !n.n)
		return NULL;
	/* e odd and > 1; n odd and of an acceptable size. */
	if (!(e.p[e.n - 1] & 1) || (e.n == 1 && e.p[0] == 1) || !(n.p[n.n - 1] & 1))
		return NULL;
	AUTO(bn_freep) BIGNUM *be = BN_bin2bn(e.p, (int)e.n, NULL);
	AUTO(bn_freep) BIGNUM *bn = BN_bin2bn(n.p, (int)n.n, NULL);
	if (!be || !bn)
		return NULL;
	int bits = BN_num_bits(bn);
	if (bits < RSA_MIN_BITS || bits > RSA_MAX_BITS)
		return NULL;
	AUTO(bld_freep) OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
	if (!bld || OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn) != 1 ||
	    OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, be) != 1) {
		ERR_clear_error();
		return NULL;
	}
	AUTO(params_freep) OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
	if (!params) {
		ERR_clear_error();
		return NULL;
	}
	AUTO(pkey_freep) EVP_PKEY *pkey = pkey_fromdata("RSA", params);
	if (!pkey)
		return NULL;
	return key_finish(SSHKEY_RSA, false, &pkey);
}

struct sshkey *sshkey_from_blob(struct sv blob)
{
	struct rd r;
	rd_init(&r, blob.p, blob.n);
	struct sv name = rd_str(&r); /* key type name */
	if (r.err)
		return NULL;
	if (sv_eq(name, type_names[SSHKEY_ED25519]))
		return parse_ed25519(&r);
	if (sv_eq(name, type_names[SSHKEY_ECDSA_P256]))
		return parse_ecdsa(&r);
	if (sv_eq(name, type_names[SSHKEY_RSA]))
		return parse_rsa(&r);
	return NULL;
}

void sshkey_free(struct sshkey *k)
{
	if (!k)
		return;
	EVP_PKEY_free(k->pkey); /* libcrypto wipes private material */
	free(k->blob);
	free(k);
}

enum sshkey_type sshkey_type(const struct sshkey *k)
{
	return k->type;
}

const char *sshkey_type_name(const struct sshkey *k)
{
	return type_names[k->type];
}

bool sshkey_has_private(const struct sshkey *k)
{
	return k && k->priv;
}

bool sshkey_equal(const struct sshkey *a, const struct sshkey *b)
{
	return a && b && a->bloblen == b->bloblen && memcmp(a->blob, b->blob, a->bloblen) == 0;
}

void sshkey_put_blob(const struct sshkey *k, struct buf *out)
{
	buf_put(out, k->blob, k->bloblen);
}

void sshkey_fingerprint(const struct sshkey *k, char *out, size_t outlen)
{
	if (!outlen)
		return;
	out[0] = 0;
	uint8_t md[EVP_MAX_MD_SIZE];
	unsigned mdlen = 0;
	if (EVP_Digest(k->blob, k->bloblen, md, &mdlen, EVP_sha256(), NULL) != 1) {
		ERR_clear_error();
		return;
	}
	char b64[64];
	int n = EVP_EncodeBlock((unsigned char *)b64, md, (int)mdlen);
	while (n > 0 && b64[n - 1] == '=')
		b64[--n] = 0;
	snprintf(out, outlen, "SHA256:%s", b64);
}

struct sshkey *sshkey_from_openssh_public(struct sv type, struct sv b64)
{
	if (b64.n > PUB_B64_MAX)
		return NULL;
	AUTO(bufp_free) struct buf blob;
	buf_init(&blob, PUB_B64_MAX);
	if (b64_decode(b64, &blob) < 0)
		return NULL;
	struct sshkey *k = sshkey_from_blob((struct sv){ buf_data(&blob), buf_used(&blob) });
	if (k && !sv_eq(type, type_names[k->type])) {
		sshkey_free(k);
		return NULL;
	}
	return k;
}

void sshkey_put_openssh_public(const struct sshkey *k, struct buf *out)
{
	buf_put(out, type_names[k->type], strlen(type_names[k->type]));
	buf_u8(out, ' ');
	b64_encode(out, k->blob, k->bloblen);
}

/* ---- signatures ---- */

static const struct sigalg *sigalg_for(const struct sshkey *k, struct sv algo)
{
	for (size_t i = 0; i < sizeof(sigalgs) / sizeof(sigalgs[0]); i++)
		if (sigalgs[i].type == k->type && sv_eq(algo, sigalgs[i].name))
			return &sigalgs[i];
	return NULL;
}

bool sshkey_algo_allowed(const struct sshkey *k, struct sv algo)
{
	return k && sigalg_for(k, algo) != NULL;
}

static int digest_verify(EVP_PKEY *pkey, const EVP_MD *md, bool pkcs1, const uint8_t *sig,
			 size_t siglen, const uint8_t *data, size_t len)
{
	AUTO(mdctx_freep) EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	EVP_PKEY_CTX *pctx = NULL; /* owned by ctx */
	bool ok = ctx && EVP_DigestVerifyInit(ctx, &pctx, md, NULL, pkey) == 1 &&
		  (!pkcs1 || EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) > 0) &&
		  EVP_DigestVerify(ctx, sig, siglen, data, len) == 1;
	if (!ok)
		ERR_clear_error();
	return ok ? 0 : -1;
}

static int verify_ecdsa(EVP_PKEY *pkey, const EVP_MD *md, struct sv sig, const uint8_t *data,
			size_t len)
{
	struct rd r;
	rd_init(&r, sig.p, sig.n);
	struct sv sr = rd_mpint_pos(&r, P256_SCALAR_LEN); /* r */
	struct sv ss = rd_mpint_pos(&r, P256_SCALAR_LEN); /* s */
	if (!rd_end(&r) || !sr.n || !ss.n)
		return -1;
	AUTO(ecsig_freep) ECDSA_SIG *es = ECDSA_SIG_new();
	BIGNUM *br = BN_bin2bn(sr.p, (int)sr.n, NULL);
	BIGNUM *bs = BN_bin2bn(ss.p, (int)ss.n, NULL);
	if (!es || !br || !bs || ECDSA_SIG_set0(es, br, bs) != 1) {
		BN_free(br);
		BN_free(bs);
		ERR_clear_error();
		return -1;
	}
	AUTO(ossl_freep) unsigned char *der = NULL;
	int dlen = i2d_ECDSA_SIG(es, &der);
	if (dlen <= 0) {
		ERR_clear_error();
		return -1;
	}
	return digest_verify(pkey, md, false, der, (size_t)dlen, data, len);
}

static int verify_rsa(EVP_PKEY *pkey, const EVP_MD *md, struct sv sig, const uint8_t *data,
		      size_t len)
{
	int size = EVP_PKEY_get_size(pkey);
	if (size <= 0 || sig.n == 0 || sig.n > (size_t)size)
		return -1;
	size_t modlen = (size_t)size;
	if (sig.n == modlen)
		return digest_verify(pkey, md, true, sig.p, sig.n, data, len);
	AUTO(freep) uint8_t *padded = calloc(1, modlen);
	if (!padded)
		return -1;
	memcpy(padded + modlen - sig.n, sig.p, sig.n);
	return digest_verify(pkey, md, true, padded, modlen, data, len);
}

int sshkey_verify(const struct sshkey *k, struct sv algo, struct sv sigblob,
		  const uint8_t *data, size_t len)
{
	if (!k)
		return -1;
	struct rd r;
	rd_init(&r, sigblob.p, sigblob.n);
	struct sv name = rd_str(&r); /* signature format identifier */
	struct sv sig = rd_str(&r);  /* algorithm-specific signature */
	if (!rd_end(&r) || !sv_same(name, algo))
		return -1;
	const struct sigalg *a = sigalg_for(k, name);
	if (!a)
		return -1;
	switch (k->type) {
	case SSHKEY_ED25519:
		if (sig.n != ED25519_SIG_LEN)
			return -1;
		return digest_verify(k->pkey, NULL, false, sig.p, sig.n, data, len);
	case SSHKEY_ECDSA_P256:
		return verify_ecdsa(k->pkey, a->md(), sig, data, len);
	case SSHKEY_RSA:
		return verify_rsa(k->pkey, a->md(), sig, data, len);
	}
	return -1;
}

/* A DER ECDSA signature as SSH's mpint r, mpint s. */
static int ecdsa_der_to_ssh(const uint8_t *der, size_t n, struct buf *out)
{
	const unsigned char *p = der;
	AUTO(ecsig_freep) ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)n);
	if (!es)
		return -1;
	uint8_t r[P256_SCALAR_LEN], s[P256_SCALAR_LEN];
	if (BN_bn2binpad(ECDSA_SIG_get0_r(es), r, sizeof(r)) != (int)sizeof(r) ||
	    BN_bn2binpad(ECDSA_SIG_get0_s(es), s, sizeof(s)) != (int)sizeof(s))
		return -1;
	buf_mpint(out, r, sizeof(r));
	buf_mpint(out, s, sizeof(s));
	return 0;
}

int sshkey_sign_alg(const struct sshkey *k, struct sv algo, const uint8_t *data, size_t len,
		    struct buf *out)
{
	const struct sigalg *a = k && k->priv ? sigalg_for(k, algo) : NULL;
	if (!a)
		return -1;
	AUTO(mdctx_freep) EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	EVP_PKEY_CTX *pctx = NULL; /* owned by ctx */
	uint8_t sig[RSA_MAX_BITS / 8];
	size_t siglen = sizeof(sig);
	if (!ctx || EVP_DigestSignInit(ctx, &pctx, a->md ? a->md() : NULL, NULL, k->pkey) != 1 ||
	    (k->type == SSHKEY_RSA && EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) <= 0) ||
	    EVP_DigestSign(ctx, sig, &siglen, data, len) != 1) {
		ERR_clear_error();
		return -1;
	}
	AUTO(bufp_free) struct buf inner;
	buf_init(&inner, sizeof(sig) + 16);
	if (k->type == SSHKEY_ECDSA_P256) {
		if (ecdsa_der_to_ssh(sig, siglen, &inner) < 0) {
			ERR_clear_error();
			return -1;
		}
	} else {
		buf_put(&inner, sig, siglen);
	}
	buf_cstr(out, a->name);
	buf_str(out, buf_data(&inner), buf_used(&inner));
	return out->err || inner.err ? -1 : 0;
}

int sshkey_sign(const struct sshkey *k, const uint8_t *data, size_t len, struct buf *out)
{
	if (!k || k->type != SSHKEY_ED25519)
		return -1;
	return sshkey_sign_alg(k, sv_from_cstr(type_names[SSHKEY_ED25519]), data, len, out);
}

struct sshkey *sshkey_generate(enum sshkey_type t)
{
	AUTO(pkey_freep) EVP_PKEY *pkey = NULL;
	switch (t) {
	case SSHKEY_ED25519:
		pkey = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
		break;
	case SSHKEY_ECDSA_P256:
		pkey = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
		break;
	case SSHKEY_RSA:
		pkey = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)3072);
		break;
	}
	if (!pkey) {
		ERR_clear_error();
		return NULL;
	}
	return key_finish(t, true, &pkey);
}

struct sshkey *sshkey_generate_ed25519(void)
{
	return sshkey_generate(SSHKEY_ED25519);
}

/* ---- openssh-key-v1 private keys (PROTOCOL.key) ---- */

static struct sshkey *parse_priv_ed25519(struct rd *p, char *err, size_t errlen);
static struct sshkey *parse_priv_ecdsa(struct rd *p, char *err, size_t errlen);
static struct sshkey *parse_priv_rsa(struct rd *p, char *err, size_t errlen);

static struct sshkey *parse_private_bin(struct sv bin, char *err, size_t errlen)
{
	struct rd r;
	rd_init(&r, bin.p, bin.n);
	struct sv magic = rd_bytes(&r, sizeof(AUTH_MAGIC)); /* "openssh-key-v1\0" */
	struct sv cipher = rd_str(&r);			    /* ciphername */
	struct sv kdf = rd_str(&r);			    /* kdfname */
	struct sv kdfopts = rd_str(&r);			    /* kdfoptions */
	uint32_t nkeys = rd_u32(&r);			    /* number of keys N */
	struct sv pub = rd_str(&r);			    /* publickey1 */
	struct sv priv = rd_str(&r);			    /* padded private key list */
	if (r.err || memcmp(magic.p, AUTH_MAGIC, sizeof(AUTH_MAGIC)) != 0) {
		seterr(err, errlen, "corrupt or truncated openssh-key-v1 data");
		return NULL;
	}
	if (!sv_eq(cipher, "none") || !sv_eq(kdf, "none") || kdfopts.n) {
		char c[32];
		sv_printable(cipher, c, sizeof(c));
		seterr(err, errlen,
		       "encrypted private keys are not supported (cipher %s); "
		       "remove the passphrase with ssh-keygen -p",
		       c);
		return NULL;
	}
	if (nkeys != 1) {
		seterr(err, errlen, "the file holds %u keys; exactly one is supported", nkeys);
		return NULL;
	}
	if (!rd_end(&r) || priv.n % 8) {
		seterr(err, errlen, "corrupt openssh-key-v1 data (trailing bytes or bad padding)");
		return NULL;
	}

	struct rd p;
	rd_init(&p, priv.p, priv.n);
	uint32_t check1 = rd_u32(&p); /* checkint */
	uint32_t check2 = rd_u32(&p); /* checkint, equal when decrypted right */
	struct sv ktype = rd_str(&p); /* key type */
	if (p.err || check1 != check2) {
		seterr(err, errlen, "corrupt openssh-key-v1 data (check bytes differ)");
		return NULL;
	}
	struct sshkey *k;
	if (sv_eq(ktype, type_names[SSHKEY_ED25519])) {
		k = parse_priv_ed25519(&p, err, errlen);
	} else if (sv_eq(ktype, type_names[SSHKEY_ECDSA_P256])) {
		k = parse_priv_ecdsa(&p, err, errlen);
	} else if (sv_eq(ktype, type_names[SSHKEY_RSA])) {
		k = parse_priv_rsa(&p, err, errlen);
	} else {
		char t[64];
		sv_printable(ktype, t, sizeof(t));
		seterr(err, errlen,
		       "unsupported host key type %s (ssh-ed25519, ecdsa-sha2-nistp256, ssh-rsa)", t);
		return NULL;
	}
	if (!k)
		return NULL;
	/* Both copies of the public key agree. */
	if (!sv_same(pub, (struct sv){ k->blob, k->bloblen })) {
		sshkey_free(k);
		seterr(err, errlen, "private key does not match its public key");
		return NULL;
	}
	return k;
}

/* After the key fields: string comment, then padding 1, 2, 3, ... */
static bool priv_tail_ok(struct rd *p)
{
	(void)rd_str(p);	     /* comment */
	struct sv pad = rd_rest(p); /* deterministic padding */
	bool bad = p->err || pad.n >= 8;
	for (size_t i = 0; !bad && i < pad.n; i++)
		bad = pad.p[i] != (uint8_t)(i + 1);
	return !bad;
}

static struct sshkey *parse_priv_ed25519(struct rd *p, char *err, size_t errlen)
{
	struct sv a = rd_str(p);  /* ENC(A): public key */
	struct sv sk = rd_str(p); /* k || ENC(A): seed then public key */
	if (!priv_tail_ok(p) || a.n != ED25519_KEY_LEN || sk.n != 2 * ED25519_KEY_LEN ||
	    CRYPTO_memcmp(sk.p + ED25519_KEY_LEN, a.p, ED25519_KEY_LEN) != 0) {
		seterr(err, errlen, "corrupt ed25519 private key");
		return NULL;
	}
	AUTO(pkey_freep) EVP_PKEY *pkey =
		EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, sk.p, ED25519_KEY_LEN);
	if (!pkey) {
		ERR_clear_error();
		seterr(err, errlen, "libcrypto rejected the ed25519 private key");
		return NULL;
	}
	AUTO(keyp_free) struct sshkey *k = key_finish(SSHKEY_ED25519, true, &pkey);
	if (!k) {
		seterr(err, errlen, "out of memory");
		return NULL;
	}
	/* The seed must yield the stored public key. */
	struct rd kb;
	rd_init(&kb, k->blob, k->bloblen);
	(void)rd_str(&kb);
	if (!sv_same(rd_str(&kb), a)) {
		seterr(err, errlen, "private key does not match its public key");
		return NULL;
	}
	struct sshkey *ret = k;
	k = NULL;
	return ret;
}

/* A key pair from @params, checked by libcrypto (the private half matches). */
static struct sshkey *priv_from_params(enum sshkey_type t, const char *alg, OSSL_PARAM *params,
				       char *err, size_t errlen)
{
	AUTO(pctx_freep) EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, alg, NULL);
	AUTO(pkey_freep) EVP_PKEY *pkey = NULL;
	if (!ctx || EVP_PKEY_fromdata_init(ctx) != 1 ||
	    EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_KEYPAIR, params) != 1) {
		ERR_clear_error();
		seterr(err, errlen, "libcrypto rejected the %s private key", type_names[t]);
		return NULL;
	}
	if (t == SSHKEY_ECDSA_P256) { /* Q on the curve, in the subgroup */
		AUTO(pctx_freep) EVP_PKEY_CTX *chk = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
		if (!chk || EVP_PKEY_public_check(chk) != 1) {
			ERR_clear_error();
			seterr(err, errlen, "corrupt %s private key (bad public point)",
			       type_names[t]);
			return NULL;
		}
	}
	AUTO(keyp_free) struct sshkey *k = key_finish(t, true, &pkey);
	if (!k) {
		seterr(err, errlen, "out of memory");
		return NULL;
	}
	/* The halves belong together: what the private key signs, the public verifies. */
	static const uint8_t msg[] = "wicket host key pairwise check";
	const char *algo = t == SSHKEY_RSA ? "rsa-sha2-256" : type_names[t];
	AUTO(bufp_free) struct buf sig;
	buf_init(&sig, RSA_MAX_BITS / 8 + 64);
	if (sshkey_sign_alg(k, sv_from_cstr(algo), msg, sizeof(msg), &sig) < 0 ||
	    sshkey_verify(k, sv_from_cstr(algo), (struct sv){ buf_data(&sig), buf_used(&sig) },
			  msg, sizeof(msg)) < 0) {
		seterr(err, errlen, "corrupt %s private key (its halves do not match)",
		       type_names[t]);
		return NULL;
	}
	struct sshkey *ret = k;
	k = NULL;
	return ret;
}

static struct sshkey *parse_priv_ecdsa(struct rd *p, char *err, size_t errlen)
{
	struct sv curve = rd_str(p);			 /* curve identifier */
	struct sv q = rd_str(p);			 /* Q, uncompressed */
	struct sv d = rd_mpint_pos(p, P256_SCALAR_LEN); /* private scalar */
	if (!priv_tail_ok(p) || !sv_eq(curve, "nistp256") || q.n != P256_POINT_LEN ||
	    q.p[0] != 0x04 || !d.n) {
		seterr(err, errlen, "corrupt ecdsa-sha2-nistp256 private key");
		return NULL;
	}
	AUTO(bn_freep) BIGNUM *bd = BN_bin2bn(d.p, (int)d.n, NULL);
	AUTO(bld_freep) OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
	if (!bd || !bld ||
	    OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) != 1 ||
	    OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, q.p, q.n) != 1 ||
	    OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_PRIV_KEY, bd) != 1) {
		ERR_clear_error();
		seterr(err, errlen, "out of memory");
		return NULL;
	}
	AUTO(params_freep) OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
	if (!params) {
		ERR_clear_error();
		seterr(err, errlen, "out of memory");
		return NULL;
	}
	return priv_from_params(SSHKEY_ECDSA_P256, "EC", params, err, errlen);
}

static struct sshkey *parse_priv_rsa(struct rd *p, char *err, size_t errlen)
{
	/* OpenSSH's order: n, e, d, iqmp, p, q. */
	struct sv n = rd_mpint_pos(p, RSA_MAX_BITS / 8);
	struct sv e = rd_mpint_pos(p, RSA_MAX_E_LEN);
	struct sv d = rd_mpint_pos(p, RSA_MAX_BITS / 8);
	struct sv iqmp = rd_mpint_pos(p, RSA_MAX_BITS / 8);
	struct sv pp = rd_mpint_pos(p, RSA_MAX_BITS / 8);
	struct sv qq = rd_mpint_pos(p, RSA_MAX_BITS / 8);
	if (!priv_tail_ok(p) || !n.n || !e.n || !d.n || !iqmp.n || !pp.n || !qq.n) {
		seterr(err, errlen, "corrupt ssh-rsa private key");
		return NULL;
	}
	AUTO(bn_freep) BIGNUM *bn = BN_bin2bn(n.p, (int)n.n, NULL);
	AUTO(bn_freep) BIGNUM *be = BN_bin2bn(e.p, (int)e.n, NULL);
	AUTO(bn_freep) BIGNUM *bd = BN_secure_new();
	AUTO(bn_freep) BIGNUM *biq = BN_secure_new();
	AUTO(bn_freep) BIGNUM *bp = BN_secure_new();
	AUTO(bn_freep) BIGNUM *bq = BN_secure_new();
	AUTO(bn_freep) BIGNUM *dp = BN_secure_new();
	AUTO(bn_freep) BIGNUM *dq = BN_secure_new();
	AUTO(bn_freep) BIGNUM *t = BN_secure_new();
	BN_CTX *bctx = BN_CTX_secure_new();
	bool ok = bn && be && bd && biq && bp && bq && dp && dq && t && bctx &&
		  BN_bin2bn(d.p, (int)d.n, bd) && BN_bin2bn(iqmp.p, (int)iqmp.n, biq) &&
		  BN_bin2bn(pp.p, (int)pp.n, bp) && BN_bin2bn(qq.p, (int)qq.n, bq);
	int bits = ok ? BN_num_bits(bn) : 0;
	if (ok && (bits < RSA_MIN_BITS || bits > RSA_MAX_BITS)) {
		BN_CTX_free(bctx);
		seterr(err, errlen, "ssh-rsa host key of %d bits (%d..%d allowed)", bits,
		       RSA_MIN_BITS, RSA_MAX_BITS);
		return NULL;
	}
	/* n = p q and iqmp = q^-1 mod p: libcrypto's signing would quietly
	 * work around bad CRT values, a corrupt file must not load. */
	bool consistent = ok && BN_mul(t, bp, bq, bctx) && BN_cmp(t, bn) == 0 &&
			  BN_mod_mul(t, biq, bq, bp, bctx) && BN_is_one(t);
	/* The CRT exponents OpenSSH does not store: d mod (p-1), d mod (q-1). */
	ok = consistent && BN_sub(t, bp, BN_value_one()) && BN_mod(dp, bd, t, bctx) &&
	     BN_sub(t, bq, BN_value_one()) && BN_mod(dq, bd, t, bctx);
	BN_CTX_free(bctx);
	AUTO(bld_freep) OSSL_PARAM_BLD *bld = ok ? OSSL_PARAM_BLD_new() : NULL;
	ok = bld && OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn) == 1 &&
	     OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, be) == 1 &&
	     OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_D, bd) == 1 &&
	     OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_FACTOR1, bp) == 1 &&
	     OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_FACTOR2, bq) == 1 &&
	     OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_EXPONENT1, dp) == 1 &&
	     OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_EXPONENT2, dq) == 1 &&
	     OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_COEFFICIENT1, biq) == 1;
	AUTO(params_freep) OSSL_PARAM *params = ok ? OSSL_PARAM_BLD_to_param(bld) : NULL;
	if (!params) {
		ERR_clear_error();
		seterr(err, errlen, "corrupt ssh-rsa private key");
		return NULL;
	}
	return priv_from_params(SSHKEY_RSA, "RSA", params, err, errlen);
}

struct sshkey *sshkey_parse_private(struct sv text, char *err, size_t errlen)
{
	if (text.n > PRIVFILE_MAX) {
		seterr(err, errlen, "private key file too large");
		return NULL;
	}
	struct rd r;
	rd_init(&r, text.p, text.n);
	struct sv begin = rd_bytes(&r, strlen(MARK_BEGIN));
	if (r.err || !sv_eq(begin, MARK_BEGIN)) {
		seterr(err, errlen, "not an OpenSSH private key (no \"%s\" line)", MARK_BEGIN);
		return NULL;
	}
	struct sv rest = rd_rest(&r);
	const uint8_t *end = rest.n ? memmem(rest.p, rest.n, MARK_END, strlen(MARK_END)) : NULL;
	if (!end) {
		seterr(err, errlen, "truncated OpenSSH private key (no END line)");
		return NULL;
	}
	struct sv body = { rest.p, (size_t)(end - rest.p) };
	struct sv tail = { end + strlen(MARK_END), rest.n - body.n - strlen(MARK_END) };
	for (size_t i = 0; i < tail.n; i++) {
		if (tail.p[i] != '\n' && tail.p[i] != '\r' && tail.p[i] != ' ' &&
		    tail.p[i] != '\t') {
			seterr(err, errlen, "unexpected data after the END line");
			return NULL;
		}
	}
	/* Gather the base64 text without line breaks; it is as secret as the key. */
	AUTO(sbuf_free) struct buf b64;
	AUTO(sbuf_free) struct buf bin;
	if (!sbuf_init(&b64, body.n) || !sbuf_init(&bin, body.n / 4 * 3 + 3)) {
		seterr(err, errlen, "out of memory");
		return NULL;
	}
	for (size_t i = 0; i < body.n; i++) {
		uint8_t c = body.p[i];
		if (c == '\n' || c == '\r' || c == ' ' || c == '\t')
			continue;
		buf_u8(&b64, c);
	}
	if (b64.err || b64_decode((struct sv){ buf_data(&b64), buf_used(&b64) }, &bin) < 0) {
		seterr(err, errlen, "bad base64 in OpenSSH private key");
		return NULL;
	}
	return parse_private_bin((struct sv){ buf_data(&bin), buf_used(&bin) }, err, errlen);
}

int sshkey_format_private(const struct sshkey *k, const char *comment, struct buf *out)
{
	if (!comment)
		comment = "";
	size_t clen = strlen(comment);
	if (!k || !k->priv || k->type != SSHKEY_ED25519 || clen > 1024)
		return -1;
	uint8_t seed[ED25519_KEY_LEN], a[ED25519_KEY_LEN];
	size_t sl = sizeof(seed), al = sizeof(a);
	uint32_t check;
	if (EVP_PKEY_get_raw_private_key(k->pkey, seed, &sl) != 1 ||
	    EVP_PKEY_get_raw_public_key(k->pkey, a, &al) != 1 || sl != sizeof(seed) ||
	    al != sizeof(a) || RAND_bytes((unsigned char *)&check, sizeof(check)) != 1) {
		OPENSSL_cleanse(seed, sizeof(seed));
		ERR_clear_error();
		return -1;
	}
	AUTO(sbuf_free) struct buf priv;
	AUTO(sbuf_free) struct buf bin;
	AUTO(sbuf_free) struct buf b64;
	bool ok = sbuf_init(&priv, 256 + clen) && sbuf_init(&bin, 512 + clen) &&
		  sbuf_init(&b64, (512 + clen) / 3 * 4 + 8);
	if (ok) {
		buf_u32(&priv, check);
		buf_u32(&priv, check);
		buf_cstr(&priv, type_names[SSHKEY_ED25519]);
		buf_str(&priv, a, sizeof(a));
		buf_u32(&priv, 2 * ED25519_KEY_LEN);
		buf_put(&priv, seed, sizeof(seed));
		buf_put(&priv, a, sizeof(a));
		buf_cstr(&priv, comment);
		for (uint8_t i = 1; buf_used(&priv) % 8; i++)
			buf_u8(&priv, i);

		buf_put(&bin, AUTH_MAGIC, sizeof(AUTH_MAGIC));
		buf_cstr(&bin, "none"); /* ciphername */
		buf_cstr(&bin, "none"); /* kdfname */
		buf_str(&bin, "", 0);	/* kdfoptions */
		buf_u32(&bin, 1);	/* number of keys */
		buf_str(&bin, k->blob, k->bloblen);
		buf_str(&bin, buf_data(&priv), buf_used(&priv));
		b64_encode(&b64, buf_data(&bin), buf_used(&bin));
		ok = !priv.err && !bin.err && !b64.err;
	}
	OPENSSL_cleanse(seed, sizeof(seed));
	if (!ok)
		return -1;
	buf_put(out, MARK_BEGIN, strlen(MARK_BEGIN));
	buf_u8(out, '\n');
	for (size_t i = 0; i < buf_used(&b64); i += 70) {
		size_t n = buf_used(&b64) - i < 70 ? buf_used(&b64) - i : 70;
		buf_put(out, buf_data(&b64) + i, n);
		buf_u8(out, '\n');
	}
	buf_put(out, MARK_END, strlen(MARK_END));
	buf_u8(out, '\n');
	return out->err ? -1 : 0;
}

/* ---- host key file ---- */

static struct sshkey *load_host_key_fd(int fd, const char *path, char *err, size_t errlen)
{
	struct stat st;
	if (fstat(fd, &st) < 0) {
		seterr(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	if (!S_ISREG(st.st_mode)) {
		seterr(err, errlen, "%s: not a regular file", path);
		return NULL;
	}
	if (st.st_mode & 077) {
		seterr(err, errlen,
		       "%s: permissions %04o are too open; the host key must not be accessible "
		       "by group or others (chmod 600)",
		       path, (unsigned)(st.st_mode & 07777));
		return NULL;
	}
	if (st.st_size > PRIVFILE_MAX) {
		seterr(err, errlen, "%s: too large for a private key", path);
		return NULL;
	}
	AUTO(sbuf_free) struct buf text;
	if (!sbuf_init(&text, (size_t)st.st_size + 1)) {
		seterr(err, errlen, "out of memory");
		return NULL;
	}
	for (;;) {
		if (text.len == text.cap) {
			seterr(err, errlen, "%s: file changed while being read", path);
			return NULL;
		}
		ssize_t n = read(fd, text.p + text.len, text.cap - text.len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			seterr(err, errlen, "%s: %s", path, strerror(errno));
			return NULL;
		}
		if (n == 0)
			break;
		text.len += (size_t)n;
	}
	char why[200] = "";
	struct sshkey *k = sshkey_parse_private((struct sv){ text.p, text.len }, why, sizeof(why));
	if (!k)
		seterr(err, errlen, "%s: %s", path, why);
	return k;
}

static int mkdir_parents(const char *path, char *err, size_t errlen)
{
	AUTO(freep) char *p = strdup(path);
	if (!p) {
		seterr(err, errlen, "out of memory");
		return -1;
	}
	for (char *s = strchr(p + 1, '/'); s; s = strchr(s + 1, '/')) {
		*s = 0;
		if (mkdir(p, 0700) < 0 && errno != EEXIST) {
			seterr(err, errlen, "cannot create directory %s: %s", p, strerror(errno));
			return -1;
		}
		*s = '/';
	}
	return 0;
}

static int write_all_sync(int fd, const uint8_t *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return fsync(fd);
}

/*
 * Generate a host key and publish it at @path without ever replacing a file:
 * written to a private temporary file, then link()ed into place, so a
 * concurrent loader sees either nothing or a complete key.  Where the file
 * system has no hard links, the key is written in place with O_EXCL.
 * 0 created (*out set), 1 someone else created @path first, -1 error.
 */
static int create_host_key(const char *path, struct sshkey **out, char *err, size_t errlen)
{
	if (mkdir_parents(path, err, errlen) < 0)
		return -1;
	AUTO(keyp_free) struct sshkey *k = sshkey_generate_ed25519();
	AUTO(sbuf_free) struct buf text;
	if (!k || !sbuf_init(&text, SSHKEY_PRIVATE_TEXT_MAX) ||
	    sshkey_format_private(k, HOST_KEY_COMMENT, &text) < 0) {
		seterr(err, errlen, "cannot generate an ed25519 host key");
		return -1;
	}
	size_t tlen = strlen(path) + sizeof(".tmpXXXXXX");
	AUTO(freep) char *tmp = malloc(tlen);
	if (!tmp) {
		seterr(err, errlen, "out of memory");
		return -1;
	}
	snprintf(tmp, tlen, "%s.tmpXXXXXX", path);
	int fd = mkostemp(tmp, O_CLOEXEC); /* O_EXCL, mode 0600 */
	if (fd < 0) {
		seterr(err, errlen, "cannot create %s: %s", tmp, strerror(errno));
		return -1;
	}
	int wr = fchmod(fd, 0600) == 0 ? write_all_sync(fd, buf_data(&text), buf_used(&text)) : -1;
	int e = errno;
	if (close(fd) < 0 && wr == 0) {
		wr = -1;
		e = errno;
	}
	if (wr < 0) {
		unlink(tmp);
		seterr(err, errlen, "cannot write %s: %s", tmp, strerror(e));
		return -1;
	}
	int lr = link(tmp, path);
	e = errno;
	unlink(tmp);
	if (lr < 0 && e == EEXIST)
		return 1;
	if (lr < 0) {
		AUTO(closep) int wfd =
			open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (wfd < 0 && errno == EEXIST)
			return 1;
		if (wfd < 0 || write_all_sync(wfd, buf_data(&text), buf_used(&text)) < 0) {
			e = errno;
			if (wfd >= 0)
				unlink(path);
			seterr(err, errlen, "cannot write %s: %s", path, strerror(e));
			return -1;
		}
	}
	*out = k;
	k = NULL;
	return 0;
}

struct sshkey *sshkey_load_host_key(const char *path, bool create, char *err, size_t errlen)
{
	seterr(err, errlen, "%s", "");
	if (!path || !path[0]) {
		seterr(err, errlen, "no host key path (set one explicitly: no home directory known)");
		return NULL;
	}
	for (int attempt = 0; attempt < 3; attempt++) {
		/* O_NONBLOCK: a FIFO planted at @path must not hang us. */
		AUTO(closep) int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
		if (fd >= 0)
			return load_host_key_fd(fd, path, err, errlen);
		if (errno != ENOENT || !create) {
			seterr(err, errlen, "cannot open host key %s: %s", path, strerror(errno));
			return NULL;
		}
		struct sshkey *k = NULL;
		int r = create_host_key(path, &k, err, errlen);
		if (r == 0)
			return k;
		if (r < 0)
			return NULL;
		/* Lost a race with another creator: load the winner's key. */
	}
	seterr(err, errlen, "cannot open or create host key %s", path);
	return NULL;
}

void sshkey_default_host_key_path(char *out, size_t outlen)
{
	if (!outlen)
		return;
	const char *xdg = getenv("XDG_STATE_HOME");
	int n;
	if (xdg && xdg[0] == '/') {
		n = snprintf(out, outlen, "%s/wicket/host_ed25519_key", xdg);
	} else {
		const char *home = getenv("HOME");
		if (!home || home[0] != '/') {
			struct passwd *pw = getpwuid(getuid());
			home = pw ? pw->pw_dir : NULL;
		}
		if (!home || home[0] != '/') {
			out[0] = 0;
			return;
		}
		n = snprintf(out, outlen, "%s/.local/state/wicket/host_ed25519_key", home);
	}
	if (n < 0 || (size_t)n >= outlen)
		out[0] = 0;
}
