/* SPDX-License-Identifier: MIT */
/* lib/wire: greeting scan (with stale bytes before it) and packet framing. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "tap.h"
#include "wire.h"

#define PFX WIRE_GREETING_PREFIX
#define PLEN (sizeof(PFX) - 1)

static void feed(struct buf *b, const void *p, size_t n)
{
	buf_put(b, p, n);
}

static void feed_str(struct buf *b, const char *s)
{
	feed(b, s, strlen(s));
}

static void test_greeting_simple(void)
{
	struct buf b;
	char ver[64];
	buf_init(&b, 1 << 20);
	feed_str(&b, PFX "putty-0.78\r\n");
	is_int(wire_scan_greeting(&b, ver, sizeof(ver)), 1, "plain greeting with CRLF found");
	is_str(ver, "putty-0.78", "version without CR");
	is_int(buf_used(&b), 0, "greeting line fully consumed");
	buf_reset(&b);

	feed_str(&b, PFX "bare-lf\n");
	feed(&b, "\0\0\0\1\2", 5);
	is_int(wire_scan_greeting(&b, ver, sizeof(ver)), 1, "greeting with bare LF found");
	is_str(ver, "bare-lf", "version with bare LF");
	is_mem(buf_data(&b), buf_used(&b), "\0\0\0\1\2", 5, "bytes after the line are kept");
	buf_reset(&b);

	/* Empty version. */
	feed_str(&b, PFX "\r\n");
	is_int(wire_scan_greeting(&b, ver, sizeof(ver)), 1, "greeting with empty version");
	is_str(ver, "", "empty version string");
	buf_reset(&b);

	/* Version longer than the caller's buffer is truncated, not overflowed. */
	char small[5];
	memset(small, 'Z', sizeof(small));
	feed_str(&b, PFX "abcdefghij\r\n");
	is_int(wire_scan_greeting(&b, small, sizeof(small)), 1, "found with small ver buffer");
	is_str(small, "abcd", "version truncated to verlen-1");
	buf_reset(&b);

	/* Control bytes in the version are sanitised. */
	feed_str(&b, PFX "a\tb\x1b" "c\r\n");
	is_int(wire_scan_greeting(&b, ver, sizeof(ver)), 1, "found with control bytes");
	is_str(ver, "a?b?c", "control bytes in version become ?");

	/* Only a CR inside the line, not at its end, stays (as ?). */
	buf_reset(&b);
	feed_str(&b, PFX "x\ry\n");
	is_int(wire_scan_greeting(&b, ver, sizeof(ver)), 1, "found with inner CR");
	is_str(ver, "x?y", "inner CR is not stripped");

	/* verlen 0: just consume. */
	buf_reset(&b);
	feed_str(&b, PFX "v\r\nrest");
	is_int(wire_scan_greeting(&b, NULL, 0), 1, "verlen 0 accepted");
	is_mem(buf_data(&b), buf_used(&b), "rest", 4, "line consumed with verlen 0");
	buf_free(&b);
}

static void test_greeting_after_garbage(void)
{
	struct buf b;
	char ver[64];
	buf_init(&b, 1 << 20);
	feed_str(&b, "login: \r\nstale bytes\n\x00\xff" "SSH-2.0-OpenSSH\r\n");
	feed_str(&b, PFX "after-garbage\r\n");
	is_int(wire_scan_greeting(&b, ver, sizeof(ver)), 1, "greeting found after garbage");
	is_str(ver, "after-garbage", "version after garbage");
	is_int(buf_used(&b), 0, "garbage and line consumed");
	buf_reset(&b);

	/* Garbage holding a partial prefix, even one almost complete. */
	char partial[PLEN];
	memcpy(partial, PFX, PLEN - 1);
	partial[PLEN - 1] = 0;
	feed_str(&b, "SSHCONNECTION@putty");
	feed_str(&b, partial);
	feed_str(&b, "SSHCONNECTION");
	feed_str(&b, PFX "real\r\n");
	is_int(wire_scan_greeting(&b, ver, sizeof(ver)), 1, "greeting found after partial prefixes");
	is_str(ver, "real", "version after partial prefixes");
	buf_reset(&b);

	/* Partial prefix, then a complete one starting inside the partial's tail. */
	feed_str(&b, "SSHSSHCONNECTION@putty.projects.tartarus.org-2.SSHCONNECTION"
		     "@putty.projects.tartarus.org-2.0-ov\n");
	is_int(wire_scan_greeting(&b, ver, sizeof(ver)), 1, "overlapping partial prefix");
	is_str(ver, "ov", "version after overlapping partial prefix");
	buf_free(&b);
}

