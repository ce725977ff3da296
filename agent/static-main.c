/* SPDX-License-Identifier: MIT */
/*
 * wicketd-static: wicketd and wicket-sftp-server in one static program.
 * The agent starts its sftp server as /proc/self/exe with argv[0]
 * "wicket-sftp-server", which picks that role here.
 */
#include <string.h>

int wicketd_main(int argc, char **argv);
int wicket_sftp_main(int argc, char **argv);

int main(int argc, char **argv)
{
	const char *base = argc > 0 && argv[0] ? strrchr(argv[0], '/') : NULL;
	base = base ? base + 1 : (argc > 0 && argv[0] ? argv[0] : "");
	if (strcmp(base, "wicket-sftp-server") == 0)
		return wicket_sftp_main(argc, argv);
	return wicketd_main(argc, argv);
}
