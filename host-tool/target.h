/* SPDX-License-Identifier: MIT */
/* TARGET strings → an open byte stream to an agent. */
#ifndef WICKET_TARGET_H
#define WICKET_TARGET_H

#include <stddef.h>

#include "tp.h"

/*
 * Open @target (unix/PATH, vm/NAME, demo, …), or run @proxy_cmd when given
 * (the target name is then only a label).  @uri is the libvirt URI for
 * vm/NAME (NULL: the default).  On failure @err holds a one-line reason.
 */
int target_open(const char *target, const char *proxy_cmd, const char *uri, struct tp *out,
		char *err, size_t errlen);

/* The wicketd binary to put in the demo sandbox. */
const char *target_find_wicketd(char *buf, size_t len);

#endif