/* Feed @s one byte at a time, scanning after each; return the first result != 0. */
static int feed_bytewise(struct buf *b, const char *s, size_t n, char *ver, size_t verlen,
			 size_t *at, size_t *maxused)
{
	*maxused = 0;
	for (size_t i = 0; i < n; i++) {
		feed(b, s + i, 1);
		int r = wire_scan_greeting(b, ver, verlen);
		if (buf_used(b) > *maxused)
			*maxused = buf_used(b);
		if (r) {
			*at = i;
			return r;
		}
	}
	*at = n;
	return 0;
}

static void test_greeting_bytewise(void)
{
	struct buf b;
	char ver[64];
	size_t at, maxused;
	const char *s = "noise SSHCONN SSHCONNECTION@putty.projects." PFX "tiny-steps\r\nAFTER";
	size_t n = strlen(s);
	buf_init(&b, 1 << 20);
	int r = feed_bytewise(&b, s, n, ver, sizeof(ver), &at, &maxused);
	is_int(r, 1, "byte-at-a-time greeting found");
	is_int(at, n - strlen("AFTER") - 1, "found exactly when the LF arrived");
	is_str(ver, "tiny-steps", "byte-at-a-time version");
	is_int(buf_used(&b), 0, "nothing left after the line");
	feed_str(&b, "AFTER");
	is_mem(buf_data(&b), buf_used(&b), "AFTER", 5, "later bytes go to the packet stream");
	buf_free(&b);

	/* CR and LF in separate appends. */
	buf_init(&b, 1 << 20);
	feed_str(&b, PFX "split\r");
	is_int(wire_scan_greeting(&b, ver, sizeof(ver)), 0, "line ending in CR only: need more");
	feed_str(&b, "\n");
	is_int(wire_scan_greeting(&b, ver, sizeof(ver)), 1, "LF completes the line");
	is_str(ver, "split", "CR stripped across appends");
	buf_free(&b);
}

