/* SPDX-License-Identifier: MIT */
/*
 * sshkey against real OpenSSH artefacts: keys from ssh-keygen, fingerprints
 * from `ssh-keygen -lf`, signatures made independently (OpenSSL on the PEM
 * private keys ssh-keygen wrote, and a real ssh-agent over its socket), and
 * our generated host key read back by `ssh-keygen -y`.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include "buf.h"
#include "sshkey.h"
#include "tap.h"

static char dir[128];

static int run(const char *fmt, ...) TAP_PRINTF(1, 2);
static int run(const char *fmt, ...)
{
	char cmd[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	int st = system(cmd);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* First line of a command's output, without the newline. */
static char *capture(const char *fmt, ...) TAP_PRINTF(1, 2);
static char *capture(const char *fmt, ...)
{
	char cmd[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	FILE *f = popen(cmd, "r");
	if (!f)
		return NULL;
	static char line[8192];
	line[0] = 0;
	if (!fgets(line, sizeof(line), f))
		line[0] = 0;
	pclose(f);
	line[strcspn(line, "\n")] = 0;
	return line;
}

static char *slurp(const char *path, size_t *n)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	char *p = malloc(1 << 16);
	*n = fread(p, 1, (1 << 16) - 1, f);
	p[*n] = 0;
	fclose(f);
	return p;
}

static void spit(const char *path, const void *p, size_t n, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
	if (fd < 0 || write(fd, p, n) != (ssize_t)n)
		bail_out("cannot write a test file");
	fchmod(fd, mode);
	close(fd);
}

/* Independent base64 decoding for the test (OpenSSL's block decoder). */
static size_t b64dec(const char *s, uint8_t *out)
{
	size_t n = strlen(s);
	int r = EVP_DecodeBlock(out, (const unsigned char *)s, (int)n);
	size_t pad = (n && s[n - 1] == '=') + (n > 1 && s[n - 2] == '=');
	return r < 0 ? 0 : (size_t)r - pad;
}

struct pub {
	char type[64], b64[4096], comment[256], text[4200];
	uint8_t blob[4096];
	size_t bloblen;
};

static bool read_pub(const char *path, struct pub *p)
{
	size_t n;
	char *s = slurp(path, &n);
	if (!s)
		return false;
	p->comment[0] = 0;
	int f = sscanf(s, "%63s %4095s %255[^\n]", p->type, p->b64, p->comment);
	free(s);
	snprintf(p->text, sizeof(p->text), "%s %s", p->type, p->b64);
	p->bloblen = b64dec(p->b64, p->blob);
	return f >= 2 && p->bloblen > 0;
}

static struct sv pub_sv(const struct pub *p)
{
	return (struct sv){ p->blob, p->bloblen };
}

static void put_str(struct buf *b, const char *s)
{
	buf_cstr(b, s);
}

static void put_bn_mpint(struct buf *b, const BIGNUM *bn)
{
	uint8_t tmp[1024];
	int n = BN_bn2bin(bn, tmp + 1);
	tmp[0] = 0;
	bool pad = n > 0 && (tmp[1] & 0x80);
	buf_str(b, pad ? tmp : tmp + 1, (size_t)n + pad);
}

static EVP_PKEY *load_pem(const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return NULL;
	EVP_PKEY *k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	return k;
}

/* Raw OpenSSL signature over data with @md (PKCS#1 v1.5 for RSA). */
static size_t ossl_sign(EVP_PKEY *k, const EVP_MD *md, const void *data, size_t len,
			uint8_t *sig, size_t cap)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	size_t n = cap;
	if (EVP_DigestSignInit(ctx, NULL, md, NULL, k) != 1 ||
	    EVP_DigestSign(ctx, sig, &n, data, len) != 1)
		n = 0;
	EVP_MD_CTX_free(ctx);
	return n;
}

/* SSH ecdsa-sha2-nistp256 signature blob made with OpenSSL. */
static void ecdsa_sigblob(EVP_PKEY *k, const void *data, size_t len, struct buf *out)
{
	uint8_t der[128];
	size_t n = ossl_sign(k, EVP_sha256(), data, len, der, sizeof(der));
	const unsigned char *dp = der;
	ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &dp, (long)n);
	struct buf inner;
	buf_init(&inner, 256);
	put_bn_mpint(&inner, ECDSA_SIG_get0_r(es));
	put_bn_mpint(&inner, ECDSA_SIG_get0_s(es));
	put_str(out, "ecdsa-sha2-nistp256");
	buf_str(out, buf_data(&inner), buf_used(&inner));
	buf_free(&inner);
	ECDSA_SIG_free(es);
}

static void rsa_sigblob(EVP_PKEY *k, const char *algo, const EVP_MD *md, const void *data,
			size_t len, struct buf *out)
{
	uint8_t sig[1024];
	size_t n = ossl_sign(k, md, data, len, sig, sizeof(sig));
	put_str(out, algo);
	buf_str(out, sig, n);
}

static struct sv bsv(const struct buf *b)
{
	return (struct sv){ buf_data(b), buf_used(b) };
}

static int verify_buf(const struct sshkey *k, const char *algo, const struct buf *sig,
		      const void *data, size_t len)
{
	return sshkey_verify(k, sv_from_cstr(algo), bsv(sig), data, len);
}

