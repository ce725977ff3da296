/* SPDX-License-Identifier: MIT */
/* TARGET strings → an open byte stream to an agent. */
#ifndef WICKET_TARGET_H
#define WICKET_TARGET_H

#include <stddef.h>

#include "tp.h"

struct globals;

/*
 * Open @target (unix/PATH, vm/NAME, podman/NAME, demo, …), or run
 * g->proxy_cmd when given (the target name is then only a label).  g->uri
 * is the libvirt URI for vm/NAME (NULL: the default); the container
 * options are g's too.  On failure @err holds a one-line reason.
 */
int target_open(const char *target, const struct globals *g, struct tp *out, char *err,
		size_t errlen);

/*
 * After the stream to @target ended without a reason from the agent: why,
 * when the target can tell (podman/NAME: the container stopped or was
 * removed), as 1 with @why set; else 0.  Only for a stream that
 * target_open() opened itself in this process (not a proxy command), or
 * one marked with target_note_opened().
 */
int target_lost_reason(const char *target, char *why, size_t len);
/*
 * A connection to @target ended with @reason (a conn's reason, @len bytes):
 * unless the agent itself said why (a DISCONNECT), put what the target can
 * tell there instead (target_lost_reason()).
 */
void target_explain_loss(const char *target, char *reason, size_t len);
/* The mux: its stream to @target was opened by target_open() (in its starter). */
void target_note_opened(const char *target);

/* wicketd-static, which container targets bring in; NULL when not found. */
const char *target_find_static_agent(char *buf, size_t len);

/* The toolbox --tools brings in when no --tools-path is given. */
#define TOOLBOX_DEFAULT "/bin/busybox"
/*
 * --tools: @dir/busybox (--tools-path DIR), else TOOLBOX_DEFAULT, which
 * must be a static program (a container may have no loader).  @buf, or
 * NULL with the reason in @err.
 */
const char *target_find_toolbox(const char *dir, char *buf, size_t len, char *err,
				size_t errlen);

/* The wicketd binary to put in the demo sandbox. */
const char *target_find_wicketd(char *buf, size_t len);

#endif
