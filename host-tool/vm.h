/* SPDX-License-Identifier: MIT */
/* vm/NAME targets and `wicket list`, through libvirt. */
#ifndef WICKET_VM_H
#define WICKET_VM_H

#include <stddef.h>

#include "tp.h"

/* The channel wicketd listens on and the XML that adds it to a domain. */
#define VM_CHANNEL_NAME "org.wicket.agent.0"
#define VM_CHANNEL_XML                                                                     \
	"<channel type='unix'><source mode='bind'/><target type='virtio' name='" VM_CHANNEL_NAME \
	"'/></channel>"

/* The libvirt URI to use: @uri (-c), else $LIBVIRT_DEFAULT_URI, else qemu:///system. */
const char *vm_uri(const char *uri);

/*
 * Open the agent of libvirt domain @name: AF_VSOCK to its CID when it has
 * one and that connects, else its org.wicket.agent.0 channel through
 * virDomainOpenChannel, relayed by a helper process (out->pid).  On failure
 * @err holds a one-line reason.
 */
int vm_target_open(const char *name, const char *uri, struct tp *out, char *err, size_t errlen);

/* `wicket list`: every domain, its state and how it can be reached (the
 * helper's exit code; it has printed why on failure). */
int vm_list(const char *uri);

#endif