/* Flip one bit of the signature blob at @off (from the end when negative). */
static int verify_flipped_sig(const struct sshkey *k, const char *algo, const struct buf *sig,
			      long off, const void *data, size_t len)
{
	uint8_t tmp[2048];
	size_t n = buf_used(sig);
	memcpy(tmp, buf_data(sig), n);
	size_t at = off < 0 ? n - (size_t)-off : (size_t)off;
	tmp[at] ^= 0x01;
	return sshkey_verify(k, sv_from_cstr(algo), (struct sv){ tmp, n }, data, len);
}

static const char msg[] = "session id + userauth request: the data to be signed";

/* ---- public key parsing ---- */

static void test_public(const char *name, const char *file, enum sshkey_type type,
			struct sshkey **out)
{
	char path[256];
	struct pub p;
	snprintf(path, sizeof(path), "%s/%s.pub", dir, file);
	if (!ok(read_pub(path, &p), "%s: read ssh-keygen's public key", name)) {
		skip(9, "no public key");
		return;
	}
	struct sshkey *k = sshkey_from_blob(pub_sv(&p));
	ok(k != NULL, "%s: blob parses", name);
	if (!k) {
		skip(8, "no key");
		return;
	}
	is_int(sshkey_type(k), type, "%s: type", name);
	is_str(sshkey_type_name(k), p.type, "%s: type name", name);
	struct buf b;
	buf_init(&b, 1 << 16);
	sshkey_put_blob(k, &b);
	is_mem(buf_data(&b), buf_used(&b), p.blob, p.bloblen, "%s: blob round-trips", name);

	char fp[SSHKEY_FP_LEN];
	sshkey_fingerprint(k, fp, sizeof(fp));
	char *kg = capture("ssh-keygen -lf %s | awk '{print $2}'", path);
	is_str(fp, kg, "%s: fingerprint equals ssh-keygen -lf", name);

	buf_reset(&b);
	sshkey_put_openssh_public(k, &b);
	buf_u8(&b, 0);
	is_str((char *)buf_data(&b), p.text, "%s: .pub text round-trips", name);

	struct sshkey *k2 = sshkey_from_openssh_public(sv_from_cstr(p.type), sv_from_cstr(p.b64));
	ok(sshkey_equal(k, k2), "%s: from .pub text equals from blob", name);
	sshkey_free(k2);
	const char *other = type == SSHKEY_RSA ? "ssh-ed25519" : "ssh-rsa";
	k2 = sshkey_from_openssh_public(sv_from_cstr(other), sv_from_cstr(p.b64));
	ok(k2 == NULL, "%s: .pub text with a mismatched type name is refused", name);
	sshkey_free(k2);

	/* Every truncation and any trailing byte must fail. */
	bool all = true;
	for (size_t i = 0; i < p.bloblen; i++) {
		struct sshkey *t = sshkey_from_blob((struct sv){ p.blob, i });
		if (t)
			all = false;
		sshkey_free(t);
	}
	uint8_t longer[4097];
	memcpy(longer, p.blob, p.bloblen);
	longer[p.bloblen] = 0;
	struct sshkey *t = sshkey_from_blob((struct sv){ longer, p.bloblen + 1 });
	ok(all && !t, "%s: every truncation and a trailing byte are refused", name);
	sshkey_free(t);
	buf_free(&b);
	*out = k;
}

/* ---- signatures ---- */

static void test_ed25519_sign(struct sshkey *pub)
{
	char path[256], err[256];
	snprintf(path, sizeof(path), "%s/ed", dir);
	struct sshkey *priv = sshkey_load_host_key(path, false, err, sizeof(err));
	if (!ok(priv != NULL, "ed25519: our loader reads ssh-keygen's private key")) {
		diag("%s", err);
		skip(11, "no private key");
		return;
	}
	ok(sshkey_has_private(priv) && !sshkey_has_private(pub), "ed25519: private flag");
	ok(sshkey_equal(priv, pub), "ed25519: private key's public half equals the .pub");

	struct buf sig;
	buf_init(&sig, 4096);
	is_int(sshkey_sign(priv, (const uint8_t *)msg, sizeof(msg), &sig), 0, "ed25519: sign");
	struct rd r;
	rd_init(&r, buf_data(&sig), buf_used(&sig));
	struct sv an = rd_str(&r), s64 = rd_str(&r);
	ok(rd_end(&r) && sv_eq(an, "ssh-ed25519") && s64.n == 64,
	   "ed25519: signature blob is string \"ssh-ed25519\" + string[64]");
	is_int(verify_buf(pub, "ssh-ed25519", &sig, msg, sizeof(msg)), 0,
	       "ed25519: verify with the .pub key");
	char bad[sizeof(msg)];
	memcpy(bad, msg, sizeof(msg));
	bad[3] ^= 0x10;
	is_int(verify_buf(pub, "ssh-ed25519", &sig, bad, sizeof(bad)), -1,
	       "ed25519: flipped data bit fails");
	is_int(verify_flipped_sig(pub, "ssh-ed25519", &sig, -1, msg, sizeof(msg)), -1,
	       "ed25519: flipped signature bit (S) fails");
	is_int(verify_flipped_sig(pub, "ssh-ed25519", &sig, -40, msg, sizeof(msg)), -1,
	       "ed25519: flipped signature bit (R) fails");
	is_int(verify_flipped_sig(pub, "ssh-ed25519", &sig, 5, msg, sizeof(msg)), -1,
	       "ed25519: corrupted algorithm name fails");
	is_int(verify_buf(pub, "rsa-sha2-256", &sig, msg, sizeof(msg)), -1,
	       "ed25519: userauth algorithm differing from the signature's fails");

	/* A different key: flip a bit of the public key inside the blob. */
	struct buf kb;
	buf_init(&kb, 4096);
	sshkey_put_blob(pub, &kb);
	buf_data(&kb)[buf_used(&kb) - 1] ^= 0x01;
	struct sshkey *other = sshkey_from_blob(bsv(&kb));
	ok(!other || verify_buf(other, "ssh-ed25519", &sig, msg, sizeof(msg)) == -1,
	   "ed25519: flipped key bit fails");
	sshkey_free(other);
	struct buf tmp;
	buf_init(&tmp, 4096);
	is_int(sshkey_sign(pub, (const uint8_t *)msg, sizeof(msg), &tmp), -1,
	       "ed25519: a public-only key cannot sign");
	buf_free(&tmp);
	buf_free(&kb);
	buf_free(&sig);
	sshkey_free(priv);
}