static void test_greeting_too_long(void)
{
	struct buf b;
	char ver[300];
	char line[PLEN + WIRE_MAX_VERSION + 8];

	/* Exactly WIRE_MAX_VERSION characters is allowed, with CRLF and with LF. */
	buf_init(&b, 1 << 20);
	memcpy(line, PFX, PLEN);
	memset(line + PLEN, 'v', WIRE_MAX_VERSION);
	memcpy(line + PLEN + WIRE_MAX_VERSION, "\r\n", 2);
	feed(&b, line, PLEN + WIRE_MAX_VERSION + 2);
	is_int(wire_scan_greeting(&b, ver, sizeof(ver)), 1, "version of %d chars + CRLF ok",
	       WIRE_MAX_VERSION);
	is_int(strlen(ver), WIRE_MAX_VERSION, "full version copied");
	buf_reset(&b);
	line[PLEN + WIRE_MAX_VERSION] = '\n';
	feed(&b, line, PLEN + WIRE_MAX_VERSION + 1);
	is_int(wire_scan_greeting(&b, ver, sizeof(ver)), 1, "version of %d chars + LF ok",
	       WIRE_MAX_VERSION);
	buf_reset(&b);

	/* One more character is refused. */
	memset(line + PLEN, 'v', WIRE_MAX_VERSION + 1);
	memcpy(line + PLEN + WIRE_MAX_VERSION + 1, "\r\n", 2);
	feed(&b, line, PLEN + WIRE_MAX_VERSION + 3);
	is_int(wire_scan_greeting(&b, ver, sizeof(ver)), -EPROTO,
	       "version of %d chars + CRLF gives -EPROTO", WIRE_MAX_VERSION + 1);
	buf_reset(&b);

	/* A line that never ends is refused once it is clearly too long. */
	feed_str(&b, PFX);
	int r = 0;
	size_t fed = 0;
	for (; fed < 10000 && r == 0; fed++) {
		feed(&b, "x", 1);
		r = wire_scan_greeting(&b, ver, sizeof(ver));
	}
	is_int(r, -EPROTO, "endless version line gives -EPROTO");
	ok(fed <= WIRE_MAX_VERSION + 3, "refused after %zu version bytes (bound %d)", fed,
	   WIRE_MAX_VERSION);
	ok(buf_used(&b) <= PLEN + WIRE_MAX_VERSION + 3, "buffer bounded while waiting (%zu)",
	   buf_used(&b));
	buf_free(&b);
}

static void test_greeting_garbage_bounded(void)
{
	struct buf b;
	char ver[64];
	buf_init(&b, 1 << 20);
	uint8_t junk[997];
	unsigned seed = 12345;
	size_t maxused = 0;
	int r = 0;
	/* ~1 MB of garbage, including 'S' bytes and prefix fragments. */
	for (int round = 0; round < 1000 && r == 0; round++) {
		for (size_t i = 0; i < sizeof(junk); i++) {
			seed = seed * 1103515245u + 12345u;
			junk[i] = (uint8_t)(seed >> 16);
			if (junk[i] == '\n')
				junk[i] = 'S';
		}
		memcpy(junk + 100, PFX, PLEN - 1); /* a near miss in every chunk */
		junk[100 + PLEN - 1] = 'x';         /* ...that must stay a miss */
		memcpy(junk + sizeof(junk) - 20, PFX, 20); /* a fragment at the chunk tail */
		feed(&b, junk, sizeof(junk));
		r = wire_scan_greeting(&b, ver, sizeof(ver));
		if (buf_used(&b) > maxused)
			maxused = buf_used(&b);
	}
	is_int(r, 0, "garbage only: still waiting");
	ok(maxused < PLEN, "garbage only: buffer stays below the prefix length (max %zu < %zu)",
	   maxused, PLEN);
	ok(!b.err, "garbage only: buffer never hit its cap");
	/* The kept tail can still complete into a greeting. */
	feed_str(&b, PFX + 20);
	feed_str(&b, "tail\n");
	is_int(wire_scan_greeting(&b, ver, sizeof(ver)), 1,
	       "prefix split between garbage tail and new bytes is found");
	is_str(ver, "tail", "version of split prefix");
	buf_free(&b);

	/* Byte-at-a-time garbage too. */
	buf_init(&b, 1 << 20);
	maxused = 0;
	for (int i = 0; i < 5000; i++) {
		uint8_t c = (uint8_t)PFX[i % (PLEN - 1)];
		feed(&b, &c, 1);
		wire_scan_greeting(&b, ver, sizeof(ver));
		if (buf_used(&b) > maxused)
			maxused = buf_used(&b);
	}
	ok(maxused < PLEN, "bytewise near-miss garbage stays below prefix length (max %zu)",
	   maxused);
	buf_free(&b);
}

static void put_len(struct buf *b, uint32_t len)
{
	buf_u32(b, len);
}

