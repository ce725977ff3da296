/* SPDX-License-Identifier: MIT */
/*
 * Guest-side endpoints of wicketd.  Listening kinds (unix, vsock) hand out
 * one fd per connection; port kinds (virtio-serial, serial tty) are a single
 * device that carries one host connection at a time.
 */
#ifndef WICKET_GUEST_H
#define WICKET_GUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TP_VSOCK_DEFAULT_PORT 9022
#define TP_VIRTIO_DEFAULT_NAME "org.wicket.agent.0"

/* Listen on AF_VSOCK @port (any CID of ours). */
int tp_vsock_listen(uint32_t port, char *err, size_t errlen);
/* Accept one vsock connection; its peer CID goes to *cid. */
int tp_vsock_accept(int lfd, uint32_t *cid);

/* Find and open the virtio-serial port called @name (O_NONBLOCK). */
int tp_virtio_open(const char *name, char *path, size_t pathlen, char *err, size_t errlen);
/*
 * Wait until a host has the port open.  Uses SIGIO from the driver, with a
 * periodic re-check, so an idle agent sleeps.  Returns 0, or -errno.
 */
int tp_virtio_wait_host(int fd);
/* True while a host has the port open. */
bool tp_virtio_host_connected(int fd);

/* Open a serial tty in raw mode at @baud (0 = leave speed alone). */
int tp_serial_open(const char *dev, unsigned baud, char *err, size_t errlen);

/*
 * systemd socket activation: number of fds passed (starting at 3), or 0.
 * Clears the variables so children do not see them.
 */
int tp_sd_listen_fds(void);
/* True when @fd is a listening socket (else it is one connection). */
bool tp_is_listener(int fd);

#endif