static void test_ecdsa_sign(struct sshkey *pub)
{
	char path[256];
	snprintf(path, sizeof(path), "%s/ec", dir);
	EVP_PKEY *pk = load_pem(path);
	if (!ok(pk != NULL, "ecdsa: OpenSSL reads ssh-keygen's PEM private key")) {
		skip(8, "no PEM key");
		return;
	}
	/* Several messages so both r/s encodings (with and without a 0 pad) occur. */
	bool all = true, padded = false;
	for (int i = 0; i < 16; i++) {
		char m[64];
		int n = snprintf(m, sizeof(m), "message %d", i);
		struct buf s;
		buf_init(&s, 4096);
		ecdsa_sigblob(pk, m, (size_t)n, &s);
		if (verify_buf(pub, "ecdsa-sha2-nistp256", &s, m, (size_t)n) != 0)
			all = false;
		struct rd r;
		rd_init(&r, buf_data(&s), buf_used(&s));
		rd_str(&r);
		struct sv inner = rd_str(&r);
		if (inner.n > 8 + 64)
			padded = true;
		buf_free(&s);
	}
	ok(all, "ecdsa: 16 OpenSSL-made signatures verify");
	ok(padded, "ecdsa: at least one had a 0-padded mpint");

	struct buf sig;
	buf_init(&sig, 4096);
	ecdsa_sigblob(pk, msg, sizeof(msg), &sig);
	is_int(verify_buf(pub, "ecdsa-sha2-nistp256", &sig, msg, sizeof(msg)), 0, "ecdsa: verify");
	is_int(verify_buf(pub, "ecdsa-sha2-nistp256", &sig, msg, sizeof(msg) - 1), -1,
	       "ecdsa: shorter data fails");
	is_int(verify_flipped_sig(pub, "ecdsa-sha2-nistp256", &sig, -1, msg, sizeof(msg)), -1,
	       "ecdsa: flipped s bit fails");
	is_int(verify_flipped_sig(pub, "ecdsa-sha2-nistp256", &sig, 40, msg, sizeof(msg)), -1,
	       "ecdsa: flipped r bit fails");
	is_int(verify_buf(pub, "ssh-ed25519", &sig, msg, sizeof(msg)), -1,
	       "ecdsa: userauth algorithm differing from the signature's fails");
	/* Trailing junk after the signature blob. */
	buf_u8(&sig, 0);
	is_int(verify_buf(pub, "ecdsa-sha2-nistp256", &sig, msg, sizeof(msg)), -1,
	       "ecdsa: trailing byte after the signature fails");
	buf_free(&sig);
	EVP_PKEY_free(pk);
}

