/* SPDX-License-Identifier: MIT */
/*
 * A one-line progress bar on stderr for file copies: name, percentage,
 * bytes, rate, ETA.  Redrawn at most ten times a second; a file that was
 * shown keeps its final line (like scp).  Does nothing when disabled.
 */
#ifndef WICKET_PROGRESS_H
#define WICKET_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>

struct progress {
	bool on;
	bool shown;	    /* the current file has been drawn */
	bool dirty;	    /* a partial line is on the terminal */
	char name[256];
	uint64_t total;	    /* expected bytes of the file */
	uint64_t base;	    /* bytes already there (resume) */
	uint64_t done;	    /* bytes copied in this run */
	int64_t t0, last;   /* ms: start of the file, last draw */
	int64_t rate_t;	    /* ms: last rate sample */
	uint64_t rate_done; /* @done at the last rate sample */
	double rate;	    /* smoothed bytes per second */
};

/* @on: whether to draw at all (stderr is a tty and not -q). */
void progress_init(struct progress *p, bool on);
void progress_start(struct progress *p, const char *name, uint64_t total, uint64_t base);
void progress_update(struct progress *p, uint64_t done);
/* The file is complete: leave its final line if it was (or can be) shown. */
void progress_done(struct progress *p);
/* Erase a partial line before printing a message. */
void progress_clear(struct progress *p);

#endif
