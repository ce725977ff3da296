/* SPDX-License-Identifier: MIT */
/*
 * Key exchange, server side: KEXINIT negotiation (RFC 4253 7.1), strict kex
 * and ext-info (OpenSSH PROTOCOL, RFC 8308), cipher and MAC choice per
 * direction (a MAC only for a cipher without its own integrity), curve25519-sha256 (RFC 8731)
 * with an ssh-ed25519 (RFC 8709), ecdsa-sha2-nistp256 (RFC 5656) or
 * rsa-sha2-512/256 (RFC 8332) host key, exchange hash and key
 * derivation (RFC 4253 7.2, 8).
 */
#include "sshs.h"

#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "log.h"

static const char kex_names[] = "curve25519-sha256,curve25519-sha256@libssh.org";
#ifdef HAVE_ZLIB
static const char comp_names[] = "none,zlib@openssh.com";
#else
static const char comp_names[] = "none";
#endif

/* Host key algorithms in our order of preference, and the key each needs. */
static const struct {
	const char *name;
	enum sshkey_type key;
} hostalgs[] = {
	{ "ssh-ed25519", SSHKEY_ED25519 },
	{ "ecdsa-sha2-nistp256", SSHKEY_ECDSA_P256 },
	{ "rsa-sha2-512", SSHKEY_RSA },
	{ "rsa-sha2-256", SSHKEY_RSA }, /* never ssh-rsa: SHA-1 */
};

/* The host key algorithms we have keys for, comma-separated, into s->hostalgs. */
static void hostalg_list(struct sshs *s)
{
	size_t n = 0;
	s->hostalgs[0] = 0;
	for (size_t i = 0; i < sizeof(hostalgs) / sizeof(hostalgs[0]); i++) {
		if (!s->cfg->host_blob[hostalgs[i].key].n)
			continue;
		int w = snprintf(s->hostalgs + n, sizeof(s->hostalgs) - n, "%s%s", n ? "," : "",
				 hostalgs[i].name);
		if (w > 0 && (size_t)w < sizeof(s->hostalgs) - n)
			n += (size_t)w;
	}
}

/* Is @name an element of the comma-separated @list? */
static bool list_has(struct sv list, const char *name)
{
	size_t nl = strlen(name), i = 0;
	while (i <= list.n) {
		size_t j = i;
		while (j < list.n && list.p[j] != ',')
			j++;
		if (j - i == nl && memcmp(list.p + i, name, nl) == 0)
			return true;
		i = j + 1;
	}
	return false;
}

/* The first name of the client's @list that is in our @ours; its view. */
static struct sv choose(struct sv list, const char *ours)
{
	size_t i = 0;
	while (i < list.n) {
		size_t j = i;
		while (j < list.n && list.p[j] != ',')
			j++;
		struct sv cand = { list.p + i, j - i };
		char tmp[128];
		/* A NUL inside a name would let "aes128-ctr\0x" match "aes128-ctr"
		 * here and then be found by no table: such a name matches nothing. */
		if (cand.n && cand.n < sizeof(tmp) && !memchr(cand.p, 0, cand.n)) {
			memcpy(tmp, cand.p, cand.n);
			tmp[cand.n] = 0;
			if (list_has(sv_from_cstr(ours), tmp))
				return cand;
		}
		i = j + 1;
	}
	return SV_NULL;
}

static bool first_is(struct sv list, struct sv name)
{
	size_t j = 0;
	while (j < list.n && list.p[j] != ',')
		j++;
	return j == name.n && memcmp(list.p, name.p, j) == 0;
}

