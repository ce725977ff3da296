/* SPDX-License-Identifier: MIT */
/* `wicket mux status|stop|start [OPTION...] TARGET`. */
#include "mux.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "client.h"
#include "config.h"
#include "msg.h"
#include "wire.h"

#define MUX_CMD_TIMEOUT_MS 10000

/* One global request to the mux and its reply; 1 success, 0 failure, -1 error. */
static int mux_request(const struct mux_key *k, const char *name, char *text, size_t textlen)
{
	struct tp t;
	int r = mux_attach(k, &t);
	if (r < 0)
		return r;
	struct buf out, in;
	buf_init(&out, 4096);
	buf_init(&in, 1024 * 1024);
	wire_put_greeting(&out, "wicket-mux-cmd_" WICKET_VERSION);
	struct buf pkt;
	buf_init(&pkt, 1024);
	buf_u8(&pkt, MSG_GLOBAL_REQUEST);
	buf_cstr(&pkt, name);
	buf_bool(&pkt, true);
	buf_u32(&out, (uint32_t)buf_used(&pkt));
	buf_put(&out, buf_data(&pkt), buf_used(&pkt));
	buf_free(&pkt);
	int result = -EIO;
	bool greeted = false;
	while (buf_used(&out)) {
		ssize_t n = write(t.wfd, buf_data(&out), buf_used(&out));
		if (n <= 0)
			goto done;
		buf_consume(&out, (size_t)n);
	}
	for (;;) {
		struct pollfd p = { .fd = t.rfd, .events = POLLIN };
		if (poll(&p, 1, MUX_CMD_TIMEOUT_MS) <= 0) {
			result = -ETIMEDOUT;
			goto done;
		}
		size_t room;
		uint8_t *w = buf_reserve_read(&in, 4096, 64 * 1024, &room);
		ssize_t n = w ? read(t.rfd, w, room) : -1;
		if (n <= 0)
			goto done;
		buf_commit(&in, (size_t)n);
		if (!greeted) {
			char ver[WIRE_MAX_VERSION + 1];
			int g = wire_scan_greeting(&in, ver, sizeof(ver));
			if (g < 0)
				goto done;
			if (!g)
				continue;
			greeted = true;
		}
		struct sv pl;
		while (wire_next_packet(&in, &pl, NULL) == 1) {
			struct rd rd;
			rd_init(&rd, pl.p + 1, pl.n - 1);
			if (pl.p[0] == MSG_REQUEST_FAILURE) {
				result = 0;
				goto done;
			}
			if (pl.p[0] == MSG_REQUEST_SUCCESS) {
				struct sv s = rd_str(&rd);
				snprintf(text, textlen, "%.*s", rd.err ? 0 : (int)s.n, (const char *)s.p);
				result = 1;
				goto done;
			}
			if (pl.p[0] == MSG_DISCONNECT)
				goto done;
		}
	}
done:
	buf_free(&out);
	buf_free(&in);
	tp_close(&t);
	return result;
}

static int no_mux(const char *target, int r)
{
	if (r == -ENOENT || r == -ECONNREFUSED || r == -ECONNRESET) {
		fprintf(stderr, "wicket: %s: no mux runs for it\n", target);
		return 1;
	}
	fprintf(stderr, "wicket: %s: its mux does not answer: %s\n", target, strerror(-r));
	return WICKET_EXIT_FAILURE;
}

int mux_cmd(int argc, char **argv, int i, struct globals *g)
{
	/* Global options (and --help) may come before the subcommand too. */
	for (; i < argc && argv[i][0] == '-'; i++) {
		int r = parse_global(g, argc, argv, &i);
		if (r < 0)
			return WICKET_EXIT_FAILURE;
		if (!r)
			return usage_error("unknown option '%s'", argv[i]);
	}
	if (i >= argc)
		return usage_error("%s needs status, stop or start", "mux");
	const char *sub = argv[i++];
	if (strcmp(sub, "status") != 0 && strcmp(sub, "stop") != 0 && strcmp(sub, "start") != 0)
		return usage_error("mux: unknown subcommand '%s' (status, stop, start)", sub);
	char cmd[32];
	snprintf(cmd, sizeof(cmd), "mux %s", sub);
	int bad = cli_one_target(argc, argv, i, g, cmd, NULL, NULL, &i);
	if (bad)
		return bad;
	const char *target = argv[i];
	struct mux_key k;
	char err[600];
	int shared = mux_key_make(target, g, &k, err, sizeof(err));
	if (shared < 0) {
		fprintf(stderr, "wicket: %s: %s\n", target, err);
		return WICKET_EXIT_FAILURE;
	}
	if (!shared) {
		fprintf(stderr, "wicket: %s: this target is never shared (each command gets its own)\n",
			target);
		return WICKET_EXIT_FAILURE;
	}
	char text[64 * 1024];
	if (strcmp(sub, "start") == 0) {
		struct tp t;
		g->share = SHARE_AUTO;
		if (mux_open(target, g, &t) < 0)
			return WICKET_EXIT_FAILURE;
		tp_close(&t);
		printf("%s\n", k.sock);
		return 0;
	}
	int r = mux_request(&k, strcmp(sub, "status") == 0 ? "mux-status@wicket" : "mux-stop@wicket",
			    text, sizeof(text));
	if (r < 0)
		return no_mux(target, r);
	if (r == 0) {
		fprintf(stderr, "wicket: %s: its mux refused the request\n", target);
		return WICKET_EXIT_FAILURE;
	}
	if (strcmp(sub, "status") == 0)
		fputs(text, stdout);
	else
		fprintf(stderr, "wicket: %s: mux stopped\n", target);
	return 0;
}
