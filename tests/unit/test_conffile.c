/* SPDX-License-Identifier: MIT */
/* agent/conffile + agent/options: wicketd --config parsing and application. */
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "conffile.h"
#include "tap.h"

static int parse(const char *text, struct agent_conf *c, char *err, size_t errlen)
{
	err[0] = 0;
	return agent_conf_parse(strdup(text), "t.conf", c, err, errlen);
}

/* Parsing @text fails with a message containing @want. */
static void bad(const char *text, const char *want, const char *what)
{
	struct agent_conf c;
	char err[1024];
	int r = parse(text, &c, err, sizeof(err));
	ok(r < 0 && strstr(err, want), "%s (got: %s)", what, err);
	agent_conf_free(&c);
}

int main(void)
{
	struct agent_conf c;
	char err[1024];
	struct agent_cfg cfg;

	is_int(parse("# policy\n"
		     "handshake-timeout 60\n"
		     "\n"
		     "[listen unix/a.sock]\n"
		     "deny = exec\n"
		     "  deny=shell  \n"
		     "sftp-read-only\r\n"
		     "[ listen vsock/9022 ]\n"
		     "user\tnobody\n"
		     "accept-env = MY_*\n",
		     &c, err, sizeof(err)),
	       0, "a good file parses (%s)", err);
	is_int((int)c.ntop, 1, "one top-level key");
	is_str(c.top[0].name, "handshake-timeout", "top key name");
	is_str(c.top[0].value, "60", "top key value");
	is_int((int)c.nsec, 2, "two sections");
	is_str(c.sec[0].addr, "unix/a.sock", "first section address");
	is_int((int)c.sec[0].line, 4, "first section line");
	is_int((int)c.sec[0].n, 3, "three keys in the first section");
	is_str(c.sec[0].e[1].value, "shell", "key=value without spaces, surrounding blanks trimmed");
	ok(c.sec[0].e[2].value == NULL, "a flag has no value (CRLF tolerated)");
	is_str(c.sec[1].addr, "vsock/9022", "blanks inside the brackets are allowed");
	is_str(c.sec[1].e[0].value, "nobody", "tab as the separator");

	agent_cfg_defaults(&cfg);
	is_int(agent_conf_apply(&c, c.top, c.ntop, &cfg, err, sizeof(err)), 0, "top keys apply");
	is_int((int)cfg.handshake_timeout, 60, "handshake-timeout applied");
	struct agent_cfg a = cfg, b = cfg;
	is_int(agent_conf_apply(&c, c.sec[0].e, c.sec[0].n, &a, err, sizeof(err)), 0,
	       "section 1 applies");
	ok(!a.allow_exec && !a.allow_shell && a.allow_sftp && a.sftp_read_only,
	   "section 1: exec and shell denied, sftp read-only");
	is_int(agent_conf_apply(&c, c.sec[1].e, c.sec[1].n, &b, err, sizeof(err)), 0,
	       "section 2 applies");
	ok(b.allow_exec && b.allow_shell && !b.sftp_read_only, "section 2 keeps the defaults");
	is_str(b.user, "nobody", "section 2: user");
	is_str(b.env_allow[b.nenv_allow - 1], "MY_*", "section 2: accept-env appended");
	ok(cfg.allow_exec && !cfg.user, "the global policy is untouched by sections");
	agent_conf_free(&c);

	bad("[listen unix/x]\nfrobnicate yes\n", "t.conf:2: unknown key 'frobnicate'",
	    "unknown key named with file and line");
	bad("deny\n", "t.conf:1: 'deny' needs a value", "value missing");
	bad("sftp-read-only yes\n", "'sftp-read-only' takes no value", "flag with a value");
	bad("[listen unix/x\n", "without a closing ']'", "unclosed section");
	bad("[serve unix/x]\n", "sections are [listen ADDR]", "wrong section kind");
	bad("[listen]\n", "needs one address", "section without an address");
	bad("[listen a b]\n", "needs one address", "two addresses");
	bad("[listen unix/x]\n[listen unix/x]\n", "t.conf:2: [listen unix/x] appears twice",
	    "duplicate section");
	bad("listen unix/x\n", "'listen' is a section", "listen as a key");
	bad("--deny exec\n", "unknown key '--deny'", "keys are written without --");

	/* Values are checked when applied, still naming the line. */
	is_int(parse("\n\nmax-channels 0\n", &c, err, sizeof(err)), 0, "syntax ok");
	agent_cfg_defaults(&cfg);
	ok(agent_conf_apply(&c, c.top, c.ntop, &cfg, err, sizeof(err)) < 0 &&
		   strstr(err, "t.conf:3: --max-channels: '0' is not 1..65536"),
	   "bad value named with its line (%s)", err);
	agent_conf_free(&c);
	is_int(parse("deny telnet\n", &c, err, sizeof(err)), 0, "syntax ok");
	ok(agent_conf_apply(&c, c.top, c.ntop, &cfg, err, sizeof(err)) < 0 &&
		   strstr(err, "unknown feature 'telnet'"),
	   "unknown --deny feature (%s)", err);
	agent_conf_free(&c);
	is_int(parse("handshake-timeout -1\nvsock-allow-cid 4294967296\n", &c, err, sizeof(err)), 0,
	       "syntax ok");
	ok(agent_conf_apply(&c, c.top, 1, &cfg, err, sizeof(err)) < 0, "negative timeout refused");
	ok(agent_conf_apply(&c, c.top + 1, 1, &cfg, err, sizeof(err)) < 0, "CID > 2^32-1 refused");
	agent_conf_free(&c);

	is_int(parse("", &c, err, sizeof(err)), 0, "an empty file is fine");
	ok(c.ntop == 0 && c.nsec == 0, "... and says nothing");
	agent_conf_free(&c);

	char many[4096] = "";
	for (int i = 0; i < 17; i++)
		snprintf(many + strlen(many), sizeof(many) - strlen(many), "[listen unix/%d]\n", i);
	bad(many, "t.conf:17: more than 16 listen sections", "section cap");
	return done_testing();
}
