/* SPDX-License-Identifier: MIT */
/*
 * Session-policy options, shared by the command line and the config file so
 * both accept the same names, values and messages.
 */
#ifndef WICKET_AGENT_OPTIONS_H
#define WICKET_AGENT_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>

struct agent_cfg;

/* Is @name (without "--") a policy option, and does it take a value? */
bool agent_opt_is_policy(const char *name, bool *takes_value);

/*
 * Apply policy option @name with @value (NULL for flags) to @cfg.  The
 * string must outlive @cfg.  0, or -1 with a message naming the option and
 * the bad value in @err.
 */
int agent_opt_apply(struct agent_cfg *cfg, const char *name, const char *value, char *err,
		    size_t errlen);

/* --user: the user exists and we may switch to it; clears it when we
 * already are that user.  0, or -1 with a message in @err. */
int agent_opt_check_user(struct agent_cfg *cfg, char *err, size_t errlen);

#endif
