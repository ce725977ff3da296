/* SPDX-License-Identifier: MIT */
#ifndef WICKET_QUOTE_H
#define WICKET_QUOTE_H

#include "buf.h"

/*
 * Join @argv into one POSIX shell command line that the remote shell splits
 * back into exactly the same words (for peers without exec-argv@wicket).
 */
void quote_argv(struct buf *out, char *const *argv, int argc);

#endif