static void test_rsa_sign(struct sshkey *pub)
{
	char path[256];
	snprintf(path, sizeof(path), "%s/rsa", dir);
	EVP_PKEY *pk = load_pem(path);
	if (!ok(pk != NULL, "rsa: OpenSSL reads ssh-keygen's PEM private key")) {
		skip(11, "no PEM key");
		return;
	}
	struct buf s256, s512, s1, mix;
	buf_init(&s256, 4096);
	buf_init(&s512, 4096);
	buf_init(&s1, 4096);
	buf_init(&mix, 4096);
	rsa_sigblob(pk, "rsa-sha2-256", EVP_sha256(), msg, sizeof(msg), &s256);
	rsa_sigblob(pk, "rsa-sha2-512", EVP_sha512(), msg, sizeof(msg), &s512);
	rsa_sigblob(pk, "ssh-rsa", EVP_sha1(), msg, sizeof(msg), &s1);
	rsa_sigblob(pk, "rsa-sha2-256", EVP_sha512(), msg, sizeof(msg), &mix);
	is_int(verify_buf(pub, "rsa-sha2-256", &s256, msg, sizeof(msg)), 0, "rsa: rsa-sha2-256");
	is_int(verify_buf(pub, "rsa-sha2-512", &s512, msg, sizeof(msg)), 0, "rsa: rsa-sha2-512");
	is_int(verify_buf(pub, "ssh-rsa", &s1, msg, sizeof(msg)), -1,
	       "rsa: a valid ssh-rsa (SHA-1) signature is refused");
	is_int(verify_buf(pub, "rsa-sha2-256", &mix, msg, sizeof(msg)), -1,
	       "rsa: SHA-512 signature labelled rsa-sha2-256 fails");
	is_int(verify_buf(pub, "rsa-sha2-512", &s256, msg, sizeof(msg)), -1,
	       "rsa: userauth algorithm differing from the signature's fails");
	is_int(verify_flipped_sig(pub, "rsa-sha2-256", &s256, -1, msg, sizeof(msg)), -1,
	       "rsa: flipped signature bit fails");
	is_int(verify_buf(pub, "rsa-sha2-256", &s256, "x", 1), -1, "rsa: other data fails");
	ok(!sshkey_algo_allowed(pub, sv_from_cstr("ssh-rsa")) &&
		   sshkey_algo_allowed(pub, sv_from_cstr("rsa-sha2-256")) &&
		   sshkey_algo_allowed(pub, sv_from_cstr("rsa-sha2-512")) &&
		   !sshkey_algo_allowed(pub, sv_from_cstr("ssh-ed25519")),
	   "rsa: sshkey_algo_allowed lists rsa-sha2-256/512 only");

	/* A different modulus: flip a bit in the middle of n. */
	struct buf kb;
	buf_init(&kb, 4096);
	sshkey_put_blob(pub, &kb);
	buf_data(&kb)[buf_used(&kb) - 100] ^= 0x04;
	struct sshkey *other = sshkey_from_blob(bsv(&kb));
	ok(!other || verify_buf(other, "rsa-sha2-256", &s256, msg, sizeof(msg)) == -1,
	   "rsa: flipped key bit fails");
	sshkey_free(other);

	/* A signature whose first byte is 0 may arrive shortened (OpenSSH pads it). */
	bool found = false;
	for (int i = 0; i < 4096 && !found; i++) {
		char m[32];
		int n = snprintf(m, sizeof(m), "try %d", i);
		uint8_t sig[512];
		size_t sl = ossl_sign(pk, EVP_sha256(), m, (size_t)n, sig, sizeof(sig));
		if (sl != 384 || sig[0] != 0)
			continue;
		found = true;
		struct buf a, b;
		buf_init(&a, 4096);
		buf_init(&b, 4096);
		put_str(&a, "rsa-sha2-256");
		buf_str(&a, sig + 1, sl - 1);
		put_str(&b, "rsa-sha2-256");
		uint8_t longer[513] = { 0 };
		memcpy(longer + 1, sig, sl);
		buf_str(&b, longer, sl + 1);
		ok(verify_buf(pub, "rsa-sha2-256", &a, m, (size_t)n) == 0 &&
			   verify_buf(pub, "rsa-sha2-256", &b, m, (size_t)n) == -1,
		   "rsa: shortened signature verifies, over-long one does not");
		buf_free(&a);
		buf_free(&b);
	}
	if (!found)
		skip(1, "no signature with a leading zero byte found");
	buf_free(&kb);
	buf_free(&s256);
	buf_free(&s512);
	buf_free(&s1);
	buf_free(&mix);
	EVP_PKEY_free(pk);
}

/* ---- ssh-agent: signatures made by OpenSSH itself ---- */

static int agent_sign(const char *sock, const struct sshkey *k, const void *data, size_t len,
		      uint32_t flags, struct buf *out)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	struct buf kb, req;
	buf_init(&kb, 8192);
	buf_init(&req, 16384);
	sshkey_put_blob(k, &kb);
	buf_u32(&req, 0);
	buf_u8(&req, 13); /* SSH_AGENTC_SIGN_REQUEST */
	buf_str(&req, buf_data(&kb), buf_used(&kb));
	buf_str(&req, data, len);
	buf_u32(&req, flags);
	put_be32(buf_data(&req), (uint32_t)(buf_used(&req) - 4));
	int rc = -1;
	uint8_t hdr[4], body[8192];
	if (write(fd, buf_data(&req), buf_used(&req)) == (ssize_t)buf_used(&req) &&
	    recv(fd, hdr, 4, MSG_WAITALL) == 4 && get_be32(hdr) <= sizeof(body) &&
	    recv(fd, body, get_be32(hdr), MSG_WAITALL) == (ssize_t)get_be32(hdr)) {
		struct rd r;
		rd_init(&r, body, get_be32(hdr));
		uint8_t type = rd_u8(&r); /* SSH_AGENT_SIGN_RESPONSE */
		struct sv sig = rd_str(&r);
		if (rd_end(&r) && type == 14) {
			buf_put(out, sig.p, sig.n);
			rc = 0;
		}
	}
	close(fd);
	buf_free(&kb);
	buf_free(&req);
	return rc;
}