void kex_send_init(struct sshs *s)
{
	struct buf b;
	uint8_t cookie[16];
	ssh_pkt_begin(&b, SSH_MSG_KEXINIT);
	RAND_bytes(cookie, sizeof(cookie));
	buf_put(&b, cookie, sizeof(cookie));
	if (s->kex_count == 0)
		buf_cstr(&b, "curve25519-sha256,curve25519-sha256@libssh.org,"
			     "kex-strict-s-v00@openssh.com");
	else
		buf_cstr(&b, kex_names);
	hostalg_list(s);
	buf_cstr(&b, s->hostalgs);
	buf_cstr(&b, cipher_names);
	buf_cstr(&b, cipher_names);
	buf_cstr(&b, mac_names);
	buf_cstr(&b, mac_names);
	buf_cstr(&b, comp_names);
	buf_cstr(&b, comp_names);
	buf_cstr(&b, "");
	buf_cstr(&b, "");
	buf_bool(&b, false);
	buf_u32(&b, 0);
	buf_reset(&s->is);
	buf_put(&s->is, buf_data(&b), buf_used(&b));
	s->kex_sent = true;
	ssh_send_buf(s, &b);
}

int kex_on_kexinit(struct sshs *s, struct sv pl)
{
	if (!s->kex_sent)
		kex_send_init(s);
	s->kex_rcvd = true;
	buf_reset(&s->ic);
	buf_put(&s->ic, pl.p, pl.n);
	struct rd r;
	rd_init(&r, pl.p + 1, pl.n - 1);
	rd_bytes(&r, 16);			/* cookie */
	struct sv kex = rd_str(&r);		/* kex_algorithms */
	struct sv hk = rd_str(&r);		/* server_host_key_algorithms */
	struct sv enc_cs = rd_str(&r);		/* encryption client to server */
	struct sv enc_sc = rd_str(&r);		/* encryption server to client */
	struct sv mac_cs = rd_str(&r);		/* mac client to server */
	struct sv mac_sc = rd_str(&r);		/* mac server to client */
	struct sv comp_cs = rd_str(&r);		/* compression client to server */
	struct sv comp_sc = rd_str(&r);		/* compression server to client */
	rd_str(&r);				/* languages client to server */
	rd_str(&r);				/* languages server to client */
	bool follows = rd_bool(&r);		/* first_kex_packet_follows */
	rd_u32(&r);				/* reserved */
	if (!rd_end(&r)) {
		ssh_disconnect(s, SSH_DISC_PROTOCOL_ERROR, "malformed KEXINIT");
		return -1;
	}
	if (s->kex_count == 0) {
		s->strict = list_has(kex, "kex-strict-c-v00@openssh.com");
		s->ext_info_c = list_has(kex, "ext-info-c");
		if (s->strict && s->rx.seq != 1) {
			ssh_disconnect(s, SSH_DISC_PROTOCOL_ERROR,
				       "strict kex: KEXINIT was not the first packet");
			return -1;
		}
	}
	struct sv k = choose(kex, kex_names);
	if (!k.n) {
		ssh_disconnect(s, SSH_DISC_KEY_EXCHANGE_FAILED, "no common key exchange method");
		return -1;
	}
	struct sv hka = choose(hk, s->hostalgs);
	s->hostalg = -1;
	for (size_t i = 0; hka.n && i < sizeof(hostalgs) / sizeof(hostalgs[0]); i++)
		if (sv_eq(hka, hostalgs[i].name))
			s->hostalg = (int)i;
	if (s->hostalg < 0) {
		ssh_disconnect(s, SSH_DISC_KEY_EXCHANGE_FAILED,
			       "no common host key algorithm (we have %s)", s->hostalgs);
		return -1;
	}
	struct sv ecs = choose(enc_cs, cipher_names), esc = choose(enc_sc, cipher_names);
	struct sv ccs = choose(comp_cs, comp_names), csc = choose(comp_sc, comp_names);
	if (!ecs.n || !esc.n) {
		ssh_disconnect(s, SSH_DISC_KEY_EXCHANGE_FAILED, "no common cipher (we have %s)",
			       cipher_names);
		return -1;
	}
	if (!ccs.n || !csc.n) {
		ssh_disconnect(s, SSH_DISC_KEY_EXCHANGE_FAILED, "no common compression");
		return -1;
	}
	s->nk_rx.enc = cipher_find((const char *)ecs.p, ecs.n);
	s->nk_tx.enc = cipher_find((const char *)esc.p, esc.n);
	/* RFC 4253 7.1: a MAC only where the cipher has no integrity of its own. */
	s->nk_rx.mac = s->nk_tx.mac = NULL;
	if (cipher_needs_mac(s->nk_rx.enc)) {
		struct sv m = choose(mac_cs, mac_names);
		s->nk_rx.mac = m.n ? mac_find((const char *)m.p, m.n) : NULL;
	}
	if (cipher_needs_mac(s->nk_tx.enc)) {
		struct sv m = choose(mac_sc, mac_names);
		s->nk_tx.mac = m.n ? mac_find((const char *)m.p, m.n) : NULL;
	}
	if ((cipher_needs_mac(s->nk_rx.enc) && !s->nk_rx.mac) ||
	    (cipher_needs_mac(s->nk_tx.enc) && !s->nk_tx.mac)) {
		ssh_disconnect(s, SSH_DISC_KEY_EXCHANGE_FAILED, "no common MAC (we have %s)",
			       mac_names);
		return -1;
	}
	s->nk_rx.zlib = sv_eq(ccs, "zlib@openssh.com");
	s->nk_tx.zlib = sv_eq(csc, "zlib@openssh.com");
	if (follows && !(first_is(kex, k) && first_is(hk, hka)))
		s->skip_guess = true;
	return 0;
}

