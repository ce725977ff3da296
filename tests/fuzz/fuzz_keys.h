/* SPDX-License-Identifier: MIT */
/*
 * Public halves of the test-only keys in tests/fuzz/keys/ (made with
 * ssh-keygen for the fuzz corpora; never trust them anywhere).  Seeds that
 * authenticate or verify are signed with the private halves by mkcorpus.py.
 */
#ifndef WICKET_FUZZ_KEYS_H
#define WICKET_FUZZ_KEYS_H

#include <stdio.h>
#include <stdlib.h>

#include "sshkey.h"

#define FUZZ_KEY_ED25519_TYPE "ssh-ed25519"
#define FUZZ_KEY_ED25519_B64 \
	"AAAAC3NzaC1lZDI1NTE5AAAAIPttbqCKVgh0TwPZR2boRP5C4WBwgvgVMhmrh9bk8Weq"
#define FUZZ_KEY_ECDSA_TYPE "ecdsa-sha2-nistp256"
#define FUZZ_KEY_ECDSA_B64 \
	"AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBID/plpE/nLfymitSkvrb0ucgUNE8vD+rQKYR9JIAyxJTEAk4AWKwaIHcUpCZbwsBmSfikJ+3LD7yweAj7R6o6E="
#define FUZZ_KEY_RSA_TYPE "ssh-rsa"
#define FUZZ_KEY_RSA_B64 \
	"AAAAB3NzaC1yc2EAAAADAQABAAABAQDLfyPMFIyn/s/SLgpJEXv2gkIePDj/WajT2AQKPkB8g9xRjFMM03LYcdMcANo+pBh8PVnqj3xNywO6+SOXczOBR916880rkbUycSHtIXOwi0Y5k4H/tzl884fUooNoVYx6p1N2xcYDCUwGoJ9S3Ky2phCXcTEqZA6doO+wy6oXaWN+MKWjI0yelFWdj6HdlHeyd9rZx9wov6hFvRoGMTcw3rlZtaG5gS1Mg8Q5O1WBks8nqzyUDNRiCwfzcZEuRhmWt4t9Wi5Y7ZEip3z9DEhCTq84cEiPxWX3hIUic0sNvfcyKSeoCNT3F2IXqUtLtDoEAFL0DrPshDPkAlcuTjQX"

/* The three public keys above, parsed; a key that does not parse is a bug here. */
static inline void fuzz_load_test_keys(struct sshkey *keys[3])
{
	static const char *const text[3][2] = {
		{ FUZZ_KEY_ED25519_TYPE, FUZZ_KEY_ED25519_B64 },
		{ FUZZ_KEY_ECDSA_TYPE, FUZZ_KEY_ECDSA_B64 },
		{ FUZZ_KEY_RSA_TYPE, FUZZ_KEY_RSA_B64 },
	};
	for (int i = 0; i < 3; i++) {
		keys[i] = sshkey_from_openssh_public(sv_from_cstr(text[i][0]),
						     sv_from_cstr(text[i][1]));
		if (!keys[i]) {
			fprintf(stderr, "fuzz: built-in test key %s does not parse\n", text[i][0]);
			abort();
		}
	}
}

/* An invariant the code under test must keep: a crash libFuzzer reports. */
#define FUZZ_CHECK(cond)                                                                   \
	do {                                                                               \
		if (!(cond)) {                                                             \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
			abort();                                                           \
		}                                                                          \
	} while (0)

#endif
