/* SPDX-License-Identifier: MIT */
/*
 * Ports that outlive host connections: a virtio-serial port or a serial tty
 * carries one host session at a time, forever.  Each session starts clean
 * (the greeting scan discards whatever earlier hosts left behind and skips
 * greetings of hosts that are gone) and a dead host never wedges the agent.
 * Hang-ups are not counted on: virtio reports them, but QEMU's socket
 * chardev accepts queued clients back to back, so several hosts' bytes can
 * follow one another with none seen in between, and a serial line has none
 * at all.  The next host's greeting, wherever it shows up in a session,
 * ends that session (lib/conn.c, conn_restart()); its unparsed input is
 * carried into the next one, which starts at once.
 */
#include <errno.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "guest.h"
#include "log.h"
#include "wire.h"

/* Runs while the next session's worker sandboxes itself. */
static int port_wait_virtio_host(int fd)
{
	int r = tp_virtio_wait_host(fd);
	if (r < 0)
		log_err("waiting for the host: %s", strerror(-r));
	else
		log_info("host connected");
	return r;
}

int agent_serve_port(int fd, bool is_virtio, const struct agent_cfg *cfg)
{
	struct buf carry;
	buf_init(&carry, WIRE_MAX_PACKET + 4);
	for (;;) {
		struct timespec t0, t1;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		int r = agent_serve_ahead(fd, fd, cfg, &carry,
					  is_virtio ? port_wait_virtio_host : NULL);
		if (r < 0)
			return 1;
		clock_gettime(CLOCK_MONOTONIC, &t1);
		log_info("host session ended");
		/* A session that fails at once (port error, a worker that
		 * cannot start) must not turn this loop into a busy one; the
		 * next host of a good one (or of one handed over to a new
		 * host) must not wait. */
		long ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
		if (r && ms < 100) {
			struct timespec ts = { 0, 100 * 1000 * 1000 };
			nanosleep(&ts, NULL);
		}
	}
}
