/* SPDX-License-Identifier: MIT */
/* A readable one-line-per-packet log for -v / --packet-log. */
#ifndef WICKET_PKTLOG_H
#define WICKET_PKTLOG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* @dir is '>' for sent, '<' for received; @p is the payload. */
void pktlog_write(FILE *f, char dir, const uint8_t *p, size_t n);

#endif