static void test_packets(void)
{
	struct buf b;
	struct sv pkt;
	uint32_t len;
	buf_init(&b, WIRE_MAX_PACKET * 2 + 64);

	/* Fewer than 4 bytes: incomplete, len_out untouched. */
	feed(&b, "\0\0", 2);
	len = 777;
	is_int(wire_next_packet(&b, &pkt, &len), 0, "2 bytes: incomplete");
	is_int(len, 777, "len_out untouched while the length is incomplete");
	feed(&b, "\0", 1);
	is_int(wire_next_packet(&b, &pkt, &len), 0, "3 bytes: incomplete");
	buf_reset(&b);

	/* Zero length. */
	put_len(&b, 0);
	is_int(wire_next_packet(&b, &pkt, &len), -EPROTO, "length 0 gives -EPROTO");
	is_int(len, 0, "len_out 0");
	buf_reset(&b);

	/* Length 1. */
	put_len(&b, 1);
	is_int(wire_next_packet(&b, &pkt, &len), 0, "length 1 without payload: incomplete");
	buf_u8(&b, 94);
	is_int(wire_next_packet(&b, &pkt, &len), 1, "length 1 complete");
	ok(pkt.n == 1 && pkt.p[0] == 94, "length 1 payload");
	is_int(buf_used(&b), 0, "length 1 packet consumed");
	is_int(len, 1, "len_out 1");

	/* Exactly WIRE_MAX_PACKET. */
	buf_reset(&b);
	put_len(&b, WIRE_MAX_PACKET);
	uint8_t *w = buf_reserve(&b, WIRE_MAX_PACKET);
	ok(w != NULL, "room for a maximal packet");
	for (uint32_t i = 0; i < WIRE_MAX_PACKET; i++)
		w[i] = (uint8_t)(i % 251);
	buf_commit(&b, WIRE_MAX_PACKET - 1);
	is_int(wire_next_packet(&b, &pkt, &len), 0, "max packet minus one byte: incomplete");
	buf_commit(&b, 1);
	is_int(wire_next_packet(&b, &pkt, &len), 1, "WIRE_MAX_PACKET accepted");
	ok(pkt.n == WIRE_MAX_PACKET && pkt.p[0] == 0 && pkt.p[WIRE_MAX_PACKET - 1] ==
	   (uint8_t)((WIRE_MAX_PACKET - 1) % 251), "max packet payload intact");

	/* One more is too big, even before the payload arrives. */
	buf_reset(&b);
	put_len(&b, WIRE_MAX_PACKET + 1);
	is_int(wire_next_packet(&b, &pkt, &len), -EMSGSIZE, "WIRE_MAX_PACKET+1 gives -EMSGSIZE");
	is_int(len, WIRE_MAX_PACKET + 1, "len_out reports the bad length");
	buf_reset(&b);
	put_len(&b, 0xFFFFFFFFu);
	is_int(wire_next_packet(&b, &pkt, &len), -EMSGSIZE, "0xFFFFFFFF gives -EMSGSIZE");
	is_int(len, 0xFFFFFFFFu, "len_out 0xFFFFFFFF");
	buf_reset(&b);
	put_len(&b, 0x80000000u);
	is_int(wire_next_packet(&b, &pkt, &len), -EMSGSIZE, "0x80000000 gives -EMSGSIZE");
	buf_free(&b);
}