static int sha256_parts(const struct sv *parts, size_t n, uint8_t out[32])
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	int ok = md && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1;
	for (size_t i = 0; ok && i < n; i++)
		ok = EVP_DigestUpdate(md, parts[i].p, parts[i].n) == 1;
	unsigned outl;
	ok = ok && EVP_DigestFinal_ex(md, out, &outl) == 1;
	EVP_MD_CTX_free(md);
	return ok ? 0 : -1;
}

/* RFC 4253 7.2: HASH(K || H || X || session_id), extended by HASH(K || H || K1 ...). */
static int derive(struct sshs *s, struct sv kmp, const uint8_t h[32], char letter, uint8_t *out,
		  size_t need)
{
	uint8_t acc[128];
	uint8_t x = (uint8_t)letter;
	struct sv p1[] = { kmp, { h, 32 }, { &x, 1 }, { s->session_id, 32 } };
	if (sha256_parts(p1, 4, acc) < 0)
		return -1;
	size_t have = 32;
	while (have < need) {
		struct sv p2[] = { kmp, { h, 32 }, { acc, have } };
		if (sha256_parts(p2, 3, acc + have) < 0)
			return -1;
		have += 32;
	}
	memcpy(out, acc, need);
	OPENSSL_cleanse(acc, sizeof(acc));
	return 0;
}

/* mpint encoding of an unsigned big-endian number (RFC 4251 5). */
static void put_mpint(struct buf *b, const uint8_t *p, size_t n)
{
	while (n && !*p) {
		p++;
		n--;
	}
	bool pad = n && (p[0] & 0x80);
	buf_u32(b, (uint32_t)(n + pad));
	if (pad)
		buf_u8(b, 0);
	buf_put(b, p, n);
}

static int x25519(const uint8_t peer[32], uint8_t pub[32], uint8_t shared[32])
{
	int rc = -1;
	EVP_PKEY *mine = NULL, *theirs = NULL;
	EVP_PKEY_CTX *gen = EVP_PKEY_CTX_new_id(EVP_PKEY_X25519, NULL), *dctx = NULL;
	size_t l = 32;
	if (!gen || EVP_PKEY_keygen_init(gen) != 1 || EVP_PKEY_keygen(gen, &mine) != 1)
		goto out;
	if (EVP_PKEY_get_raw_public_key(mine, pub, &l) != 1 || l != 32)
		goto out;
	theirs = EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, NULL, peer, 32);
	dctx = theirs ? EVP_PKEY_CTX_new(mine, NULL) : NULL;
	l = 32;
	if (!dctx || EVP_PKEY_derive_init(dctx) != 1 || EVP_PKEY_derive_set_peer(dctx, theirs) != 1 ||
	    EVP_PKEY_derive(dctx, shared, &l) != 1 || l != 32)
		goto out;
	uint8_t acc = 0;
	for (int i = 0; i < 32; i++)
		acc |= shared[i];
	if (acc) /* RFC 8731 3: an all-zero shared secret is an error */
		rc = 0;
