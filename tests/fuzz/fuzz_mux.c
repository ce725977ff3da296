/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: the mux's translation table (host-tool/mux/mux_core.c), the
 * code that reads every client's packets (and the guest's) and rewrites
 * channel numbers between them.
 *
 * Input layout: a sequence of records
 *
 *   byte       who: low 2 bits a client slot (0..3), bit 2 set = from the
 *              guest instead, bit 3 set = that client leaves (no payload)
 *   u16 (BE)   payload length (capped at what is left)
 *   payload    one packet payload, message number first
 *
 * A client that the core drops (DISCONNECT, protocol error) leaves and a new
 * one takes its slot; a guest protocol error ends the input.
 *
 * Oracles, besides the sanitizers: every packet the core emits, to the
 * guest or a client, is non-empty, no longer than the largest input packet
 * plus a small reply, and of a message type allowed on a bare stream; after
 * each record the channel count agrees with the table, every live channel
 * belongs to a connected client or is an orphan, and client_fail is called
 * only for a client that is connected.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "msg.h"
#include "mux/mux_core.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NCL 4

static struct mux_core core;
static bool connected[NCL];

#define CHECK(c)                                                                          \
	do {                                                                              \
		if (!(c)) {                                                               \
			fprintf(stderr, "fuzz_mux: check failed: %s (line %d)\n", #c, __LINE__); \
			abort();                                                          \
		}                                                                         \
	} while (0)

static void check_out(const uint8_t *p, size_t n)
{
	CHECK(n >= 1 && n <= 70000 + 4096);
	CHECK(msg_allowed(p[0]));
}

static void io_to_guest(void *ctx, const uint8_t *p, size_t n)
{
	(void)ctx;
	check_out(p, n);
}

static void io_to_client(void *ctx, unsigned cl, const uint8_t *p, size_t n)
{
	(void)ctx;
	CHECK(cl < NCL && connected[cl]);
	check_out(p, n);
}

static void io_client_fail(void *ctx, unsigned cl, const char *why)
{
	(void)ctx;
	CHECK(cl < NCL && connected[cl] && why && *why);
}

static bool io_local(void *ctx, unsigned cl, struct sv name, struct rd *args, struct buf *reply)
{
	(void)ctx;
	(void)cl;
	(void)args;
	if (!sv_eq(name, "mux-status@wicket"))
		return false;
	buf_cstr(reply, "fuzz status");
	return true;
}

static const struct mux_io io = { io_to_guest, io_to_client, io_client_fail, io_local };

static void invariants(void)
{
	uint32_t live = 0, per[NCL] = { 0 };
	for (uint32_t i = 0; i < core.nch; i++) {
		const struct mux_chan *c = &core.ch[i];
		if (c->state == MC_FREE)
			continue;
		live++;
		if (!c->orphan) {
			CHECK(c->owner < NCL && connected[c->owner]);
			per[c->owner]++;
		}
	}
	CHECK(live == core.nlive);
	for (unsigned k = 0; k < NCL; k++)
		if (connected[k])
			CHECK(per[k] == mux_core_channels(&core, k));
	CHECK(core.gq_n <= MUX_MAX_GREQ && core.nfwd <= MUX_MAX_FWD);
}

static void join(unsigned k)
{
	int slot = mux_core_client_add(&core);
	CHECK(slot >= 0 && (unsigned)slot < NCL);
	connected[slot] = true;
	(void)k;
}

static void leave(unsigned k)
{
	mux_core_client_gone(&core, k);
	connected[k] = false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	mux_core_init(&core, &io, NULL);
	memset(connected, 0, sizeof(connected));
	for (unsigned k = 0; k < NCL; k++)
		join(k);
	uint8_t *pkt = malloc(65536 + 1);
	size_t i = 0;
	while (i + 3 <= size) {
		uint8_t who = data[i];
		size_t n = (size_t)data[i + 1] << 8 | data[i + 2];
		i += 3;
		if (n > size - i)
			n = size - i;
		unsigned k = who & 3;
		if (who & 8) {
			leave(k);
			join(k);
			continue;
		}
		if (!n)
			continue;
		memcpy(pkt, data + i, n);
		i += n;
		if (who & 4) {
			if (mux_core_from_guest(&core, pkt, n) < 0)
				break;
		} else if (mux_core_from_client(&core, k, pkt, n) < 0) {
			leave(k);
			join(k);
		}
		invariants();
	}
	for (unsigned k = 0; k < NCL; k++)
		leave(k);
	invariants();
	free(pkt);
	mux_core_free(&core);
	return 0;
}
