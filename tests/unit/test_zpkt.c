/* SPDX-License-Identifier: MIT */
/* zlib@wicket packet compression (lib/zpkt.c). */
#include <errno.h>
#include <stdio.h>
#include <sys/types.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "tap.h"
#include "zpkt.h"

#define MAX (256u * 1024u)

/* Deflate @p into one framed packet, inflate it back through @i: equal? */
static bool round_trip(struct zpkt *d, struct zpkt *i, const uint8_t *p, size_t n, size_t *clen)
{
	struct buf w, back;
	buf_init(&w, 2 * MAX);
	buf_init(&back, MAX + 1);
	bool ok = zpkt_deflate(d, p, n, &w) == 0 && buf_used(&w) >= 4;
	if (ok) {
		uint32_t l = get_be32(buf_data(&w));
		ok = l == buf_used(&w) - 4 &&
		     zpkt_inflate(i, buf_data(&w) + 4, l, &back, MAX) == 0 &&
		     buf_used(&back) == n && memcmp(buf_data(&back), p, n) == 0;
		*clen = l;
	}
	buf_free(&w);
	buf_free(&back);
	return ok;
}

int main(void)
{
	if (!zpkt_available()) {
		skip(1, "built without zlib");
		return done_testing();
	}
	struct zpkt *d = zpkt_new(true), *i = zpkt_new(false);
	ok(d && i, "both directions");
	/* Text-like packets: one stream across packets compresses well. */
	char line[200];
	size_t raw = 0, comp = 0;
	bool all = true;
	for (int k = 0; k < 400; k++) {
		int n = snprintf(line, sizeof(line),
				 "Dec  2 00:%02d:%02d host kernel: [%6d.%03d] eth0: link up, 1000Mbps, "
				 "full duplex, flow control rx/tx\n",
				 k / 60, k % 60, 1000 + k, k % 1000);
		size_t c;
		all &= round_trip(d, i, (const uint8_t *)line, (size_t)n, &c);
		raw += (size_t)n;
		comp += c;
	}
	ok(all, "400 log lines, one packet each, come back intact");
	ok(raw > 3 * comp, "ratio across packets %.1fx (one stream per direction)",
	   (double)raw / (double)comp);
	/* Random bytes: may grow a little, never break. */
	uint8_t *rnd = malloc(MAX);
	srand(7);
	for (size_t k = 0; k < MAX; k++)
		rnd[k] = (uint8_t)rand();
	size_t c;
	ok(round_trip(d, i, rnd, MAX - 1024, &c), "a 255 KiB random packet");
	ok(c < MAX - 1024 + 1024, "random grows by %zd bytes", (ssize_t)c - (ssize_t)(MAX - 1024));
	ok(round_trip(d, i, (const uint8_t *)"x", 1, &c), "a one-byte packet after it");
	/* A bomb: 1 MiB of zeros inflates past the 256 KiB packet limit. */
	struct zpkt *bd = zpkt_new(true), *bi = zpkt_new(false);
	uint8_t *zeros = calloc(1, 1 << 20);
	struct buf w, back;
	buf_init(&w, 4 << 20);
	buf_init(&back, MAX + 1);
	ok(zpkt_deflate(bd, zeros, 1 << 20, &w) == 0, "deflate 1 MiB of zeros");
	is_int(zpkt_inflate(bi, buf_data(&w) + 4, buf_used(&w) - 4, &back, MAX), -EMSGSIZE,
	       "inflating it is refused (%zu compressed bytes)", buf_used(&w) - 4);
	ok(buf_used(&back) <= MAX + 1, "no more than the limit was produced (%zu)", buf_used(&back));
	/* Garbage. */
	struct zpkt *gi = zpkt_new(false);
	static const uint8_t junk[] = { 0xff, 0xff, 0xff, 0xff, 0x13, 0x37, 0x00, 0x42 };
	ok(zpkt_inflate(gi, junk, sizeof(junk), &back, MAX) == -EPROTO, "garbage is -EPROTO");
	/* A final block (BFINAL) would end the stream: not ours either. */
	struct zpkt *fi = zpkt_new(false);
	static const uint8_t final_block[] = { 0x03, 0x00 }; /* empty fixed block, BFINAL */
	int r = zpkt_inflate(fi, final_block, sizeof(final_block), &back, MAX);
	ok(r == -EPROTO, "a final block is refused (%d)", r);
	buf_free(&w);
	buf_free(&back);
	free(zeros);
	free(rnd);
	zpkt_free(bd);
	zpkt_free(bi);
	zpkt_free(gi);
	zpkt_free(fi);
	zpkt_free(d);
	zpkt_free(i);
	return done_testing();
}
