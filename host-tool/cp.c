/* SPDX-License-Identifier: MIT */
#include "cp.h"

#include "client.h"

int cmd_cp(int argc, char **argv, int i, struct globals *g)
{
	(void)argc;
	(void)argv;
	(void)i;
	(void)g;
	fprintf(stderr, "wicket: cp is not available in this build yet\n");
	return WICKET_EXIT_FAILURE;
}