static void test_agent(struct sshkey *ed, struct sshkey *ec, struct sshkey *rsa)
{
	const int n_tests = 8;
	if (run("command -v ssh-agent >/dev/null && command -v ssh-add >/dev/null") != 0) {
		skip(n_tests, "ssh-agent/ssh-add not installed");
		return;
	}
	char sock[256];
	snprintf(sock, sizeof(sock), "%s/agent.sock", dir);
	pid_t pid = fork();
	if (pid == 0) {
		int null = open("/dev/null", O_RDWR);
		dup2(null, 0);
		dup2(null, 1);
		execlp("ssh-agent", "ssh-agent", "-D", "-a", sock, (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 500 && access(sock, F_OK) != 0; i++)
		usleep(10000);
	if (access(sock, F_OK) != 0 ||
	    run("SSH_AUTH_SOCK=%s ssh-add -q %s/ed %s/ec %s/rsa 2>/dev/null", sock, dir, dir,
		dir) != 0) {
		skip(n_tests, "could not start ssh-agent or add keys");
		goto out;
	}
	struct buf s;
	buf_init(&s, 8192);
	if (ed && agent_sign(sock, ed, msg, sizeof(msg), 0, &s) == 0) {
		is_int(verify_buf(ed, "ssh-ed25519", &s, msg, sizeof(msg)), 0,
		       "agent: ssh-agent's ed25519 signature verifies");
		char err[256], path[256];
		snprintf(path, sizeof(path), "%s/ed", dir);
		struct sshkey *priv = sshkey_load_host_key(path, false, err, sizeof(err));
		struct buf mine;
		buf_init(&mine, 8192);
		sshkey_sign(priv, (const uint8_t *)msg, sizeof(msg), &mine);
		is_mem(buf_data(&mine), buf_used(&mine), buf_data(&s), buf_used(&s),
		       "agent: sshkey_sign equals ssh-agent's (deterministic ed25519) signature");
		buf_free(&mine);
		sshkey_free(priv);
	} else {
		skip(2, "agent ed25519 signature unavailable");
	}
	buf_reset(&s);
	if (ec && agent_sign(sock, ec, msg, sizeof(msg), 0, &s) == 0) {
		is_int(verify_buf(ec, "ecdsa-sha2-nistp256", &s, msg, sizeof(msg)), 0,
		       "agent: ssh-agent's ecdsa signature verifies");
		is_int(verify_buf(ec, "ecdsa-sha2-nistp256", &s, msg, sizeof(msg) - 2), -1,
		       "agent: ... and not over other data");
	} else {
		skip(2, "agent ecdsa signature unavailable");
	}
	static const struct {
		uint32_t flags;
		const char *algo;
		int want;
	} rsa_cases[] = { { 2, "rsa-sha2-256", 0 }, { 4, "rsa-sha2-512", 0 }, { 0, "ssh-rsa", -1 } };
	for (size_t i = 0; i < 3; i++) {
		buf_reset(&s);
		if (!rsa || agent_sign(sock, rsa, msg, sizeof(msg), rsa_cases[i].flags, &s) != 0) {
			skip(1, "agent rsa signature unavailable");
			continue;
		}
		struct rd r;
		rd_init(&r, buf_data(&s), buf_used(&s));
		bool named = sv_eq(rd_str(&r), rsa_cases[i].algo);
		ok(named && verify_buf(rsa, rsa_cases[i].algo, &s, msg, sizeof(msg)) ==
				    rsa_cases[i].want,
		   "agent: ssh-agent's %s signature %s", rsa_cases[i].algo,
		   rsa_cases[i].want ? "is refused" : "verifies");
	}
	{
		/* Another agent-made rsa-sha2-512 with one flipped bit. */
		buf_reset(&s);
		if (rsa && agent_sign(sock, rsa, msg, sizeof(msg), 4, &s) == 0)
			is_int(verify_flipped_sig(rsa, "rsa-sha2-512", &s, -7, msg, sizeof(msg)), -1,
			       "agent: flipped bit in ssh-agent's rsa-sha2-512 signature fails");
		else
			skip(1, "agent rsa signature unavailable");
	}
	buf_free(&s);
out:
	kill(pid, SIGTERM);
	waitpid(pid, NULL, 0);
}

/* ---- host key file ---- */

static void test_host_key(void)
{
	char path[256], err[256], sub[256];
	snprintf(sub, sizeof(sub), "%s/state/a", dir);
	snprintf(path, sizeof(path), "%s/state/a/b/host_ed25519_key", dir);

	struct sshkey *k = sshkey_load_host_key(path, false, err, sizeof(err));
	ok(!k && strstr(err, path), "host: missing file without create fails with a message");
	sshkey_free(k);
	k = sshkey_load_host_key("", true, err, sizeof(err));
	ok(!k && err[0], "host: empty path refused with a message");
	sshkey_free(k);

	k = sshkey_load_host_key(path, true, err, sizeof(err));
	if (!ok(k != NULL, "host: generated with create=true")) {
		diag("%s", err);
		skip(12, "no host key");
		return;
	}
	struct stat st, sd;
	ok(stat(path, &st) == 0 && (st.st_mode & 07777) == 0600, "host: file mode 0600");
	ok(stat(sub, &sd) == 0 && (sd.st_mode & 07777) == 0700, "host: parent dirs created 0700");
	is_int(run("ls -a %s/state/a/b | grep -q tmp", dir), 1, "host: no temporary file left");

	struct buf t;
	buf_init(&t, 8192);
	sshkey_put_openssh_public(k, &t);
	buf_u8(&t, 0);
	char *kg = capture("ssh-keygen -y -f %s 2>&1 | awk '{print $1\" \"$2}'", path);
	is_str(kg, (char *)buf_data(&t), "host: ssh-keygen -y prints our public key");
	char fp[SSHKEY_FP_LEN];
	sshkey_fingerprint(k, fp, sizeof(fp));
	kg = capture("ssh-keygen -lf %s | awk '{print $2}'", path);
	is_str(fp, kg, "host: fingerprint equals ssh-keygen -lf on the private key file");

	struct sshkey *again = sshkey_load_host_key(path, false, err, sizeof(err));
	ok(again && sshkey_equal(again, k) && sshkey_has_private(again), "host: loads again");
	struct sshkey *again2 = sshkey_load_host_key(path, true, err, sizeof(err));
	ok(again2 && sshkey_equal(again2, k), "host: create=true keeps an existing key");
	struct buf sig;
	buf_init(&sig, 4096);
	ok(again && sshkey_sign(again, (const uint8_t *)msg, sizeof(msg), &sig) == 0 &&
		   verify_buf(k, "ssh-ed25519", &sig, msg, sizeof(msg)) == 0,
	   "host: reloaded key signs, generated key verifies");
	sshkey_free(again);
	sshkey_free(again2);
	buf_free(&sig);
	buf_free(&t);

	chmod(path, 0644);
	sshkey_free(k);
	k = sshkey_load_host_key(path, false, err, sizeof(err));
	ok(!k && strstr(err, "too open"), "host: mode 0644 is refused");
	sshkey_free(k);
	chmod(path, 0600);

	/* Other files ssh-keygen writes that are not usable host keys. */
	snprintf(path, sizeof(path), "%s/garbage", dir);
	spit(path, "hello\n", 6, 0600);
	k = sshkey_load_host_key(path, false, err, sizeof(err));
	ok(!k && strstr(err, "not an OpenSSH private key"), "host: garbage refused");
	sshkey_free(k);
	snprintf(path, sizeof(path), "%s/enc", dir);
	k = sshkey_load_host_key(path, false, err, sizeof(err));
	ok(!k && strstr(err, "encrypted"), "host: passphrase-protected key refused (%s)", err);
	sshkey_free(k);
	snprintf(path, sizeof(path), "%s/rsa1024", dir);
	chmod(path, 0600);
	k = sshkey_load_host_key(path, false, err, sizeof(err));
	ok(!k && strstr(err, "1024 bits"), "host: a 1024-bit rsa host key refused (%s)", err);
	sshkey_free(k);
}

/*
 * ecdsa-sha2-nistp256 and ssh-rsa host keys in ssh-keygen's own format:
 * loaded, their public half equals the .pub file, they sign with every
 * algorithm of their type (never ssh-rsa/SHA-1), and a private half that does
 * not belong to the public one is refused.
 */
static void test_host_key_types(void)
{
	static const struct {
		const char *file, *algos[2];
		enum sshkey_type type;
	} cases[] = {
		{ "ec_openssh", { "ecdsa-sha2-nistp256", NULL }, SSHKEY_ECDSA_P256 },
		{ "rsa_openssh", { "rsa-sha2-512", "rsa-sha2-256" }, SSHKEY_RSA },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char path[256], err[256];
		struct pub p;
		snprintf(path, sizeof(path), "%s/%s", dir, cases[i].file);
		chmod(path, 0600);
		struct sshkey *k = sshkey_load_host_key(path, false, err, sizeof(err));
		ok(k && sshkey_has_private(k) && sshkey_type(k) == cases[i].type,
		   "host %s: loaded (%s)", cases[i].file, k ? "" : err);
		snprintf(path, sizeof(path), "%s/%s.pub", dir, cases[i].file);
		struct sshkey *pub = read_pub(path, &p) ? sshkey_from_blob(pub_sv(&p)) : NULL;
		ok(k && pub && sshkey_equal(k, pub), "host %s: public half equals the .pub file",
		   cases[i].file);
		for (int a = 0; a < 2; a++) {
			if (!cases[i].algos[a])
				continue;
			struct buf sig;
			buf_init(&sig, 4096);
			int r = k ? sshkey_sign_alg(k, sv_from_cstr(cases[i].algos[a]), (const uint8_t *)msg,
						    sizeof(msg), &sig)
				  : -1;
			ok(r == 0 && pub && verify_buf(pub, cases[i].algos[a], &sig, msg,
							sizeof(msg)) == 0,
			   "host %s: signs as %s, the public key verifies", cases[i].file,
			   cases[i].algos[a]);
			buf_free(&sig);
		}
		struct buf sig;
		buf_init(&sig, 4096);
		ok(!k || sshkey_sign_alg(k, sv_from_cstr("ssh-rsa"), (const uint8_t *)msg, sizeof(msg), &sig) < 0,
		   "host %s: no ssh-rsa (SHA-1) signature", cases[i].file);
		buf_free(&sig);
		sshkey_free(k);
		sshkey_free(pub);

		/* The private scalar / exponent changed: the halves no longer match. */
		snprintf(path, sizeof(path), "%s/%s", dir, cases[i].file);
		int rr = run("/usr/bin/python3 -c \"\nimport base64\n"
			     "t=open('%s').read().split('\\n')\n"
			     "b=bytearray(base64.b64decode(''.join(t[1:-2])))\n"
			     "b[-60]^=1\n"
			     "open('%s.bad','w').write(t[0]+'\\n'+base64.b64encode(bytes(b)).decode()+'\\n'+t[-2]+'\\n')\"",
			     path, path);
		snprintf(path, sizeof(path), "%s/%s.bad", dir, cases[i].file);
		size_t bn = 0;
		char *bad = rr == 0 ? slurp(path, &bn) : NULL;
		struct sshkey *bk = bad ? sshkey_parse_private((struct sv){ (const uint8_t *)bad, bn },
							err, sizeof(err))
					: NULL;
		ok(!bk && bad, "host %s: a corrupted private half is refused (%s)", cases[i].file,
		   err);
		sshkey_free(bk);
		free(bad);
	}
}

/* Several processes creating the same host key at once all end up with one key. */
static void test_host_key_race(void)
{
	enum { N = 8, REC = 72 };
	char path[256];
	snprintf(path, sizeof(path), "%s/race/sub/host_ed25519_key", dir);
	int fds[2];
	if (pipe(fds) < 0)
		bail_out("pipe");
	for (int i = 0; i < N; i++) {
		if (fork() == 0) {
			close(fds[0]);
			char err[256], fp[SSHKEY_FP_LEN] = "FAIL";
			struct sshkey *k = sshkey_load_host_key(path, true, err, sizeof(err));
			if (k)
				sshkey_fingerprint(k, fp, sizeof(fp));
			char rec[REC];
			memset(rec, ' ', sizeof(rec));
			const char *what = k ? fp : err;
			memcpy(rec, what, strlen(what) < REC ? strlen(what) : REC);
			_exit(write(fds[1], rec, REC) == REC ? 0 : 1);
		}
	}
	close(fds[1]);
	char all[N * REC + 1];
	size_t got = 0;
	ssize_t n;
	while (got < sizeof(all) && (n = read(fds[0], all + got, sizeof(all) - got)) > 0)
		got += (size_t)n;
	close(fds[0]);
	while (wait(NULL) > 0)
		;
	char err[256], fp[SSHKEY_FP_LEN] = "";
	struct sshkey *k = sshkey_load_host_key(path, false, err, sizeof(err));
	if (k)
		sshkey_fingerprint(k, fp, sizeof(fp));
	sshkey_free(k);
	bool same = got == N * REC && fp[0];
	for (size_t i = 0; same && i < N; i++)
		same = strncmp(all + i * REC, fp, strlen(fp)) == 0;
	all[got < sizeof(all) ? got : sizeof(all) - 1] = 0;
	ok(same, "host: %d concurrent creators all get the one key on disk", N);
	if (!same)
		diag("%s", all);
	is_int(run("ls -a %s/race/sub | grep -q tmp", dir), 1, "host: no temporary file left by the race");
}

/*
 * Mutate every base64 character of a valid private key file: each result
 * must either fail or (for bytes in the comment) give the very same key.
 */
static void test_private_mutations(void)
{
	struct sshkey *k = sshkey_generate_ed25519();
	struct buf t;
	buf_init(&t, SSHKEY_PRIVATE_TEXT_MAX);
	ok(k && sshkey_format_private(k, "mutation test", &t) == 0, "private: format");
	char err[256];
	struct sshkey *back = sshkey_parse_private(bsv(&t), err, sizeof(err));
	ok(sshkey_equal(back, k) && sshkey_has_private(back), "private: parse what we format");
	sshkey_free(back);

	size_t n = buf_used(&t), bad = 0, same = 0, fail = 0;
	uint8_t *text = buf_data(&t);
	size_t body = strlen("-----BEGIN OPENSSH PRIVATE KEY-----\n");
	for (size_t i = body; i < n; i++) {
		uint8_t c = text[i];
		if (c == '\n' || c == '-')
			continue;
		text[i] = c == 'A' ? 'B' : 'A';
		struct sshkey *m = sshkey_parse_private((struct sv){ text, n }, err, sizeof(err));
		if (!m)
			fail++;
		else if (sshkey_equal(m, k))
			same++;
		else
			bad++;
		sshkey_free(m);
		text[i] = c;
	}
	ok(bad == 0 && fail > 0, "private: %zu mutations fail, %zu keep the key, %zu other key",
	   fail, same, bad);
	bool trunc_ok = true;
	for (size_t i = 0; i + 1 < n; i++) {
		struct sshkey *m = sshkey_parse_private((struct sv){ text, i }, err, sizeof(err));
		if (m)
			trunc_ok = false;
		sshkey_free(m);
	}
	ok(trunc_ok, "private: every truncation fails");
	sshkey_free(k);
	buf_free(&t);
}

static void test_bad_blobs(void)
{
	char path[256];
	struct pub p;
	snprintf(path, sizeof(path), "%s/rsa1024.pub", dir);
	if (read_pub(path, &p)) {
		struct sshkey *k = sshkey_from_blob(pub_sv(&p));
		ok(!k, "blob: 1024-bit RSA key refused");
		sshkey_free(k);
	} else {
		skip(1, "no 1024-bit key");
	}
	/* ecdsa with a compressed point, and with a point off the curve. */
	snprintf(path, sizeof(path), "%s/ec.pub", dir);
	if (read_pub(path, &p)) {
		struct buf b;
		buf_init(&b, 4096);
		struct rd r;
		rd_init(&r, p.blob, p.bloblen);
		rd_str(&r);
		rd_str(&r);
		struct sv q = rd_str(&r);
		uint8_t comp[33];
		comp[0] = 0x02 | (q.p[64] & 1);
		memcpy(comp + 1, q.p + 1, 32);
		put_str(&b, "ecdsa-sha2-nistp256");
		put_str(&b, "nistp256");
		buf_str(&b, comp, 33);
		struct sshkey *k = sshkey_from_blob(bsv(&b));
		ok(!k, "blob: compressed ecdsa point refused");
		sshkey_free(k);
		uint8_t off[65];
		memcpy(off, q.p, 65);
		off[64] ^= 1;
		buf_reset(&b);
		put_str(&b, "ecdsa-sha2-nistp256");
		put_str(&b, "nistp256");
		buf_str(&b, off, 65);
		k = sshkey_from_blob(bsv(&b));
		ok(!k, "blob: ecdsa point off the curve refused");
		sshkey_free(k);
		buf_reset(&b);
		put_str(&b, "ecdsa-sha2-nistp256");
		put_str(&b, "nistp384");
		buf_str(&b, q.p, q.n);
		k = sshkey_from_blob(bsv(&b));
		ok(!k, "blob: ecdsa with a mismatched curve name refused");
		sshkey_free(k);
		buf_free(&b);
	} else {
		skip(3, "no ecdsa key");
	}
	struct sshkey *k = sshkey_from_blob(sv_from_cstr("\0\0\0\x07ssh-dss"));
	ok(!k, "blob: unknown type refused");
	sshkey_free(k);

	/* Pseudo-random junk through the parsers: no crash, nothing accepted. */
	uint32_t x = 12345;
	bool none = true;
	for (int i = 0; i < 20000; i++) {
		uint8_t junk[96];
		size_t n = (size_t)(i % 96);
		for (size_t j = 0; j < n; j++) {
			x = x * 1103515245 + 12345;
			junk[j] = (uint8_t)(x >> 16);
		}
		if (n >= 15) /* sometimes a valid type prefix */
			memcpy(junk, "\0\0\0\x0bssh-ed25519", 15);
		struct sshkey *j = sshkey_from_blob((struct sv){ junk, n });
		if (j && n != 51)
			none = false;
		sshkey_free(j);
	}
	ok(none, "blob: random junk never parses except as a well-formed ed25519 blob");
}

static void test_default_path(void)
{
	char out[256];
	char *home = getenv("HOME") ? strdup(getenv("HOME")) : NULL;
	char *xdg = getenv("XDG_STATE_HOME") ? strdup(getenv("XDG_STATE_HOME")) : NULL;
	setenv("XDG_STATE_HOME", "/xdg/state", 1);
	sshkey_default_host_key_path(out, sizeof(out));
	is_str(out, "/xdg/state/wicket/host_ed25519_key", "path: $XDG_STATE_HOME");
	setenv("XDG_STATE_HOME", "relative", 1);
	setenv("HOME", "/home/tester", 1);
	sshkey_default_host_key_path(out, sizeof(out));
	is_str(out, "/home/tester/.local/state/wicket/host_ed25519_key",
	       "path: relative XDG_STATE_HOME ignored");
	unsetenv("XDG_STATE_HOME");
	sshkey_default_host_key_path(out, sizeof(out));
	is_str(out, "/home/tester/.local/state/wicket/host_ed25519_key", "path: ~/.local/state");
	sshkey_default_host_key_path(out, 10);
	is_str(out, "", "path: too small a buffer gives \"\"");
	if (home)
		setenv("HOME", home, 1);
	if (xdg)
		setenv("XDG_STATE_HOME", xdg, 1);
	free(home);
	free(xdg);
}

int main(void)
{
	if (run("command -v ssh-keygen >/dev/null") != 0) {
		skip(1, "ssh-keygen not installed");
		return done_testing();
	}
	const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	snprintf(dir, sizeof(dir), "%s/wicket-sshkey-XXXXXX", tmp);
	if (!mkdtemp(dir))
		bail_out("mkdtemp");
	if (run("cd %s && ssh-keygen -q -t ed25519 -N '' -C 'test ed25519' -f ed && "
		"ssh-keygen -q -t ecdsa -b 256 -m PEM -N '' -C 'test ecdsa' -f ec && "
		"ssh-keygen -q -t rsa -b 3072 -m PEM -N '' -C 'test rsa' -f rsa && "
		"ssh-keygen -q -t rsa -b 1024 -N '' -f rsa1024 && "
		"ssh-keygen -q -t ed25519 -N 'secret pass' -f enc && "
		"ssh-keygen -q -t ecdsa -b 256 -N '' -f ec_openssh && "
		"ssh-keygen -q -t rsa -b 2048 -N '' -f rsa_openssh",
		dir) != 0)
		bail_out("ssh-keygen failed");

	struct sshkey *ed = NULL, *ec = NULL, *rsa = NULL;
	test_public("ed25519", "ed", SSHKEY_ED25519, &ed);
	test_public("ecdsa", "ec", SSHKEY_ECDSA_P256, &ec);
	test_public("rsa", "rsa", SSHKEY_RSA, &rsa);
	if (ed)
		test_ed25519_sign(ed);
	if (ec)
		test_ecdsa_sign(ec);
	if (rsa)
		test_rsa_sign(rsa);
	test_agent(ed, ec, rsa);
	test_host_key();
	test_host_key_types();
	test_host_key_race();
	test_private_mutations();
	test_bad_blobs();
	test_default_path();
	sshkey_free(ed);
	sshkey_free(ec);
	sshkey_free(rsa);
	run("rm -rf %s", dir);
	return done_testing();
}