static void test_packets_incremental(void)
{
	struct buf b;
	struct sv pkt;
	uint32_t len;
	buf_init(&b, 1 << 16);

	/* Three packets, then a fourth incomplete one, all in one buffer. */
	static const uint8_t stream[] = {
		0, 0, 0, 1, 2,			 /* IGNORE, length 1 */
		0, 0, 0, 5, 94, 'a', 'b', 'c', 'd', /* length 5 */
		0, 0, 0, 2, 96, 0,		 /* length 2 */
		0, 0, 0, 3, 97, 1,		 /* length 3, one byte short */
	};
	/* Fed one byte at a time, each packet appears exactly when complete. */
	size_t seen = 0;
	size_t complete_at[3] = { 4, 13, 19 };
	int bad = 0;
	for (size_t i = 0; i < sizeof(stream); i++) {
		feed(&b, stream + i, 1);
		int r;
		while ((r = wire_next_packet(&b, &pkt, &len)) == 1) {
			if (seen >= 3 || complete_at[seen] != i)
				bad++;
			seen++;
		}
		if (r != 0)
			bad++;
	}
	is_int(seen, 3, "three complete packets when fed bytewise");
	is_int(bad, 0, "each packet surfaced at the byte that completed it");
	is_int(buf_used(&b), 6, "partial fourth packet left in the buffer");
	buf_reset(&b);

	feed(&b, stream, sizeof(stream));
	is_int(wire_next_packet(&b, &pkt, &len), 1, "packet 1 of buffer");
	is_mem(pkt.p, pkt.n, "\2", 1, "packet 1 payload");
	is_int(wire_next_packet(&b, &pkt, &len), 1, "packet 2 of buffer");
	is_mem(pkt.p, pkt.n, "^abcd", 5, "packet 2 payload");
	is_int(wire_next_packet(&b, &pkt, &len), 1, "packet 3 of buffer");
	is_mem(pkt.p, pkt.n, "`\0", 2, "packet 3 payload");
	is_int(wire_next_packet(&b, &pkt, &len), 0, "packet 4 incomplete");
	is_int(len, 3, "packet 4 length already known");
	buf_u8(&b, 2);
	is_int(wire_next_packet(&b, &pkt, &len), 1, "packet 4 complete after one more byte");
	is_mem(pkt.p, pkt.n, "a\1\2", 3, "packet 4 payload");
	is_int(wire_next_packet(&b, &pkt, &len), 0, "buffer drained");
	buf_free(&b);
}

static void test_put_greeting(void)
{
	struct buf b;
	buf_init(&b, 1024);
	wire_put_greeting(&b, "wicket-0.1");
	const char *want = "SSHCONNECTION@putty.projects.tartarus.org-2.0-wicket-0.1\r\n";
	is_mem(buf_data(&b), buf_used(&b), want, strlen(want), "wire_put_greeting line");
	char ver[64];
	is_int(wire_scan_greeting(&b, ver, sizeof(ver)), 1, "own greeting scans back");
	is_str(ver, "wicket-0.1", "own greeting version round trip");
	buf_free(&b);
}

/* A host that died mid-greeting: the next host's greeting wins. */
static void test_greeting_cut_off(void)
{
	struct buf b;
	char ver[64];
	size_t skipped = 0;
	buf_init(&b, 1 << 20);
	feed_str(&b, "xyz" PFX "wic" PFX "real\r\nNEXT");
	is_int(wire_scan_greeting_skip(&b, ver, sizeof(ver), &skipped), 1,
	       "greeting after a cut-off one found");
	is_str(ver, "real", "the later greeting's version, not the cut line");
	is_int(skipped, 3 + PLEN + 3, "garbage and the cut greeting counted as skipped");
	is_mem(buf_data(&b), buf_used(&b), "NEXT", 4, "bytes after the line kept");
	buf_reset(&b);

	/* The second prefix still arriving: wait for it, then take it. */
	skipped = 0;
	feed_str(&b, PFX "wicket_0.1 nonce@wic");
	is_int(wire_scan_greeting_skip(&b, ver, sizeof(ver), &skipped), 0,
	       "cut-off line without its end: need more");
	feed_str(&b, PFX "re");
	is_int(wire_scan_greeting_skip(&b, ver, sizeof(ver), &skipped), 0,
	       "second greeting incomplete: need more");
	feed_str(&b, "al\n");
	is_int(wire_scan_greeting_skip(&b, ver, sizeof(ver), &skipped), 1, "second greeting found");
	is_str(ver, "real", "version of the second greeting");
	is_int(skipped, PLEN + strlen("wicket_0.1 nonce@wic"), "the whole cut line skipped");
	buf_reset(&b);

	/* Several cut-offs in a row, one byte at a time. */
	const char *s = PFX "a" PFX PFX "bb" PFX "done\r\n";
	size_t at, maxused;
	is_int(feed_bytewise(&b, s, strlen(s), ver, sizeof(ver), &at, &maxused), 1,
	       "bytewise: the last of several cut greetings found");
	is_str(ver, "done", "bytewise: its version");
	is_int(at, strlen(s) - 1, "bytewise: found when its LF arrived");
	buf_free(&b);
}

