/* SPDX-License-Identifier: MIT */
/*
 * Ports that outlive host connections: a virtio-serial port or a serial tty
 * carries one host session at a time, forever.  Each session starts clean
 * (greeting scan discards whatever an earlier host left behind) and a dead
 * host never wedges the agent: virtio reports the hang-up, and on a serial
 * line the next host's greeting breaks the stale session, whose unparsed
 * input is carried into the new one.
 */
#include <errno.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "guest.h"
#include "log.h"
#include "wire.h"

int agent_serve_port(int fd, bool is_virtio, const struct agent_cfg *cfg)
{
	struct buf carry;
	buf_init(&carry, WIRE_MAX_PACKET + 4);
	for (;;) {
		if (is_virtio) {
			int r = tp_virtio_wait_host(fd);
			if (r < 0) {
				log_err("waiting for the host: %s", strerror(-r));
				return 1;
			}
			log_info("host connected");
		}
		struct timespec t0, t1;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		agent_serve(fd, fd, cfg, &carry);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		log_info("host session ended");
		/* A session that ends at once (port error, host flapping) must
		 * not turn this loop into a busy one. */
		long ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
		if (ms < 100) {
			struct timespec ts = { 0, 100 * 1000 * 1000 };
			nanosleep(&ts, NULL);
		}
	}
}
