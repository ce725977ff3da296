/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: SSH key parsing and signature verification
 * (host-tool/ssh/sshkey.c): sshkey_from_blob, sshkey_from_openssh_public,
 * sshkey_parse_private and sshkey_verify, the entry points that see bytes
 * from SSH clients and from files.
 *
 * Input: byte 0 picks the entry point (% 4), the rest is its input:
 *   0  a public key blob
 *   1  "TYPE BASE64" (split at the first space)
 *   2  the text of an openssh-key-v1 private key file
 *   3  byte 1 picks the key (% 4: the ed25519, ecdsa, rsa test keys, or 3
 *      for a key blob read first as an SSH string), then SSH strings
 *      algorithm and signature blob; the remaining bytes are the signed data
 *
 * Oracles: a parsed public key re-encodes to a blob that parses back to an
 * equal key, and to a "TYPE BASE64" text that parses back too; a parsed
 * private key signs with exactly the algorithms allowed for its type (never
 * ssh-rsa/SHA-1), its own signatures verify, and an ed25519 one re-formats
 * to a file that parses back to the same key.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "fuzz_keys.h"
#include "log.h"
#include "sshkey.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static struct sshkey *test_keys[3];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	/* Quiet: protocol errors are the point.  WICKET_FUZZ_LOG=3 shows them. */
	log_level = getenv("WICKET_FUZZ_LOG") ? atoi(getenv("WICKET_FUZZ_LOG")) : -1;
	fuzz_load_test_keys(test_keys);
	return 0;
}

#define CHECK(cond) FUZZ_CHECK(cond)

/* Everything a caller may do with a public key it got, plus round trips. */
static void exercise_public(struct sshkey *k)
{
	char fp[SSHKEY_FP_LEN];
	sshkey_fingerprint(k, fp, sizeof(fp));
	CHECK(strncmp(fp, "SHA256:", 7) == 0);
	const char *tn = sshkey_type_name(k);
	CHECK(tn != NULL);
	static const char *const algos[] = { "ssh-ed25519", "ecdsa-sha2-nistp256", "ssh-rsa",
					     "rsa-sha2-256", "rsa-sha2-512", "" };
	for (size_t i = 0; i < sizeof(algos) / sizeof(algos[0]); i++)
		sshkey_algo_allowed(k, sv_from_cstr(algos[i]));
	for (size_t i = 0; i < 3; i++)
		sshkey_equal(k, test_keys[i]);

	struct buf b;
	buf_init(&b, 1 << 20);
	sshkey_put_blob(k, &b);
	CHECK(!b.err);
	struct sshkey *k2 = sshkey_from_blob((struct sv){ buf_data(&b), buf_used(&b) });
	CHECK(k2 != NULL);
	CHECK(sshkey_equal(k, k2));
	CHECK(sshkey_type(k) == sshkey_type(k2));
	sshkey_free(k2);

	buf_reset(&b);
	sshkey_put_openssh_public(k, &b);
	CHECK(!b.err);
	const uint8_t *p = buf_data(&b);
	const uint8_t *sp = memchr(p, ' ', buf_used(&b));
	CHECK(sp != NULL);
	struct sv type = { p, (size_t)(sp - p) };
	struct sv b64 = { sp + 1, buf_used(&b) - type.n - 1 };
	CHECK(sv_eq(type, tn));
	k2 = sshkey_from_openssh_public(type, b64);
	CHECK(k2 != NULL);
	CHECK(sshkey_equal(k, k2));
	sshkey_free(k2);
	buf_free(&b);
}

static void exercise_private(struct sshkey *k)
{
	CHECK(sshkey_has_private(k));
	exercise_public(k);
	static const uint8_t msg[] = "fuzz: sign me";
	static const char *const algos[] = { "ssh-ed25519", "ecdsa-sha2-nistp256", "rsa-sha2-256",
					     "rsa-sha2-512", "ssh-rsa" };
	int signed_with = 0;
	for (size_t i = 0; i < sizeof(algos) / sizeof(algos[0]); i++) {
		struct sv want = sv_from_cstr(algos[i]);
		struct buf sig;
		buf_init(&sig, 4096);
		int r = sshkey_sign_alg(k, want, msg, sizeof(msg), &sig);
		/* Exactly the algorithms allowed for the key; never ssh-rsa (SHA-1). */
		CHECK((r == 0) == sshkey_algo_allowed(k, want));
		if (r == 0) {
			signed_with++;
			struct rd rr;
			rd_init(&rr, buf_data(&sig), buf_used(&sig));
			struct sv algo = rd_str(&rr);
			CHECK(!rr.err && sv_eq(algo, algos[i]));
			CHECK(sshkey_verify(k, algo, (struct sv){ buf_data(&sig), buf_used(&sig) },
					    msg, sizeof(msg)) == 0);
		}
		buf_free(&sig);
	}
	CHECK(signed_with > 0);
	if (sshkey_type(k) != SSHKEY_ED25519)
		return; /* only ed25519 keys are written (the generated host key) */

	struct buf text;
	buf_init(&text, SSHKEY_PRIVATE_TEXT_MAX);
	CHECK(buf_reserve(&text, SSHKEY_PRIVATE_TEXT_MAX) != NULL);
	CHECK(sshkey_format_private(k, "fuzz", &text) == 0);
	char err[128];
	struct sshkey *k2 = sshkey_parse_private((struct sv){ buf_data(&text), buf_used(&text) },
						 err, sizeof(err));
	CHECK(k2 != NULL);
	CHECK(sshkey_equal(k, k2));
	sshkey_free(k2);
	buf_free(&text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	unsigned op = data[0] % 4;
	struct sv in = { data + 1, size - 1 };
	struct sshkey *k = NULL;
	switch (op) {
	case 0:
		k = sshkey_from_blob(in);
		if (k)
			exercise_public(k);
		break;
	case 1: {
		const uint8_t *sp = memchr(in.p, ' ', in.n);
		struct sv type = sp ? (struct sv){ in.p, (size_t)(sp - in.p) } : in;
		struct sv b64 = sp ? (struct sv){ sp + 1, in.n - type.n - 1 } : SV_NULL;
		k = sshkey_from_openssh_public(type, b64);
		if (k)
			exercise_public(k);
		break;
	}
	case 2: {
		char err[256];
		err[0] = 0;
		k = sshkey_parse_private(in, err, sizeof(err));
		if (k)
			exercise_private(k);
		else
			CHECK(memchr(err, 0, sizeof(err)) != NULL && err[0]);
		break;
	}
	case 3: {
		if (in.n < 1)
			return 0;
		unsigned which = in.p[0] % 4;
		struct rd r;
		rd_init(&r, in.p + 1, in.n - 1);
		const struct sshkey *key = NULL;
		if (which == 3) {
			k = sshkey_from_blob(rd_str(&r));
			key = k;
		} else {
			key = test_keys[which];
		}
		struct sv algo = rd_str(&r);
		struct sv sig = rd_str(&r);
		struct sv msg = rd_rest(&r);
		if (r.err || !key)
			break;
		sshkey_verify(key, algo, sig, msg.p, msg.n);
		break;
	}
	}
	sshkey_free(k);
	return 0;
}