static void test_find_greeting(void)
{
	const uint8_t *p = (const uint8_t *)"ab" PFX "v\n";
	size_t n = 2 + PLEN + 2;
	is_int(wire_find_greeting(p, n), 2, "prefix found at its offset");
	is_int(wire_find_greeting(p, 2 + PLEN), 2, "prefix that just fits found");
	is_int(wire_find_greeting(p, 2 + PLEN - 1), 2 + PLEN - 1, "cut prefix: not found (n)");
	is_int(wire_find_greeting(p, 0), 0, "empty: n");
	p = (const uint8_t *)"SSSSHCONNECTION@putty.projects.tartarus.org-2.0";
	is_int(wire_find_greeting(p, strlen((const char *)p)), strlen((const char *)p),
	       "near miss: not found");
}

static void test_greeting_token(void)
{
	char v[WIRE_TOKEN_MAX + 1];
	ok(wire_greeting_token("wicket_1 nonce@wicket=ab12", WIRE_NONCE_KEY, v, sizeof(v)),
	   "token found");
	is_str(v, "ab12", "token value");
	ok(wire_greeting_token("wicketd_1 x=y reply@wicket=- more", WIRE_REPLY_KEY, v, sizeof(v)),
	   "token among other comments");
	is_str(v, "-", "value up to the next space");
	ok(!wire_greeting_token("nonce@wicket=ab12", WIRE_NONCE_KEY, v, sizeof(v)),
	   "the software-version itself is no comment");
	ok(!wire_greeting_token("w xnonce@wicket=1 nonce@wicketx=2", WIRE_NONCE_KEY, v, sizeof(v)),
	   "only the whole key counts");
	ok(!wire_greeting_token("w nonce@wicket=", WIRE_NONCE_KEY, v, sizeof(v)), "empty value refused");
	ok(!wire_greeting_token("w nonce@wicket=a/b", WIRE_NONCE_KEY, v, sizeof(v)),
	   "value with a bad character refused");
	ok(!wire_greeting_token("w nonce@wicket=a?b", WIRE_NONCE_KEY, v, sizeof(v)),
	   "value with a sanitised control byte refused");
	char longv[64];
	memset(longv, 0, sizeof(longv));
	strcpy(longv, "w nonce@wicket=");
	memset(longv + strlen(longv), 'a', WIRE_TOKEN_MAX);
	ok(wire_greeting_token(longv, WIRE_NONCE_KEY, v, sizeof(v)), "value of WIRE_TOKEN_MAX ok");
	strcat(longv, "a");
	ok(!wire_greeting_token(longv, WIRE_NONCE_KEY, v, sizeof(v)), "one more character refused");
	char tiny[3];
	ok(!wire_greeting_token("w nonce@wicket=abc", WIRE_NONCE_KEY, tiny, sizeof(tiny)),
	   "value longer than the caller's buffer refused");
	ok(!wire_greeting_token("w", WIRE_NONCE_KEY, v, sizeof(v)), "absent");
}

static void put_pkt(struct buf *b, uint8_t type, size_t extra)
{
	buf_u32(b, (uint32_t)(1 + extra));
	buf_u8(b, type);
	for (size_t i = 0; i < extra; i++)
		buf_u8(b, (uint8_t)i);
}

