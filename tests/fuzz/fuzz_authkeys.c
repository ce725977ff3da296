/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: authorized_keys parsing and matching
 * (host-tool/ssh/authkeys.c, with sshkey.c for the keys it holds).
 *
 * The whole input is the text of an authorized_keys file.  It is parsed
 * with authkeys_parse(), then each of the test keys (fuzz_keys.h) is
 * matched against it for a set of client addresses (none, IPv4, IPv6,
 * IPv4-mapped IPv6, link-local with a zone) and at three times (for
 * expiry-time=), and the options of a match are read the way relay.c and
 * the authority read them: permitopen=/permitlisten= queries, a deep copy,
 * the environment= filter.
 *
 * Oracles: parsed + invalid lines never exceed the number of lines; a
 * match's comment is a NUL-terminated printable string and its command (if
 * any) is a NUL-terminated copy; a key never matches for a client when an
 * earlier call said the same (key, client) did not match (determinism).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "authkeys.h"
#include "buf.h"
#include "fuzz_keys.h"
#include "log.h"
#include "sshkey.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static struct sshkey *test_keys[3];

static const char *const addrs[] = {
	NULL, "192.0.2.7", "10.1.2.3", "2001:db8::1", "::ffff:192.0.2.7", "fe80::1%eth0", "UNKNOWN",
};
#define NADDRS (sizeof(addrs) / sizeof(addrs[0]))

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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct authkeys *ak = authkeys_parse("fuzz", (struct sv){ data, size });
	if (!ak)
		return 0; /* out of memory only */
	size_t lines = 1;
	for (size_t i = 0; i < size; i++)
		lines += data[i] == '\n';
	CHECK(authkeys_count(ak) + authkeys_invalid(ak) <= lines);

	for (size_t k = 0; k < 3; k++) {
		for (size_t a = 0; a < NADDRS; a++) {
			struct authkeys_opts o;
			int r = authkeys_match(ak, test_keys[k], addrs[a], &o);
			if (r == 0) {
				CHECK(memchr(o.comment, 0, sizeof(o.comment)) != NULL);
				for (const char *c = o.comment; *c; c++)
					CHECK(*c >= 0x20 && *c < 0x7f);
				if (o.command)
					CHECK(strlen(o.command) < size + 1);
				authkeys_allows_port_forwarding(&o);
				authkeys_allows_pty(&o);
				authkeys_allows_agent(&o);
				authkeys_allows_x11(&o);
				static const char *const hosts[] = { "localhost", "127.0.0.1", "::1",
								     "*", "", "Db.Example" };
				for (size_t h = 0; h < 6; h++)
					for (uint32_t port = 0; port < 3; port++) {
						struct sv hv = sv_from_cstr(hosts[h]);
						authkeys_permits_open(&o, hv, port * 40000);
						authkeys_permits_listen(&o, hv, port * 40000);
					}
				authkeys_permits_open_path(&o);
				struct authkeys_opts c;
				if (authkeys_opts_copy(&c, &o) == 0) {
					CHECK(c.nenv == o.nenv && c.npermitopen == o.npermitopen &&
					      c.npermitlisten == o.npermitlisten);
					for (size_t e = 0; e < c.nenv; e++)
						CHECK(strcmp(c.env[e], o.env[e]) == 0 &&
						      strchr(c.env[e], '='));
					static const char *const permits[] = { NULL, "yes", "no",
									       "A*,!B", "" };
					authkeys_env_filter(&c, permits[(k + a) % 5]);
					CHECK(c.nenv <= o.nenv);
					authkeys_opts_clear(&c);
				}
			} else {
				CHECK(o.command == NULL && !o.restrict_all && !o.comment[0]);
			}
			struct authkeys_opts o2;
			int r2 = authkeys_match(ak, test_keys[k], addrs[a], &o2);
			CHECK(r == r2);
			/* Long ago nothing has expired yet; far ahead, everything with
			 * an expiry has (so a match then implies one now). */
			static const uint64_t times[] = { 1, 4102444800ull, UINT64_MAX };
			for (size_t t = 0; t < 3; t++) {
				struct authkeys_opts o3;
				int r3 = authkeys_match_at(ak, test_keys[k], addrs[a], times[t], &o3);
				if (t == 2)
					CHECK(r3 == -1 || (r == 0 && o3.expiry == 0));
				authkeys_opts_clear(&o3);
			}
			authkeys_opts_clear(&o);
			authkeys_opts_clear(&o2);
		}
	}
	/* A key that is not in any file: never matches. */
	struct authkeys_opts o;
	CHECK(authkeys_match(ak, NULL, "192.0.2.7", &o) == -1);
	authkeys_free(ak);
	return 0;
}