out:
	EVP_PKEY_CTX_free(gen);
	EVP_PKEY_CTX_free(dctx);
	EVP_PKEY_free(mine);
	EVP_PKEY_free(theirs);
	return rc;
}

static void send_ext_info(struct sshs *s)
{
	struct buf b;
	ssh_pkt_begin(&b, SSH_MSG_EXT_INFO);
	buf_u32(&b, 1);
	buf_cstr(&b, "server-sig-algs");
	buf_cstr(&b, "ssh-ed25519,ecdsa-sha2-nistp256,rsa-sha2-256,rsa-sha2-512");
	ssh_send_buf(s, &b);
}

int kex_on_ecdh_init(struct sshs *s, struct rd *r)
{
	struct sv qc = rd_str(r); /* Q_C, client's ephemeral public key */
	if (!rd_end(r) || qc.n != 32) {
		ssh_disconnect(s, SSH_DISC_PROTOCOL_ERROR, "malformed KEX_ECDH_INIT");
		return -1;
	}
	uint8_t qs[32], k[32], h[32];
	if (x25519(qc.p, qs, k) < 0) {
		ssh_disconnect(s, SSH_DISC_KEY_EXCHANGE_FAILED, "curve25519 failed");
		return -1;
	}
	struct buf ks, hb, kmp, sig;
	buf_init(&ks, 4096);
	buf_init(&hb, 2 * SSH_MAX_PACKET);
	buf_init(&kmp, 64);
	buf_init(&sig, 4096);
	const char *hname = hostalgs[s->hostalg].name;
	struct sv blob = s->cfg->host_blob[hostalgs[s->hostalg].key];
	buf_put(&ks, blob.p, blob.n);
	put_mpint(&kmp, k, 32);
	buf_cstr(&hb, s->peer_version);
	static const char sv_[] = "SSH-2.0-wicket_" WICKET_VERSION;
	buf_cstr(&hb, sv_);
	buf_str(&hb, buf_data(&s->ic), buf_used(&s->ic));
	buf_str(&hb, buf_data(&s->is), buf_used(&s->is));
	buf_str(&hb, buf_data(&ks), buf_used(&ks));
	buf_str(&hb, qc.p, 32);
	buf_str(&hb, qs, 32);
	buf_put(&hb, buf_data(&kmp), buf_used(&kmp));
	int rc = -1;
	struct sv hp[] = { { buf_data(&hb), buf_used(&hb) } };
	if (hb.err || ks.err || sha256_parts(hp, 1, h) < 0)
		goto fail;
	if (!s->have_session_id) {
		memcpy(s->session_id, h, 32);
		s->have_session_id = true;
	}
	/* Only the authority holds the host key (privsep.h). */
	if (s->cfg->priv->sign(s->cfg->priv_ctx, sv_from_cstr(hname), h, &sig) < 0)
		goto fail;
	struct sv kv = { buf_data(&kmp), buf_used(&kmp) };
	const struct cipher_info *rx = s->nk_rx.enc, *tx = s->nk_tx.enc;
	if (derive(s, kv, h, 'A', s->nk_rx.iv, rx->ivlen) < 0 ||
	    derive(s, kv, h, 'B', s->nk_tx.iv, tx->ivlen) < 0 ||
	    derive(s, kv, h, 'C', s->nk_rx.key, rx->keylen) < 0 ||
	    derive(s, kv, h, 'D', s->nk_tx.key, tx->keylen) < 0 ||
	    (s->nk_rx.mac && derive(s, kv, h, 'E', s->nk_rx.mackey, s->nk_rx.mac->keylen) < 0) ||
	    (s->nk_tx.mac && derive(s, kv, h, 'F', s->nk_tx.mackey, s->nk_tx.mac->keylen) < 0))
		goto fail;

	struct buf b;
	ssh_pkt_begin(&b, SSH_MSG_KEX_ECDH_REPLY);
	buf_str(&b, buf_data(&ks), buf_used(&ks)); /* K_S */
	buf_str(&b, qs, 32);			   /* Q_S */
	buf_str(&b, buf_data(&sig), buf_used(&sig)); /* signature of H */
	ssh_send_buf(s, &b);
	uint8_t nk = SSH_MSG_NEWKEYS;
	ssh_send(s, &nk, 1);
	cipher_free(&s->tx.c);
	if (cipher_init(&s->tx.c, tx, s->nk_tx.key, s->nk_tx.iv, s->nk_tx.mac, s->nk_tx.mackey,
			true) < 0)
		goto fail;
	OPENSSL_cleanse(s->nk_tx.key, sizeof(s->nk_tx.key));
	OPENSSL_cleanse(s->nk_tx.iv, sizeof(s->nk_tx.iv));
	OPENSSL_cleanse(s->nk_tx.mackey, sizeof(s->nk_tx.mackey));
	if (s->strict)
		s->tx.seq = 0;
	s->tx.bytes = 0;
	s->newkeys_sent = true;
	if (!s->first_kex_done && s->ext_info_c)
		send_ext_info(s);
#ifdef HAVE_ZLIB
	/* Each NEWKEYS starts a fresh zlib stream (as OpenSSH does). */
	comp_end(&s->tx);
	s->tx.zon = s->nk_tx.zlib && s->authed && comp_start(&s->tx, true) == 0;
#endif
	s->tx.zlib = s->nk_tx.zlib;
	kex_after_newkeys_sent(s);
	rc = 0;
fail:
	if (rc < 0)
		ssh_disconnect(s, SSH_DISC_KEY_EXCHANGE_FAILED, "key exchange failed");
	OPENSSL_cleanse(k, sizeof(k));
	OPENSSL_cleanse(kmp.p, kmp.cap);
	OPENSSL_cleanse(hb.p, hb.cap);
	buf_free(&ks);
	buf_free(&hb);
	buf_free(&kmp);
	buf_free(&sig);
	return rc;
}

