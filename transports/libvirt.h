/* SPDX-License-Identifier: MIT */
/*
 * Host side: a libvirt stream (virDomainOpenChannel) relayed to a plain fd.
 * Only built when libvirt is available (HAVE_LIBVIRT).
 */
#ifndef WICKET_TP_LIBVIRT_H
#define WICKET_TP_LIBVIRT_H

#include <libvirt/libvirt.h>

/**
 * tp_libvirt_pump() - relay bytes between @st and the socket @fd until one
 * side ends.
 * @st: a non-blocking stream (VIR_STREAM_NONBLOCK) already opened on a
 *      channel; its connection must have been opened after
 *      virEventRegisterDefaultImpl().
 * @fd: a stream socket (our end of a socketpair); made non-blocking here.
 *
 * Runs libvirt's default event loop, like `virsh console`.  Ends when the
 * peer of @fd has closed it or shut down its writing side (a channel has no
 * half-close) and everything it wrote reached the stream, or when the stream
 * ends (guest side gone) and everything it sent reached @fd.
 * The stream is finished (or aborted on error) but not freed.
 *
 * Return: 0 on a clean end, -1 when the stream failed.
 */
int tp_libvirt_pump(virStreamPtr st, int fd);

#endif