static void test_disconnect_ahead(void)
{
	struct buf b;
	size_t end = 0;
	buf_init(&b, 1 << 20);
	put_pkt(&b, 90, 30);
	put_pkt(&b, 2, 3);
	size_t want = buf_used(&b) + 4 + 1 + 12;
	put_pkt(&b, 1, 12);
	put_pkt(&b, 90, 5);
	ok(wire_disconnect_ahead(buf_data(&b), buf_used(&b), &end),
	   "DISCONNECT after two packets found");
	is_int(end, want, "end is just past the DISCONNECT");
	ok(!wire_disconnect_ahead(buf_data(&b), want - 1, &end), "DISCONNECT cut short: no");
	ok(!wire_disconnect_ahead(buf_data(&b), 4, &end), "a lone length: no");
	buf_reset(&b);
	put_pkt(&b, 90, 3);
	buf_put(&b, "SSHC", 4);
	put_pkt(&b, 1, 12);
	ok(!wire_disconnect_ahead(buf_data(&b), buf_used(&b), &end),
	   "a bad length stops the walk before a DISCONNECT");
	buf_reset(&b);
	buf_u32(&b, 0);
	put_pkt(&b, 1, 12);
	ok(!wire_disconnect_ahead(buf_data(&b), buf_used(&b), &end), "zero length stops the walk");
	ok(!wire_disconnect_ahead(buf_data(&b), 0, &end), "empty: no");
	buf_free(&b);
}

static void test_packets_whole(void)
{
	struct buf b;
	buf_init(&b, 1 << 20);
	ok(wire_packets_whole(buf_data(&b), 0), "nothing: whole");
	put_pkt(&b, 90, 23);
	put_pkt(&b, 98, 4);
	ok(wire_packets_whole(buf_data(&b), buf_used(&b)), "two whole packets");
	ok(!wire_packets_whole(buf_data(&b), buf_used(&b) - 1), "the second cut short");
	ok(!wire_packets_whole(buf_data(&b), 2), "half a length");
	buf_u32(&b, 0);
	ok(!wire_packets_whole(buf_data(&b), buf_used(&b)), "a zero length");
	buf_reset(&b);
	feed_str(&b, "and more text");
	ok(!wire_packets_whole(buf_data(&b), buf_used(&b)), "text");
	buf_free(&b);
}

static void test_put_greeting_comment(void)
{
	struct buf b;
	char ver[64], v[WIRE_TOKEN_MAX + 1];
	buf_init(&b, 1024);
	wire_put_greeting_ex(&b, "wicket_1", WIRE_NONCE_KEY "=0123abcd");
	const char *want = PFX "wicket_1 nonce@wicket=0123abcd\r\n";
	is_mem(buf_data(&b), buf_used(&b), want, strlen(want), "greeting with a comment");
	is_int(wire_scan_greeting(&b, ver, sizeof(ver)), 1, "scans back");
	ok(wire_greeting_token(ver, WIRE_NONCE_KEY, v, sizeof(v)) && strcmp(v, "0123abcd") == 0,
	   "its nonce reads back");
	wire_put_greeting_ex(&b, "plain", NULL);
	want = PFX "plain\r\n";
	is_mem(buf_data(&b), buf_used(&b), want, strlen(want), "NULL comment: plain greeting");
	buf_reset(&b);
	wire_put_greeting_ex(&b, "plain", "");
	is_mem(buf_data(&b), buf_used(&b), want, strlen(want), "empty comment: plain greeting");
	buf_free(&b);
}

int main(void)
{
	test_greeting_simple();
	test_greeting_after_garbage();
	test_greeting_bytewise();
	test_greeting_too_long();
	test_greeting_garbage_bounded();
	test_packets();
	test_packets_incremental();
	test_put_greeting();
	test_greeting_cut_off();
	test_find_greeting();
	test_greeting_token();
	test_disconnect_ahead();
	test_packets_whole();
	test_put_greeting_comment();
	return done_testing();
}
