/* SPDX-License-Identifier: MIT */
/*
 * authorized_keys parsing and matching, with keys made by ssh-keygen:
 * option combinations and their order, quoting, invalid lines skipped while
 * the rest keeps working, from= wildcards / negation / CIDR for IPv4 and
 * IPv6, comments, and the file checks of authkeys_load().
 */
#include <fcntl.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "authkeys.h"
#include "buf.h"
#include "log.h"
#include "sshkey.h"
#include "tap.h"

static char dir[128];

enum { K_ED1, K_ED2, K_EC, K_RSA, K_ED3, K_RSA1024, NKEYS };
static const char *const key_files[NKEYS] = { "ed1", "ed2", "ec", "rsa", "ed3", "rsa1024" };
static char key_text[NKEYS][4200]; /* "type base64" */
static struct sshkey *keys[NKEYS];

static int run(const char *fmt, ...) TAP_PRINTF(1, 2);
static int run(const char *fmt, ...)
{
	char cmd[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	int st = system(cmd);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static bool load_key(int i)
{
	char path[256], type[64], b64[4096];
	snprintf(path, sizeof(path), "%s/%s.pub", dir, key_files[i]);
	FILE *f = fopen(path, "r");
	if (!f)
		return false;
	bool good = fscanf(f, "%63s %4095s", type, b64) == 2;
	fclose(f);
	if (!good)
		return false;
	snprintf(key_text[i], sizeof(key_text[i]), "%s %s", type, b64);
	keys[i] = sshkey_from_openssh_public(sv_from_cstr(type), sv_from_cstr(b64));
	return keys[i] != NULL || i == K_RSA1024;
}

/*
 * Expand a template: "@0".."@5" become the key texts (type + base64), so
 * lines read like the real thing.
 */
static char *expand(const char *tpl)
{
	static char out[65536];
	size_t o = 0;
	for (const char *p = tpl; *p && o < sizeof(out) - 4300; p++) {
		if (p[0] == '@' && p[1] >= '0' && p[1] < '0' + NKEYS) {
			o += (size_t)snprintf(out + o, sizeof(out) - o, "%s", key_text[p[1] - '0']);
			p++;
		} else {
			out[o++] = *p;
		}
	}
	out[o] = 0;
	return out;
}

static struct authkeys *parse(const char *tpl)
{
	const char *t = expand(tpl);
	return authkeys_parse("test", sv_from_cstr(t));
}

/* Match key @k from @addr against a one-template file; -1/0 like authkeys_match. */
static int match1(const char *tpl, int k, const char *addr, struct authkeys_opts *o)
{
	struct authkeys *ak = parse(tpl);
	struct authkeys_opts tmp;
	int r = authkeys_match(ak, keys[k], addr, o ? o : &tmp);
	if (!o)
		authkeys_opts_clear(&tmp);
	authkeys_free(ak);
	return r;
}

static void test_mixed_file(void)
{
	static const char tpl[] =
		"# a comment line\n"
		"\n"
		"   @0 alice@laptop  with spaces   \n"
		"restrict,port-forwarding,command=\"echo \\\"hi, there\\\"; ls -l\" @1 bob\n"
		"from=\"10.0.0.0/8,!10.1.2.3,192.168.1.?\" @2 carol\n"
		"bogus-option @4 dave\n"
		"no-pty,NO-PORT-FORWARDING,no-agent-forwarding,no-X11-forwarding,no-user-rc\t@3\terin\r\n"
		"   # indented comment\n"
		"@5 small rsa";
	struct authkeys *ak = parse(tpl);
	ok(ak != NULL, "mixed: parses");
	is_int(authkeys_count(ak), 4, "mixed: four usable lines");
	is_int(authkeys_invalid(ak), 2, "mixed: two invalid lines (unknown option, 1024-bit rsa)");

	struct authkeys_opts o;
	is_int(authkeys_match(ak, keys[K_ED1], "192.0.2.1", &o), 0, "mixed: plain key matches");
	ok(!o.restrict_all && !o.no_pty && !o.no_port_forwarding && !o.command,
	   "mixed: plain key has no restrictions");
	ok(authkeys_allows_port_forwarding(&o) && authkeys_allows_pty(&o),
	   "mixed: plain key allows forwarding and pty");
	is_str(o.comment, "alice@laptop  with spaces", "mixed: comment captured, trailing space cut");
	authkeys_opts_clear(&o);
	is_int(authkeys_match(ak, keys[K_ED1], NULL, &o), 0, "mixed: plain key matches local client");
	authkeys_opts_clear(&o);

	is_int(authkeys_match(ak, keys[K_ED2], NULL, &o), 0, "mixed: restricted key matches");
	ok(o.restrict_all && o.port_forwarding && !o.pty, "mixed: restrict + port-forwarding flags");
	ok(authkeys_allows_port_forwarding(&o) && !authkeys_allows_pty(&o),
	   "mixed: port forwarding re-enabled, pty still off");
	is_str(o.command, "echo \"hi, there\"; ls -l", "mixed: quoted command with comma, spaces");
	is_str(o.comment, "bob", "mixed: comment");
	authkeys_opts_clear(&o);
	ok(o.command == NULL && o.comment[0] == 0, "mixed: opts_clear frees and zeroes");

	static const struct {
		const char *addr;
		int want;
	} from_cases[] = {
		{ "10.9.9.9", 0 },	   { "10.1.2.3", -1 },	     { "11.0.0.1", -1 },
		{ "192.168.1.7", 0 },	   { "192.168.1.77", -1 },   { NULL, -1 },
		{ "::ffff:10.2.3.4", 0 }, { "UNKNOWN", -1 },	     { "::ffff:10.1.2.3", -1 },
	};
	for (size_t i = 0; i < sizeof(from_cases) / sizeof(from_cases[0]); i++) {
		is_int(authkeys_match(ak, keys[K_EC], from_cases[i].addr, &o), from_cases[i].want,
		       "mixed: ecdsa key from %s", from_cases[i].addr ? from_cases[i].addr : "NULL");
		if (from_cases[i].want == 0)
			is_str(o.comment, "carol", "mixed: ... its comment");
		authkeys_opts_clear(&o);
	}

	is_int(authkeys_match(ak, keys[K_RSA], "2001:db8::1", &o), 0,
	       "mixed: ssh-rsa line matches the RSA key");
	ok(o.no_pty && o.no_port_forwarding && o.no_agent_forwarding && o.no_x11_forwarding &&
		   o.no_user_rc && !o.restrict_all,
	   "mixed: all no-* flags, case-insensitive");
	ok(!authkeys_allows_port_forwarding(&o) && !authkeys_allows_pty(&o),
	   "mixed: no-* flags deny forwarding and pty");
	is_str(o.comment, "erin", "mixed: tab-separated, CR stripped comment");
	authkeys_opts_clear(&o);

	is_int(authkeys_match(ak, keys[K_ED3], NULL, &o), -1, "mixed: key on an invalid line never matches");
	ok(o.command == NULL && !o.restrict_all, "mixed: opts zeroed on no match");
	authkeys_free(ak);
}

static void test_invalid_lines(void)
{
	static const char *const bad[] = {
		"bogus @0",
		"restrict, @0",
		",restrict @0",
		"restrict,,pty @0",
		"command=\"unterminated @0",
		"command=noquotes @0",
		"command= @0",
		"command=\"a\",command=\"b\" @0",
		"from=\"1.2.3.4\",from=\"5.6.7.8\" @0",
		"from=\"10.1.2.3/8\" @0",
		"from=\"10.0.0.0/33\" @0",
		"from=\"2001:db8::/129\" @0",
		"from=\"2001:db8::1/64\" @0",
		"from=\"10.0.0.0/\" @0",
		"from=\"10.0.0.0/8x\" @0",
		"from=\"\" @0",
		"from=\"1.2.3.4,,5.6.7.8\" @0",
		"from=\"!\" @0",
		"restrict=\"x\" @0",
		"no-pty=1 @0",
		"command=\"x\"junk @0",
		"cert-authority @0",
		"tunnel=\"1\" @0",
		"no-touch-required @0",
		"verify-required @0",
		"tunnel @0",
		"permitopen=\"localhost\" @0",
		"permitopen=\"localhost:0\" @0",
		"permitopen=\"localhost:65536\" @0",
		"permitopen=\":22\" @0",
		"permitopen=\"a:b:22\" @0",
		"permitopen=\"[::1]22\" @0",
		"permitopen=\"host:2x\" @0",
		"permitlisten=\"host:x\" @0",
		"permitlisten=\"\" @0",
		"permitopen=host:22 @0",
		"environment=\"NOEQ\" @0",
		"environment=\"=x\" @0",
		"environment=\"A-B=x\" @0",
		"environment=\"A B=x\" @0",
		"expiry-time=\"2099\" @0",
		"expiry-time=\"20991301\" @0",
		"expiry-time=\"20990132\" @0",
		"expiry-time=\"2099010100\" @0",
		"expiry-time=\"20990101x\" @0",
		"expiry-time=\"209901012460\" @0",
		"expiry-time=\"19691231\" @0",
		"expiry-time=\"Z\" @0",
		"principals=\"a\",principals=\"b\" @0",
		"ssh-dss AAAAB3NzaC1kc3MAAAA=",
		"sk-ssh-ed25519@openssh.com AAAA",
		"ssh-ed25519",
		"ssh-ed25519 AAAA!!!!",
		"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5",
		"restrict",
		"restrict @0@0",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char tpl[512];
		/* The bad line, then a good line that must keep working. */
		snprintf(tpl, sizeof(tpl), "%s\n@1 good\n", bad[i]);
		struct authkeys *ak = parse(tpl);
		struct authkeys_opts o;
		int m0 = authkeys_match(ak, keys[K_ED1], "10.0.0.1", &o);
		authkeys_opts_clear(&o);
		int m1 = authkeys_match(ak, keys[K_ED2], "10.0.0.1", &o);
		ok(ak && authkeys_invalid(ak) == 1 && authkeys_count(ak) == 1 && m0 == -1 && m1 == 0 &&
			   !strcmp(o.comment, "good"),
		   "invalid: [%s] skipped, next line works", bad[i]);
		authkeys_opts_clear(&o);
		authkeys_free(ak);
	}

	/* A type/blob mismatch: the ed25519 blob under "ssh-rsa". */
	char tpl[4400];
	snprintf(tpl, sizeof(tpl), "ssh-rsa %s x\n", strchr(key_text[K_ED1], ' ') + 1);
	struct authkeys *ak = authkeys_parse("test", sv_from_cstr(tpl));
	ok(ak && authkeys_count(ak) == 0 && authkeys_invalid(ak) == 1,
	   "invalid: key type name disagreeing with the blob");
	authkeys_free(ak);

	/* A NUL byte inside a line. */
	const char *good = expand("no-pty @0 x\n");
	size_t n = strlen(good);
	char *withnul = malloc(n + 1);
	memcpy(withnul, good, n);
	withnul[n - 3] = 0; /* inside the comment */
	ak = authkeys_parse("test", (struct sv){ (const uint8_t *)withnul, n });
	ok(ak && authkeys_count(ak) == 0 && authkeys_invalid(ak) == 1, "invalid: NUL byte in a line");
	authkeys_free(ak);
	free(withnul);
}

static void test_options(void)
{
	static const struct {
		const char *opts;
		int pf, pty, restrict_all;
		const char *command;
	} cases[] = {
		{ "restrict", 0, 0, 1, NULL },
		{ "restrict,pty", 0, 1, 1, NULL },
		{ "restrict,port-forwarding,pty", 1, 1, 1, NULL },
		{ "port-forwarding,restrict", 0, 0, 1, NULL },
		{ "pty,restrict", 0, 0, 1, NULL },
		{ "no-pty,pty", 1, 1, 0, NULL },
		{ "pty,no-pty", 1, 0, 0, NULL },
		{ "no-port-forwarding", 0, 1, 0, NULL },
		{ "no-port-forwarding,port-forwarding", 1, 1, 0, NULL },
		{ "Restrict,Port-Forwarding", 1, 0, 1, NULL },
		{ "agent-forwarding,x11-forwarding,user-rc", 1, 1, 0, NULL },
		{ "command=\"a b, c\"", 1, 1, 0, "a b, c" },
		{ "command=\"say \\\"x y\\\", z\",no-pty", 1, 0, 0, "say \"x y\", z" },
		{ "command=\"a\\\\b c\"", 1, 1, 0, "a\\\\b c" },
		{ "COMMAND=\"\"", 1, 1, 0, "" },
		{ "restrict,command=\"/usr/bin/rsync --server\"", 0, 0, 1, "/usr/bin/rsync --server" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char tpl[512];
		snprintf(tpl, sizeof(tpl), "%s @0 c%zu\n", cases[i].opts, i);
		struct authkeys_opts o;
		int r = match1(tpl, K_ED1, "10.0.0.1", &o);
		ok(r == 0 && authkeys_allows_port_forwarding(&o) == cases[i].pf &&
			   authkeys_allows_pty(&o) == cases[i].pty &&
			   o.restrict_all == cases[i].restrict_all,
		   "options: [%s] -> pf=%d pty=%d restrict=%d", cases[i].opts, cases[i].pf,
		   cases[i].pty, cases[i].restrict_all);
		is_str(o.command, cases[i].command, "options: [%s] command", cases[i].opts);
		authkeys_opts_clear(&o);
	}

	/* A long comment is truncated to fit. */
	char tpl[1024];
	char longc[400];
	memset(longc, 'x', sizeof(longc) - 1);
	longc[sizeof(longc) - 1] = 0;
	snprintf(tpl, sizeof(tpl), "@0 %s\n", longc);
	struct authkeys_opts o;
	is_int(match1(tpl, K_ED1, NULL, &o), 0, "options: long comment line matches");
	is_int(strlen(o.comment), sizeof(o.comment) - 1, "options: comment truncated");
	authkeys_opts_clear(&o);
	is_int(match1("@0\n", K_ED1, NULL, &o), 0, "options: line without comment");
	is_str(o.comment, "", "options: empty comment");
	authkeys_opts_clear(&o);
}

/* expiry-time, environment, permitopen, permitlisten, principals (sshd 9.x). */
static void test_sshd9_options(void)
{
	uint64_t t = 0;
	is_int(authkeys_parse_time("20990101Z", &t), 0, "time: YYYYMMDDZ");
	ok(t == 4070908800ull, "time: 20990101Z is 4070908800 (%llu)", (unsigned long long)t);
	is_int(authkeys_parse_time("203006151234UTC", &t), 0, "time: YYYYMMDDHHMMUTC");
	ok(t == 1907757240ull, "time: 203006151234UTC");
	is_int(authkeys_parse_time("20300615123456z", &t), 0, "time: YYYYMMDDHHMMSSz");
	ok(t == 1907757296ull, "time: 20300615123456z");
	is_int(authkeys_parse_time("20000229Z", &t), 0, "time: a leap day");
	ok(t == 951782400ull, "time: 20000229Z");
	ok(authkeys_parse_time("2099010", &t) < 0 && authkeys_parse_time("", &t) < 0 &&
		   authkeys_parse_time("20990101ZZ", &t) < 0 && authkeys_parse_time("+0990101", &t) < 0,
	   "time: malformed ones refused");

	/* Valid up to and at the second it names, refused after; the earliest wins. */
	struct authkeys *ak = parse("expiry-time=\"20990101Z\",expiry-time=\"20300615123456Z\" @0 e\n"
				    "@1 next\n");
	struct authkeys_opts o;
	is_int(authkeys_match_at(ak, keys[K_ED1], NULL, 1907757296ull - 1, &o), 0,
	       "expiry: before it");
	ok(o.expiry == 1907757296ull, "expiry: the earliest of two");
	authkeys_opts_clear(&o);
	is_int(authkeys_match_at(ak, keys[K_ED1], NULL, 1907757296ull, &o), 0, "expiry: at it");
	authkeys_opts_clear(&o);
	is_int(authkeys_match_at(ak, keys[K_ED1], NULL, 1907757296ull + 1, &o), -1,
	       "expiry: one second after it: refused");
	is_int(authkeys_match_at(ak, keys[K_ED2], NULL, 4070908800ull + 1, &o), 0,
	       "expiry: other lines unaffected");
	authkeys_opts_clear(&o);
	authkeys_free(ak);
	/* An expired line does not hide a later line of the same key. */
	ak = parse("expiry-time=\"20000101Z\" @0 old\nno-pty @0 new\n");
	is_int(authkeys_match(ak, keys[K_ED1], NULL, &o), 0, "expiry: a later line of the key");
	ok(o.no_pty && !strcmp(o.comment, "new"), "expiry: ... is the one used");
	authkeys_opts_clear(&o);
	authkeys_free(ak);

	/* environment=: several, the first of a name counts; the filter. */
	const char *envl = "environment=\"A=1\",environment=\"B_2=x=y\",environment=\"A=2\","
			   "environment=\"LANG=C\",environment=\"EMPTY=\" @0\n";
	is_int(match1(envl, K_ED1, NULL, &o), 0, "env: line valid");
	ok(o.nenv == 4 && !strcmp(o.env[0], "A=1") && !strcmp(o.env[1], "B_2=x=y") &&
		   !strcmp(o.env[2], "LANG=C") && !strcmp(o.env[3], "EMPTY="),
	   "env: first of a name kept, order kept");
	struct authkeys_opts c;
	is_int(authkeys_opts_copy(&c, &o), 0, "env: copy");
	authkeys_env_filter(&c, NULL);
	is_int(c.nenv, 0, "env: filter NULL (the default) drops all");
	authkeys_opts_clear(&c);
	authkeys_opts_copy(&c, &o);
	authkeys_env_filter(&c, "no");
	is_int(c.nenv, 0, "env: filter no");
	authkeys_opts_clear(&c);
	authkeys_opts_copy(&c, &o);
	authkeys_env_filter(&c, "yes");
	is_int(c.nenv, 4, "env: filter yes keeps all");
	authkeys_opts_clear(&c);
	authkeys_opts_copy(&c, &o);
	authkeys_env_filter(&c, "A,LA*");
	ok(c.nenv == 2 && !strcmp(c.env[0], "A=1") && !strcmp(c.env[1], "LANG=C"),
	   "env: filter by patterns");
	authkeys_opts_clear(&c);
	authkeys_opts_copy(&c, &o);
	authkeys_env_filter(&c, "*,!B_?");
	ok(c.nenv == 3 && !strcmp(c.env[1], "LANG=C"), "env: a negated pattern denies");
	authkeys_opts_clear(&c);
	authkeys_opts_copy(&c, &o);
	authkeys_env_filter(&c, "a");
	is_int(c.nenv, 0, "env: patterns are case-sensitive");
	authkeys_opts_clear(&c);
	authkeys_opts_clear(&o);

	/* permitopen= */
	is_int(match1("permitopen=\"localhost:80\",permitopen=\"[::1]:*\","
		      "permitopen=\"*:5432\" @0\n", K_ED1, NULL, &o), 0, "permitopen: line valid");
	ok(o.npermitopen == 3, "permitopen: three");
	ok(authkeys_permits_open(&o, sv_from_cstr("localhost"), 80), "permitopen: localhost:80");
	ok(!authkeys_permits_open(&o, sv_from_cstr("localhost"), 81), "permitopen: not :81");
	ok(!authkeys_permits_open(&o, sv_from_cstr("LOCALHOST"), 80), "permitopen: hosts are literal");
	ok(!authkeys_permits_open(&o, sv_from_cstr("127.0.0.1"), 80), "permitopen: no resolution");
	ok(authkeys_permits_open(&o, sv_from_cstr("::1"), 9), "permitopen: [::1]:* any port");
	ok(authkeys_permits_open(&o, sv_from_cstr("db.example"), 5432), "permitopen: *:5432");
	ok(!authkeys_permits_open(&o, sv_from_cstr("db.example"), 5433), "permitopen: not *:5433");
	ok(!authkeys_permits_open_path(&o), "permitopen: socket paths refused");
	authkeys_opts_clear(&o);
	is_int(match1("@0\n", K_ED1, NULL, &o), 0, "permitopen: none");
	ok(authkeys_permits_open(&o, sv_from_cstr("x"), 1) && authkeys_permits_open_path(&o) &&
		   authkeys_permits_listen(&o, sv_from_cstr("x"), 0),
	   "permitopen/permitlisten: no limit without them");
	authkeys_opts_clear(&o);

	/* permitlisten= */
	is_int(match1("permitlisten=\"8080\",permitlisten=\"localhost:9000\","
		      "permitlisten=\"10.0.0.?:*\" @0\n", K_ED1, NULL, &o), 0,
	       "permitlisten: line valid");
	ok(authkeys_permits_listen(&o, sv_from_cstr("localhost"), 8080) &&
		   authkeys_permits_listen(&o, sv_from_cstr("0.0.0.0"), 8080),
	   "permitlisten: a bare port is any host");
	ok(!authkeys_permits_listen(&o, sv_from_cstr("localhost"), 8081), "permitlisten: not :8081");
	ok(authkeys_permits_listen(&o, sv_from_cstr("LocalHost"), 9000),
	   "permitlisten: the request is lower-cased");
	ok(!authkeys_permits_listen(&o, sv_from_cstr("127.0.0.1"), 9000),
	   "permitlisten: localhost is not 127.0.0.1");
	ok(authkeys_permits_listen(&o, sv_from_cstr("10.0.0.7"), 1) &&
		   !authkeys_permits_listen(&o, sv_from_cstr("10.0.0.17"), 1),
	   "permitlisten: host patterns");
	ok(!authkeys_permits_listen(&o, sv_from_cstr("localhost"), 0),
	   "permitlisten: port 0 only under *");
	ok(authkeys_permits_listen(&o, sv_from_cstr("10.0.0.1"), 0), "permitlisten: port 0 under *");
	authkeys_opts_clear(&o);

	/* agent/X11 forwarding after restrict; principals ignored for a plain key. */
	is_int(match1("restrict,agent-forwarding,principals=\"alice,bob\" @0\n", K_ED1, NULL, &o), 0,
	       "restrict,agent-forwarding,principals=: valid");
	ok(authkeys_allows_agent(&o) && !authkeys_allows_x11(&o) && !authkeys_allows_pty(&o) &&
		   !authkeys_allows_port_forwarding(&o),
	   "restrict,agent-forwarding: agent only");
	authkeys_opts_clear(&o);
	is_int(match1("agent-forwarding,x11-forwarding,restrict @0\n", K_ED1, NULL, &o), 0, "valid");
	ok(!authkeys_allows_agent(&o) && !authkeys_allows_x11(&o), "...,restrict: restrict wins");
	authkeys_opts_clear(&o);
	is_int(match1("restrict,X11-Forwarding @0\n", K_ED1, NULL, &o), 0, "valid");
	ok(authkeys_allows_x11(&o) && !authkeys_allows_agent(&o), "restrict,X11-Forwarding: x11 only");
	authkeys_opts_clear(&o);

	/* Options longer than the limit. */
	static char big[AUTHKEYS_OPTIONS_MAX + 200];
	size_t at = (size_t)snprintf(big, sizeof(big), "command=\"");
	memset(big + at, 'x', AUTHKEYS_OPTIONS_MAX);
	snprintf(big + at + AUTHKEYS_OPTIONS_MAX, sizeof(big) - at - AUTHKEYS_OPTIONS_MAX, "\" @0\n");
	ak = parse(big);
	ok(ak && authkeys_invalid(ak) == 1 && authkeys_count(ak) == 0, "options over the limit: invalid");
	authkeys_free(ak);
}

static void test_from(void)
{
	static const struct {
		const char *pat, *addr;
		int want;
	} cases[] = {
		{ "192.168.1.*", "192.168.1.7", 0 },
		{ "192.168.1.*", "192.168.2.7", -1 },
		{ "192.168.1.*", NULL, -1 },
		{ "10.0.0.?", "10.0.0.5", 0 },
		{ "10.0.0.?", "10.0.0.55", -1 },
		{ "10.0.0.0/8,!10.1.2.3", "10.200.1.1", 0 },
		{ "10.0.0.0/8,!10.1.2.3", "10.1.2.3", -1 },
		{ "!10.1.2.3,10.0.0.0/8", "10.1.2.3", -1 },
		{ "10.0.0.0/8,!10.1.2.3", "11.0.0.1", -1 },
		{ "!192.168.1.5,*", "192.168.1.5", -1 },
		{ "!192.168.1.5,*", "1.2.3.4", 0 },
		{ "!192.168.1.5,*", "::1", 0 },
		{ "!192.168.1.5", "1.2.3.4", -1 },
		{ "192.168.0.0/16,!192.168.7.0/24", "192.168.7.9", -1 },
		{ "192.168.0.0/16,!192.168.7.0/24", "192.168.8.9", 0 },
		{ "172.16.0.0/12", "172.31.255.255", 0 },
		{ "172.16.0.0/12", "172.32.0.1", -1 },
		{ "10.0.0.1", "10.0.0.1", 0 },
		{ "10.0.0.1", "10.0.0.10", -1 },
		{ "10.0.0.1/32", "10.0.0.1", 0 },
		{ "0.0.0.0/0", "8.8.8.8", 0 },
		{ "0.0.0.0/0", "::1", -1 },
		{ "2001:db8::/32", "2001:db8:1::5", 0 },
		{ "2001:db8::/32", "2001:DB8::1", 0 },
		{ "2001:db8::/32", "2001:db9::1", -1 },
		{ "2001:db8::/32", "10.0.0.1", -1 },
		{ "2001:db8::/33,!2001:db8:0:1::/64", "2001:db8:0:1::7", -1 },
		{ "2001:db8::/33,!2001:db8:0:1::/64", "2001:db8:0:2::7", 0 },
		{ "::1", "::1", 0 },
		{ "::1", "0:0:0:0:0:0:0:1", 0 },
		{ "::1", "[::1]", 0 },
		{ "::1", "127.0.0.1", -1 },
		{ "fe80::/10", "fe80::1%eth0", 0 },
		{ "::/0", "2001:db8::1", 0 },
		{ "::/0", "::ffff:1.2.3.4", -1 },
		{ "10.0.0.0/8", "::ffff:10.1.1.1", 0 },
		{ "2001:db8::*", "2001:db8::5", 0 },
		{ "2001:DB8::*", "2001:db8::5", 0 },
		{ "*", "UNKNOWN", -1 },
		{ "*", "", -1 },
		{ "*", "1.2.3.4", 0 },
		{ "*.example.com", "1.2.3.4", -1 },
		{ "!*.example.com,1.2.3.4", "1.2.3.4", 0 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char tpl[512];
		snprintf(tpl, sizeof(tpl), "from=\"%s\" @0\n", cases[i].pat);
		is_int(match1(tpl, K_ED1, cases[i].addr, NULL), cases[i].want, "from: [%s] %s %s",
		       cases[i].pat, cases[i].addr ? cases[i].addr : "NULL",
		       cases[i].want ? "denied" : "allowed");
	}

	/* First matching line wins; a from= mismatch falls through to later lines. */
	static const char tpl[] = "from=\"10.0.0.0/8\",command=\"inside\" @0 first\n"
				  "command=\"outside\" @0 second\n";
	struct authkeys_opts o;
	is_int(match1(tpl, K_ED1, "10.1.1.1", &o), 0, "order: inside matches");
	ok(o.command && !strcmp(o.command, "inside") && !strcmp(o.comment, "first"),
	   "order: ... the from= line");
	authkeys_opts_clear(&o);
	is_int(match1(tpl, K_ED1, "192.168.1.1", &o), 0, "order: outside matches");
	ok(o.command && !strcmp(o.command, "outside") && !strcmp(o.comment, "second"),
	   "order: ... the later line");
	authkeys_opts_clear(&o);
	is_int(match1(tpl, K_ED1, NULL, &o), 0, "order: local client matches");
	ok(o.command && !strcmp(o.command, "outside"), "order: ... the line without from=");
	authkeys_opts_clear(&o);
}

static void write_file(const char *path, const char *text, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text))
		bail_out("cannot write a test file");
	fchmod(fd, mode);
	close(fd);
}

static void test_load(void)
{
	char path[256], err[256];
	snprintf(path, sizeof(path), "%s/authorized_keys", dir);
	struct authkeys *ak = authkeys_load(path, err, sizeof(err));
	ok(!ak && strstr(err, path), "load: missing file gives NULL and a message");
	authkeys_free(ak);

	write_file(path, expand("restrict @0 one\nbogus @1 two\n@2 three\n"), 0644);
	ak = authkeys_load(path, err, sizeof(err));
	ok(ak && authkeys_count(ak) == 2 && authkeys_invalid(ak) == 1, "load: mode 0644 file loads");
	struct authkeys_opts o;
	ok(ak && authkeys_match(ak, keys[K_EC], "::1", &o) == 0 && !strcmp(o.comment, "three"),
	   "load: a line after an invalid one matches");
	authkeys_opts_clear(&o);
	ok(ak && authkeys_match(ak, keys[K_ED2], "::1", &o) == -1, "load: invalid line's key refused");
	authkeys_free(ak);

	chmod(path, 0664);
	ak = authkeys_load(path, err, sizeof(err));
	ok(!ak && strstr(err, "writable"), "load: group-writable file refused (%s)", err);
	authkeys_free(ak);
	chmod(path, 0602);
	ak = authkeys_load(path, err, sizeof(err));
	ok(!ak, "load: world-writable file refused");
	authkeys_free(ak);
	ak = authkeys_load(dir, err, sizeof(err));
	ok(!ak && strstr(err, "regular"), "load: a directory is refused");
	authkeys_free(ak);

	write_file(path, "", 0600);
	ak = authkeys_load(path, err, sizeof(err));
	ok(ak && authkeys_count(ak) == 0 && authkeys_match(ak, keys[K_ED1], NULL, &o) == -1,
	   "load: empty file authorizes nothing");
	authkeys_free(ak);
}

/* Every byte replaced by characters that matter to the parser: no crash,
 * and whatever still matches K_ED1 is the line that names it. */
static void test_mutations(void)
{
	const char *text = expand("restrict,command=\"a, \\\"b\\\"\",from=\"10.0.0.0/8,!10.1.1.1\" "
				  "@0 c\nno-pty @1 d\n");
	size_t n = strlen(text);
	char *buf = malloc(n + 1);
	static const char repl[] = { '"', ',', ' ', '\n', '=', '!', '\\', 0, '/', '*' };
	size_t parsed = 0;
	for (size_t i = 0; i < n; i++) {
		for (size_t j = 0; j < sizeof(repl); j++) {
			memcpy(buf, text, n);
			buf[i] = repl[j];
			struct authkeys *ak = authkeys_parse("mut", (struct sv){ (uint8_t *)buf, n });
			struct authkeys_opts o;
			if (ak) {
				parsed++;
				authkeys_match(ak, keys[K_ED1], "10.2.3.4", &o);
				authkeys_opts_clear(&o);
			}
			authkeys_free(ak);
		}
	}
	is_int(parsed, n * sizeof(repl), "mutations: %zu mutated files parsed without trouble",
	       parsed);
	free(buf);
}

int main(void)
{
	if (run("command -v ssh-keygen >/dev/null") != 0) {
		skip(1, "ssh-keygen not installed");
		return done_testing();
	}
	log_level = LOG_ERR; /* invalid lines are expected here; keep stderr quiet */
	const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	snprintf(dir, sizeof(dir), "%s/wicket-authkeys-XXXXXX", tmp);
	if (!mkdtemp(dir))
		bail_out("mkdtemp");
	if (run("cd %s && ssh-keygen -q -t ed25519 -N '' -f ed1 && "
		"ssh-keygen -q -t ed25519 -N '' -f ed2 && "
		"ssh-keygen -q -t ecdsa -b 256 -N '' -f ec && "
		"ssh-keygen -q -t rsa -b 3072 -N '' -f rsa && "
		"ssh-keygen -q -t ed25519 -N '' -f ed3 && "
		"ssh-keygen -q -t rsa -b 1024 -N '' -f rsa1024",
		dir) != 0)
		bail_out("ssh-keygen failed");
	for (int i = 0; i < NKEYS; i++)
		if (!load_key(i))
			bail_out("cannot read a generated public key");
	ok(keys[K_RSA1024] == NULL, "setup: a 1024-bit RSA key is not a usable key");

	test_mixed_file();
	test_invalid_lines();
	test_options();
	test_sshd9_options();
	test_from();
	test_load();
	test_mutations();

	for (int i = 0; i < NKEYS; i++)
		sshkey_free(keys[i]);
	run("rm -rf %s", dir);
	return done_testing();
}