int kex_on_newkeys(struct sshs *s)
{
	cipher_free(&s->rx.c);
	if (cipher_init(&s->rx.c, s->nk_rx.enc, s->nk_rx.key, s->nk_rx.iv, s->nk_rx.mac,
			s->nk_rx.mackey, false) < 0) {
		ssh_disconnect(s, SSH_DISC_KEY_EXCHANGE_FAILED, "cipher setup failed");
		return -1;
	}
	OPENSSL_cleanse(s->nk_rx.key, sizeof(s->nk_rx.key));
	OPENSSL_cleanse(s->nk_rx.iv, sizeof(s->nk_rx.iv));
	OPENSSL_cleanse(s->nk_rx.mackey, sizeof(s->nk_rx.mackey));
	if (s->strict)
		s->rx.seq = 0;
	s->rx.bytes = 0;
	s->rx.zlib = s->nk_rx.zlib;
#ifdef HAVE_ZLIB
	comp_end(&s->rx);
	s->rx.zon = s->rx.zlib && s->authed && comp_start(&s->rx, false) == 0;
#endif
	s->kex_sent = s->kex_rcvd = s->newkeys_sent = false;
	s->first_kex_done = true;
	s->kex_count++;
	s->kex_time = time(NULL);
	buf_reset(&s->ic);
	buf_reset(&s->is);
	log_debug("ssh: key exchange %u done (%s%s%s)", s->kex_count, s->rx.c.info->name,
		  s->rx.c.mac ? " " : "", s->rx.c.mac ? s->rx.c.mac->name : "");
	return 0;
}

int kex_prewarm(void)
{
	uint8_t peer[32], pub[32], k[32], h[32];
	/* A peer key that is not a low-order point: our own public key. */
	memset(peer, 9, sizeof(peer));
	if (RAND_bytes(h, sizeof(h)) != 1 || x25519(peer, pub, k) < 0 || x25519(pub, peer, k) < 0)
		return -1;
	struct sv p[] = { { k, 32 } };
	int rc = sha256_parts(p, 1, h);
	OPENSSL_cleanse(k, sizeof(k));
	return rc;
}

void kex_wipe(struct sshs *s)
{
	OPENSSL_cleanse(&s->nk_rx, sizeof(s->nk_rx));
	OPENSSL_cleanse(&s->nk_tx, sizeof(s->nk_tx));
	OPENSSL_cleanse(s->session_id, sizeof(s->session_id));
}
