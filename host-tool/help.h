/* SPDX-License-Identifier: MIT */
/* The help texts of wicket and its commands (help.c). */
#ifndef WICKET_HELP_H
#define WICKET_HELP_H

#include <stdbool.h>
#include <stdio.h>

/* COMMAND's own help, or (NULL or unknown) the overview of `wicket --help`. */
void help_print(FILE *f, const char *cmd);
/* Whether @cmd is a command help_print knows. */
bool help_known(const char *cmd);
/* "cp [-r] ... SRC... DST": the synopsis after "wicket ", "" when unknown. */
const char *help_synopsis(const char *cmd);

#endif
