/* SPDX-License-Identifier: MIT */
/*
 * authorized_keys parsing and matching (sshd(8) AUTHORIZED_KEYS FILE FORMAT;
 * the subset and the stricter choices are described in authkeys.h).
 * Parsing works on views of the file text and never exits; a bad line is
 * logged and dropped, everything else keeps working.
 */
#include "authkeys.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

#define AK_FILE_MAX (4u * 1024 * 1024)

struct ak_entry {
	struct sshkey *key;
	char *from; /* from= pattern list, or NULL */
	bool principals_seen;
	struct authkeys_opts opts;
	unsigned line;
};

struct authkeys {
	char *origin;
	struct ak_entry *v;
	size_t n, cap;
	size_t invalid;
};

enum opt_id {
	OPT_RESTRICT,
	OPT_NO_PORT_FWD,
	OPT_PORT_FWD,
	OPT_NO_PTY,
	OPT_PTY,
	OPT_NO_AGENT_FWD,
	OPT_AGENT_FWD,
	OPT_NO_X11_FWD,
	OPT_X11_FWD,
	OPT_NO_USER_RC,
	OPT_USER_RC,
	OPT_COMMAND,
	OPT_FROM,
	OPT_EXPIRY,
	OPT_ENV,
	OPT_PERMITOPEN,
	OPT_PERMITLISTEN,
	OPT_PRINCIPALS,
};

static const struct option_def {
	const char *name; /* matched case-insensitively */
	enum opt_id id;
	bool has_value;	  /* name="value" */
} option_defs[] = {
	{ "restrict", OPT_RESTRICT, false },
	{ "no-port-forwarding", OPT_NO_PORT_FWD, false },
	{ "port-forwarding", OPT_PORT_FWD, false },
	{ "no-pty", OPT_NO_PTY, false },
	{ "pty", OPT_PTY, false },
	{ "no-agent-forwarding", OPT_NO_AGENT_FWD, false },
	{ "agent-forwarding", OPT_AGENT_FWD, false },
	{ "no-X11-forwarding", OPT_NO_X11_FWD, false },
	{ "X11-forwarding", OPT_X11_FWD, false },
	{ "no-user-rc", OPT_NO_USER_RC, false },
	{ "user-rc", OPT_USER_RC, false },
	{ "command", OPT_COMMAND, true },
	{ "from", OPT_FROM, true },
	{ "expiry-time", OPT_EXPIRY, true },
	{ "environment", OPT_ENV, true },
	{ "permitopen", OPT_PERMITOPEN, true },
	{ "permitlisten", OPT_PERMITLISTEN, true },
	{ "principals", OPT_PRINCIPALS, true },
};

/* sshd options wicket cannot honour: the line is refused, saying why. */
static const struct {
	const char *name, *why;
} refused_defs[] = {
	{ "cert-authority", "cert-authority: certificates are not supported (and a CA line "
			    "never authorizes a plain key)" },
	{ "tunnel", "tunnel=: tun device forwarding is not supported" },
	{ "no-touch-required", "no-touch-required: FIDO keys are not supported" },
	{ "verify-required", "verify-required: FIDO keys are not supported" },
};

static const char *const key_types[] = { "ssh-ed25519", "ecdsa-sha2-nistp256", "ssh-rsa" };
/* Recognised only to say "unsupported" rather than "bad option". */
static const char *const other_key_types[] = { "ssh-dss", "ecdsa-sha2-nistp384",
					       "ecdsa-sha2-nistp521" };

struct ipaddr {
	int af;
	uint8_t a[16];
};

/* The client as from= sees it: its address and that address's text. */
struct client {
	struct ipaddr ip;
	char text[INET6_ADDRSTRLEN];
};

static void freep(void *p) { free(*(void **)p); }
static void closep(int *fd) { if (*fd >= 0) close(*fd); }
static void bufp_free(struct buf *b) { buf_free(b); }
#define AUTO(f) __attribute__((cleanup(f)))

/* ---- text cursor helpers over struct rd ---- */

static bool is_ws(uint8_t c)
{
	return c == ' ' || c == '\t';
}

static int rd_peek(const struct rd *r)
{
	return rd_left(r) ? r->p[r->off] : -1;
}

static void rd_skip_ws(struct rd *r)
{
	while (rd_left(r) && is_ws(r->p[r->off]))
		r->off++;
}

/* Bytes up to the next space/tab or the end. */
static struct sv rd_token(struct rd *r)
{
	size_t s = r->off;
	while (rd_left(r) && !is_ws(r->p[r->off]))
		r->off++;
	return (struct sv){ r->p + s, r->off - s };
}

/*
 * The options field: up to the first space or tab outside double quotes;
 * \" inside quotes is a quote.  An unterminated quote sets the error.
 */
static struct sv rd_options_field(struct rd *r)
{
	size_t s = r->off;
	bool quoted = false;
	while (rd_left(r)) {
		uint8_t c = r->p[r->off];
		if (!quoted && is_ws(c))
			break;
		if (quoted && c == '\\' && r->off + 1 < r->n && r->p[r->off + 1] == '"')
			r->off++;
		else if (c == '"')
			quoted = !quoted;
		r->off++;
	}
	if (quoted)
		r->err = true;
	return (struct sv){ r->p + s, r->off - s };
}

/* A "quoted value" (\" is a quote) as a heap string; NULL when malformed. */
static char *rd_dequote(struct rd *r)
{
	if (rd_peek(r) != '"')
		return NULL;
	r->off++;
	AUTO(freep) char *out = malloc(rd_left(r) + 1);
	if (!out)
		return NULL;
	size_t n = 0;
	for (;;) {
		if (!rd_left(r))
			return NULL; /* missing end quote */
		uint8_t c = rd_u8(r);
		if (c == '"')
			break;
		if (c == '\\' && rd_peek(r) == '"')
			c = rd_u8(r);
		out[n++] = (char)c;
	}
	out[n] = 0;
	char *ret = out;
	out = NULL;
	return ret;
}

static bool sv_in(struct sv s, const char *const *list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (sv_eq(s, list[i]))
			return true;
	return false;
}

static bool sv_ieq(struct sv s, const char *z)
{
	return s.n == strlen(z) && strncasecmp((const char *)s.p, z, s.n) == 0;
}

/* ---- addresses and from= patterns ---- */

static bool ip_parse(const char *s, size_t n, struct ipaddr *ip)
{
	char tmp[INET6_ADDRSTRLEN + 1];
	if (n == 0 || n >= sizeof(tmp))
		return false;
	memcpy(tmp, s, n);
	tmp[n] = 0;
	if (inet_pton(AF_INET, tmp, ip->a) == 1) {
		ip->af = AF_INET;
		return true;
	}
	if (inet_pton(AF_INET6, tmp, ip->a) == 1) {
		ip->af = AF_INET6;
		return true;
	}
	return false;
}

static unsigned ip_bits(const struct ipaddr *ip)
{
	return ip->af == AF_INET ? 32 : 128;
}

static bool ip_bit(const struct ipaddr *ip, unsigned i)
{
	return ip->a[i / 8] & (0x80 >> (i % 8));
}

/*
 * "address" or "address/bits".  -1 when it is no address, -2 when the mask
 * length is out of range or host bits are set (sshd refuses those too).
 */
static int cidr_parse(const char *s, size_t n, struct ipaddr *net, unsigned *bits)
{
	const char *slash = memchr(s, '/', n);
	if (!ip_parse(s, slash ? (size_t)(slash - s) : n, net))
		return -1;
	*bits = ip_bits(net);
	if (!slash)
		return 0;
	const char *d = slash + 1;
	size_t dn = n - (size_t)(d - s);
	if (dn == 0 || dn > 3)
		return -2;
	unsigned v = 0;
	for (size_t i = 0; i < dn; i++) {
		if (d[i] < '0' || d[i] > '9')
			return -2;
		v = v * 10 + (unsigned)(d[i] - '0');
	}
	if (v > ip_bits(net))
		return -2;
	for (unsigned i = v; i < ip_bits(net); i++)
		if (ip_bit(net, i))
			return -2;
	*bits = v;
	return 0;
}

static bool ip_in_net(const struct ipaddr *a, const struct ipaddr *net, unsigned bits)
{
	if (a->af != net->af)
		return false;
	for (unsigned i = 0; i < bits; i++)
		if (ip_bit(a, i) != ip_bit(net, i))
			return false;
	return true;
}

static int lower(char c)
{
	return tolower((unsigned char)c);
}

/* '*' any run, '?' any one character; @fold: case-insensitive. */
static bool glob_match_as(const char *s, size_t sn, const char *p, size_t pn, bool fold)
{
	size_t si = 0, pi = 0, star = SIZE_MAX, mark = 0;
	while (si < sn) {
		if (pi < pn && p[pi] == '*') {
			star = pi++;
			mark = si;
		} else if (pi < pn && (p[pi] == '?' || p[pi] == s[si] ||
				       (fold && lower(p[pi]) == lower(s[si])))) {
			si++;
			pi++;
		} else if (star != SIZE_MAX) {
			pi = star + 1;
			si = ++mark;
		} else {
			return false;
		}
	}
	while (pi < pn && p[pi] == '*')
		pi++;
	return pi == pn;
}

static bool glob_match(const char *s, size_t sn, const char *p, size_t pn)
{
	return glob_match_as(s, sn, p, pn, true);
}

/* Case-sensitive, as sshd's match_pattern for permitlisten and environment. */
static bool glob_exact(const char *s, size_t sn, const char *p, size_t pn)
{
	return glob_match_as(s, sn, p, pn, false);
}

/* Is this from= entry (without '!') an address or network? */
static bool entry_is_cidr(const char *e, size_t n)
{
	struct ipaddr tmp;
	return memchr(e, '/', n) || ip_parse(e, n, &tmp);
}

/* Check a from= list at load time so a typo invalidates the line early. */
static int from_validate(const char *list, char *why, size_t whylen)
{
	for (const char *p = list;;) {
		const char *comma = strchr(p, ',');
		size_t n = comma ? (size_t)(comma - p) : strlen(p);
		const char *e = p;
		if (n && *e == '!') {
			e++;
			n--;
		}
		if (n == 0) {
			snprintf(why, whylen, "empty entry in from=");
			return -1;
		}
		struct ipaddr net;
		unsigned bits;
		if (memchr(e, '/', n) && cidr_parse(e, n, &net, &bits) != 0) {
			char shown[64];
			sv_printable((struct sv){ (const uint8_t *)e, n }, shown, sizeof(shown));
			snprintf(why, whylen, "bad address/bits \"%s\" in from=", shown);
			return -1;
		}
		if (!comma)
			return 0;
		p = comma + 1;
	}
}

/*
 * sshd's address list semantics: 1 when a positive entry matches, -1 as soon
 * as a negated one does, 0 when nothing matches.
 */
static int from_match(const char *list, const struct client *c)
{
	int ret = 0;
	for (const char *p = list;;) {
		const char *comma = strchr(p, ',');
		size_t n = comma ? (size_t)(comma - p) : strlen(p);
		const char *e = p;
		bool neg = n && *e == '!';
		if (neg) {
			e++;
			n--;
		}
		bool hit;
		if (entry_is_cidr(e, n)) {
			struct ipaddr net;
			unsigned bits;
			hit = cidr_parse(e, n, &net, &bits) == 0 && ip_in_net(&c->ip, &net, bits);
		} else {
			hit = glob_match(c->text, strlen(c->text), e, n);
		}
		if (hit && neg)
			return -1;
		if (hit)
			ret = 1;
		if (!comma)
			return ret;
		p = comma + 1;
	}
}

/* An address literal, optionally [bracketed] and with a %zone; IPv4-mapped
 * IPv6 becomes IPv4. */
static bool client_parse(const char *addr, struct client *c)
{
	if (!addr)
		return false;
	size_t n = strlen(addr);
	if (n >= 2 && addr[0] == '[' && addr[n - 1] == ']') {
		addr++;
		n -= 2;
	}
	const char *zone = memchr(addr, '%', n);
	if (zone)
		n = (size_t)(zone - addr);
	if (!ip_parse(addr, n, &c->ip))
		return false;
	static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
	if (c->ip.af == AF_INET6 && memcmp(c->ip.a, mapped, sizeof(mapped)) == 0) {
		memmove(c->ip.a, c->ip.a + 12, 4);
		c->ip.af = AF_INET;
	}
	return inet_ntop(c->ip.af, c->ip.a, c->text, sizeof(c->text)) != NULL;
}

/* ---- lines ---- */

static void entry_clear(struct ak_entry *e)
{
	sshkey_free(e->key);
	free(e->from);
	authkeys_opts_clear(&e->opts);
	*e = (struct ak_entry){ 0 };
}

static const struct option_def *option_find(struct sv name)
{
	for (size_t i = 0; i < sizeof(option_defs) / sizeof(option_defs[0]); i++)
		if (sv_ieq(name, option_defs[i].name))
			return &option_defs[i];
	return NULL;
}

/* environment="NAME=value": NAME of [A-Za-z0-9_]; the first of a name counts. */
static int env_add(struct authkeys_opts *o, char *val, char *why, size_t whylen)
{
	const char *eq = strchr(val, '=');
	bool ok = eq && eq != val;
	for (const char *p = val; ok && p < eq; p++)
		ok = isalnum((unsigned char)*p) || *p == '_';
	if (!ok) {
		snprintf(why, whylen, "bad environment= (NAME=value, NAME of letters, digits, _)");
		free(val);
		return -1;
	}
	size_t nl = (size_t)(eq - val) + 1;
	for (size_t i = 0; i < o->nenv; i++) {
		if (strncmp(o->env[i], val, nl) == 0) {
			free(val); /* sshd keeps the first */
			return 0;
		}
	}
	if (o->nenv >= AUTHKEYS_MAX_LIST) {
		snprintf(why, whylen, "more than %u environment= options", AUTHKEYS_MAX_LIST);
		free(val);
		return -1;
	}
	char **nv = realloc(o->env, (o->nenv + 1) * sizeof(*nv));
	if (!nv) {
		snprintf(why, whylen, "out of memory");
		free(val);
		return -1;
	}
	o->env = nv;
	o->env[o->nenv++] = val;
	return 0;
}

/* A port: "*" (-1) or 1..65535; 0 when malformed. */
static int permit_port(const char *s)
{
	if (strcmp(s, "*") == 0)
		return -1;
	if (!*s || strlen(s) > 5)
		return 0;
	unsigned v = 0;
	for (const char *p = s; *p; p++) {
		if (*p < '0' || *p > '9')
			return 0;
		v = v * 10 + (unsigned)(*p - '0');
	}
	return v >= 1 && v <= 65535 ? (int)v : 0;
}

/*
 * permitopen="host:port", permitlisten="[host:]port" (a bare port listens
 * on any host); IPv6 hosts in [brackets].  Takes @val.
 */
static int permit_add(struct authkeys_opts *o, bool listen, char *val, char *why, size_t whylen)
{
	const char *name = listen ? "permitlisten" : "permitopen";
	char *host = val, *port = NULL;
	if (val[0] == '[') {
		char *end = strchr(val, ']');
		if (end && end[1] == ':') {
			*end = 0;
			host = val + 1;
			port = end + 2;
		}
	} else {
		char *colon = strrchr(val, ':');
		if (colon && !memchr(val, ':', (size_t)(colon - val))) {
			*colon = 0;
			port = colon + 1;
		} else if (!colon && listen) {
			host = (char *)"*";
			port = val;
		}
	}
	int pn = port ? permit_port(port) : 0;
	size_t *n = listen ? &o->npermitlisten : &o->npermitopen;
	struct authkeys_permit **v = listen ? &o->permitlisten : &o->permitopen;
	if (!port || !*host || strlen(host) >= 1025 || !pn) {
		snprintf(why, whylen, "bad %s= (%s)", name,
			 listen ? "[host:]port, port a number or *" : "host:port, port a number or *");
		free(val);
		return -1;
	}
	if (*n >= AUTHKEYS_MAX_LIST) {
		snprintf(why, whylen, "more than %u %s= options", AUTHKEYS_MAX_LIST, name);
		free(val);
		return -1;
	}
	struct authkeys_permit *nv = realloc(*v, (*n + 1) * sizeof(*nv));
	char *h = strdup(host);
	free(val);
	if (!nv || !h) {
		if (nv)
			*v = nv;
		free(h);
		snprintf(why, whylen, "out of memory");
		return -1;
	}
	*v = nv;
	nv[(*n)++] = (struct authkeys_permit){ .host = h, .port = pn };
	return 0;
}

/* Apply one option in file order; takes @val.  -1 (why set) when invalid. */
static int option_apply(struct ak_entry *e, const struct option_def *d, char *val, char *why,
			size_t whylen)
{
	struct authkeys_opts *o = &e->opts;
	switch (d->id) {
	case OPT_RESTRICT:
		o->restrict_all = true;
		o->no_port_forwarding = o->no_pty = o->no_agent_forwarding = true;
		o->no_x11_forwarding = o->no_user_rc = true;
		o->port_forwarding = o->pty = false;
		break;
	case OPT_NO_PORT_FWD:
		o->no_port_forwarding = true;
		o->port_forwarding = false;
		break;
	case OPT_PORT_FWD:
		o->no_port_forwarding = false;
		o->port_forwarding = true;
		break;
	case OPT_NO_PTY:
		o->no_pty = true;
		o->pty = false;
		break;
	case OPT_PTY:
		o->no_pty = false;
		o->pty = true;
		break;
	case OPT_NO_AGENT_FWD:
	case OPT_AGENT_FWD:
		o->no_agent_forwarding = d->id == OPT_NO_AGENT_FWD;
		break;
	case OPT_NO_X11_FWD:
	case OPT_X11_FWD:
		o->no_x11_forwarding = d->id == OPT_NO_X11_FWD;
		break;
	case OPT_NO_USER_RC:
	case OPT_USER_RC:
		o->no_user_rc = d->id == OPT_NO_USER_RC;
		break;
	case OPT_COMMAND:
		if (o->command) {
			snprintf(why, whylen, "more than one command= option");
			free(val);
			return -1;
		}
		o->command = val;
		break;
	case OPT_FROM:
		if (e->from) {
			snprintf(why, whylen, "more than one from= option");
			free(val);
			return -1;
		}
		e->from = val;
		return from_validate(val, why, whylen);
	case OPT_EXPIRY: {
		uint64_t t;
		int bad = authkeys_parse_time(val, &t) < 0 || t == 0;
		if (bad) {
			char shown[40];
			sv_printable((struct sv){ (const uint8_t *)val, strlen(val) }, shown,
				     sizeof(shown));
			snprintf(why, whylen,
				 "bad expiry-time \"%s\" (YYYYMMDD[HHMM[SS]], Z or UTC for UTC)", shown);
		} else if (!o->expiry || t < o->expiry) {
			o->expiry = t; /* the earliest wins */
		}
		free(val);
		return bad ? -1 : 0;
	}
	case OPT_ENV:
		return env_add(o, val, why, whylen);
	case OPT_PERMITOPEN:
	case OPT_PERMITLISTEN:
		return permit_add(o, d->id == OPT_PERMITLISTEN, val, why, whylen);
	case OPT_PRINCIPALS:
		/* sshd reads it only on cert-authority lines; a plain key ignores it. */
		if (e->principals_seen) {
			snprintf(why, whylen, "more than one principals= option");
			free(val);
			return -1;
		}
		e->principals_seen = true;
		free(val);
		break;
	}
	return 0;
}

static int parse_options(struct sv field, struct ak_entry *e, char *why, size_t whylen)
{
	struct rd r;
	rd_init(&r, field.p, field.n);
	for (;;) {
		size_t s = r.off;
		while (rd_left(&r) && rd_peek(&r) != '=' && rd_peek(&r) != ',')
			r.off++;
		struct sv name = { r.p + s, r.off - s };
		char shown[48];
		sv_printable(name, shown, sizeof(shown));
		const struct option_def *d = option_find(name);
		for (size_t k = 0; !d && k < sizeof(refused_defs) / sizeof(refused_defs[0]); k++) {
			if (sv_ieq(name, refused_defs[k].name)) {
				snprintf(why, whylen, "%s", refused_defs[k].why);
				return -1;
			}
		}
		if (!d) {
			snprintf(why, whylen, "unsupported option \"%s\"", shown);
			return -1;
		}
		char *val = NULL;
		if (d->has_value) {
			if (rd_u8(&r) != '=' || !(val = rd_dequote(&r))) {
				snprintf(why, whylen, "option %s needs a \"quoted\" value", d->name);
				return -1;
			}
		} else if (rd_peek(&r) == '=') {
			snprintf(why, whylen, "option %s takes no value", d->name);
			return -1;
		}
		if (option_apply(e, d, val, why, whylen) < 0)
			return -1;
		if (!rd_left(&r))
			return 0;
		if (rd_u8(&r) != ',' || !rd_left(&r)) {
			snprintf(why, whylen, "malformed options after %s", d->name);
			return -1;
		}
	}
}

/* A key type we know of but do not support (DSA, other curves, FIDO, certs). */
static bool key_type_other(struct sv type)
{
	return sv_in(type, other_key_types, sizeof(other_key_types) / sizeof(other_key_types[0])) ||
	       (type.n > 12 && memcmp(type.p + type.n - 12, "@openssh.com", 12) == 0);
}

/* Parse one non-comment line into @e; -1 with a reason when invalid. */
static int parse_entry(struct rd *r, struct ak_entry *e, char *why, size_t whylen)
{
	size_t start = r->off;
	struct sv type = rd_token(r);
	struct sv opts = SV_NULL;
	if (!sv_in(type, key_types, sizeof(key_types) / sizeof(key_types[0])) &&
	    !key_type_other(type)) {
		r->off = start;
		opts = rd_options_field(r);
		if (r->err) {
			snprintf(why, whylen, "unterminated quote in the options");
			return -1;
		}
		rd_skip_ws(r);
		type = rd_token(r);
	}
	char shown[48];
	sv_printable(type, shown, sizeof(shown));
	if (!sv_in(type, key_types, sizeof(key_types) / sizeof(key_types[0]))) {
		if (key_type_other(type))
			snprintf(why, whylen, "unsupported key type %s", shown);
		else
			snprintf(why, whylen, "no supported key type where expected (\"%s\")", shown);
		return -1;
	}
	rd_skip_ws(r);
	struct sv b64 = rd_token(r);
	rd_skip_ws(r);
	struct sv comment = rd_rest(r);
	e->key = sshkey_from_openssh_public(type, b64);
	if (!e->key) {
		snprintf(why, whylen, "cannot parse the %s key (malformed%s)", shown,
			 sv_eq(type, "ssh-rsa") ? ", or shorter than 2048 bits" : "");
		return -1;
	}
	if (opts.n > AUTHKEYS_OPTIONS_MAX) {
		snprintf(why, whylen, "options longer than %u bytes", AUTHKEYS_OPTIONS_MAX);
		return -1;
	}
	if (opts.n && parse_options(opts, e, why, whylen) < 0)
		return -1;
	sv_printable(comment, e->opts.comment, sizeof(e->opts.comment));
	return 0;
}

static int add_line(struct authkeys *ak, struct sv line, unsigned lineno)
{
	while (line.n && (line.p[line.n - 1] == '\r' || is_ws(line.p[line.n - 1])))
		line.n--;
	struct rd r;
	rd_init(&r, line.p, line.n);
	rd_skip_ws(&r);
	if (!rd_left(&r) || rd_peek(&r) == '#')
		return 0;
	char why[200] = "";
	struct ak_entry e = { .line = lineno };
	if (sv_has_nul(line))
		snprintf(why, sizeof(why), "NUL byte in the line");
	if (why[0] || parse_entry(&r, &e, why, sizeof(why)) < 0) {
		ak->invalid++;
		log_warn("%s:%u: %s; line ignored", ak->origin, lineno, why);
		entry_clear(&e);
		return 0;
	}
	if (ak->n == ak->cap) {
		size_t ncap = ak->cap ? ak->cap * 2 : 8;
		struct ak_entry *nv = realloc(ak->v, ncap * sizeof(*nv));
		if (!nv) {
			entry_clear(&e);
			return -1;
		}
		ak->v = nv;
		ak->cap = ncap;
	}
	ak->v[ak->n++] = e;
	return 0;
}

struct authkeys *authkeys_parse(const char *origin, struct sv text)
{
	struct authkeys *ak = calloc(1, sizeof(*ak));
	if (!ak || !(ak->origin = strdup(origin ? origin : "authorized_keys"))) {
		free(ak);
		return NULL;
	}
	struct rd r;
	rd_init(&r, text.p, text.n);
	unsigned lineno = 0;
	while (rd_left(&r)) {
		lineno++;
		const uint8_t *nl = memchr(r.p + r.off, '\n', rd_left(&r));
		struct sv line = rd_bytes(&r, nl ? (size_t)(nl - (r.p + r.off)) : rd_left(&r));
		if (nl)
			(void)rd_u8(&r);
		if (add_line(ak, line, lineno) < 0) {
			authkeys_free(ak);
			return NULL;
		}
	}
	return ak;
}

struct authkeys *authkeys_load(const char *path, char *err, size_t errlen)
{
	if (errlen)
		err[0] = 0;
	AUTO(closep) int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s: not a regular file", path);
		return NULL;
	}
	if (st.st_mode & 022) {
		snprintf(err, errlen, "%s: writable by group or others (mode %04o); refusing it",
			 path, (unsigned)(st.st_mode & 07777));
		return NULL;
	}
	if (st.st_uid != geteuid() && st.st_uid != 0) {
		snprintf(err, errlen, "%s: owned by uid %u, not by us or root; refusing it", path,
			 (unsigned)st.st_uid);
		return NULL;
	}
	if ((uintmax_t)st.st_size > AK_FILE_MAX) {
		snprintf(err, errlen, "%s: larger than %u bytes", path, AK_FILE_MAX);
		return NULL;
	}
	AUTO(bufp_free) struct buf text;
	buf_init(&text, AK_FILE_MAX);
	for (;;) {
		uint8_t *w = buf_reserve(&text, 64 * 1024);
		if (!w) {
			snprintf(err, errlen, "%s: too large or out of memory", path);
			return NULL;
		}
		ssize_t n = read(fd, w, 64 * 1024);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			snprintf(err, errlen, "%s: %s", path, strerror(errno));
			return NULL;
		}
		if (n == 0)
			break;
		buf_commit(&text, (size_t)n);
	}
	struct authkeys *ak = authkeys_parse(path, (struct sv){ buf_data(&text), buf_used(&text) });
	if (!ak)
		snprintf(err, errlen, "%s: out of memory", path);
	return ak;
}

void authkeys_free(struct authkeys *ak)
{
	if (!ak)
		return;
	for (size_t i = 0; i < ak->n; i++)
		entry_clear(&ak->v[i]);
	free(ak->v);
	free(ak->origin);
	free(ak);
}

size_t authkeys_count(const struct authkeys *ak)
{
	return ak ? ak->n : 0;
}

size_t authkeys_invalid(const struct authkeys *ak)
{
	return ak ? ak->invalid : 0;
}

int authkeys_match(const struct authkeys *ak, const struct sshkey *key,
		   const char *client_addr, struct authkeys_opts *opts)
{
	time_t now = time(NULL);
	return authkeys_match_at(ak, key, client_addr, now > 0 ? (uint64_t)now : 0, opts);
}

int authkeys_match_at(const struct authkeys *ak, const struct sshkey *key,
		      const char *client_addr, uint64_t now, struct authkeys_opts *opts)
{
	*opts = (struct authkeys_opts){ 0 };
	if (!ak || !key)
		return -1;
	struct client c;
	bool have_addr = client_parse(client_addr, &c);
	for (size_t i = 0; i < ak->n; i++) {
		const struct ak_entry *e = &ak->v[i];
		if (!sshkey_equal(e->key, key))
			continue;
		if (e->from && (!have_addr || from_match(e->from, &c) != 1)) {
			log_info("%s:%u: key matches but client %s is not allowed by from=",
				 ak->origin, e->line, have_addr ? c.text : "(no address)");
			continue;
		}
		/* As sshd: still valid at the second it names, refused after. */
		if (e->opts.expiry && now > e->opts.expiry) {
			char when[64] = "?";
			time_t t = (time_t)e->opts.expiry;
			struct tm tm;
			if (gmtime_r(&t, &tm))
				strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", &tm);
			log_warn("%s:%u: key matches but expired at %s (expiry-time=)", ak->origin,
				 e->line, when);
			continue;
		}
		return authkeys_opts_copy(opts, &e->opts);
	}
	return -1;
}

static void permits_free(struct authkeys_permit *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i].host);
	free(v);
}

void authkeys_opts_clear(struct authkeys_opts *o)
{
	free(o->command);
	permits_free(o->permitopen, o->npermitopen);
	permits_free(o->permitlisten, o->npermitlisten);
	for (size_t i = 0; i < o->nenv; i++)
		free(o->env[i]);
	free(o->env);
	*o = (struct authkeys_opts){ 0 };
}

static int permits_copy(struct authkeys_permit **dst, const struct authkeys_permit *src, size_t n)
{
	*dst = NULL;
	if (!n)
		return 0;
	*dst = calloc(n, sizeof(**dst));
	if (!*dst)
		return -1;
	for (size_t i = 0; i < n; i++) {
		(*dst)[i].port = src[i].port;
		if (!((*dst)[i].host = strdup(src[i].host)))
			return -1;
	}
	return 0;
}

int authkeys_opts_copy(struct authkeys_opts *dst, const struct authkeys_opts *src)
{
	*dst = *src;
	dst->command = NULL;
	dst->permitopen = dst->permitlisten = NULL;
	dst->env = NULL;
	dst->nenv = 0;
	bool ok = !src->command || (dst->command = strdup(src->command));
	ok = ok && permits_copy(&dst->permitopen, src->permitopen, src->npermitopen) == 0;
	ok = ok && permits_copy(&dst->permitlisten, src->permitlisten, src->npermitlisten) == 0;
	if (ok && src->nenv) {
		dst->env = calloc(src->nenv, sizeof(*dst->env));
		ok = dst->env != NULL;
		for (size_t i = 0; ok && i < src->nenv; i++, dst->nenv++)
			ok = (dst->env[i] = strdup(src->env[i])) != NULL;
	}
	if (!ok) {
		/* The lists may be partly filled: clear frees what is there. */
		if (!dst->permitopen)
			dst->npermitopen = 0;
		if (!dst->permitlisten)
			dst->npermitlisten = 0;
		authkeys_opts_clear(dst);
		return -1;
	}
	return 0;
}

bool authkeys_allows_port_forwarding(const struct authkeys_opts *o)
{
	return o->port_forwarding || (!o->restrict_all && !o->no_port_forwarding);
}

bool authkeys_allows_pty(const struct authkeys_opts *o)
{
	return o->pty || (!o->restrict_all && !o->no_pty);
}

bool authkeys_allows_agent(const struct authkeys_opts *o)
{
	return !o->no_agent_forwarding; /* restrict sets it, agent-forwarding clears it */
}

bool authkeys_allows_x11(const struct authkeys_opts *o)
{
	return !o->no_x11_forwarding;
}

bool authkeys_permits_open(const struct authkeys_opts *o, struct sv host, uint32_t port)
{
	if (!o->npermitopen)
		return true;
	for (size_t i = 0; i < o->npermitopen; i++) {
		const struct authkeys_permit *p = &o->permitopen[i];
		if (p->port != -1 && (uint32_t)p->port != port)
			continue;
		if (strcmp(p->host, "*") == 0 || sv_eq(host, p->host))
			return true;
	}
	return false;
}

bool authkeys_permits_open_path(const struct authkeys_opts *o)
{
	return o->npermitopen == 0;
}

bool authkeys_permits_listen(const struct authkeys_opts *o, struct sv host, uint32_t port)
{
	if (!o->npermitlisten)
		return true;
	char low[1025];
	if (host.n >= sizeof(low))
		return false;
	for (size_t i = 0; i < host.n; i++)
		low[i] = (char)tolower(host.p[i]);
	for (size_t i = 0; i < o->npermitlisten; i++) {
		const struct authkeys_permit *p = &o->permitlisten[i];
		if (p->port != -1 && (uint32_t)p->port != port)
			continue;
		if (glob_exact(low, host.n, p->host, strlen(p->host)))
			return true;
	}
	return false;
}

/* sshd's match_pattern_list for names: 1 allowed, 0 not (a '!' match denies). */
static bool env_name_permitted(const char *name, size_t nl, const char *list)
{
	bool ok = false;
	for (const char *p = list;;) {
		const char *comma = strchr(p, ',');
		size_t n = comma ? (size_t)(comma - p) : strlen(p);
		bool neg = n && *p == '!';
		const char *e = neg ? p + 1 : p;
		size_t en = neg ? n - 1 : n;
		if (glob_exact(name, nl, e, en)) {
			if (neg)
				return false;
			ok = true;
		}
		if (!comma)
			return ok;
		p = comma + 1;
	}
}

void authkeys_env_filter(struct authkeys_opts *o, const char *permit)
{
	bool all = permit && strcasecmp(permit, "yes") == 0;
	bool none = !permit || strcasecmp(permit, "no") == 0;
	size_t k = 0;
	for (size_t i = 0; i < o->nenv; i++) {
		const char *eq = strchr(o->env[i], '=');
		bool keep = !none && (all || env_name_permitted(o->env[i], (size_t)(eq - o->env[i]),
								 permit));
		if (keep)
			o->env[k++] = o->env[i];
		else
			free(o->env[i]);
	}
	o->nenv = k;
}

int authkeys_parse_time(const char *s, uint64_t *t)
{
	size_t l = strlen(s);
	bool utc = false;
	if (l > 1 && (s[l - 1] == 'Z' || s[l - 1] == 'z')) {
		utc = true;
		l--;
	} else if (l > 3 && strcasecmp(s + l - 3, "UTC") == 0) {
		utc = true;
		l -= 3;
	}
	if (l != 8 && l != 12 && l != 14)
		return -1;
	int v[6] = { 0 };
	static const int width[6] = { 4, 2, 2, 2, 2, 2 };
	size_t at = 0;
	for (int f = 0; f < 6 && at < l; f++) {
		for (int k = 0; k < width[f]; k++, at++) {
			if (s[at] < '0' || s[at] > '9')
				return -1;
			v[f] = v[f] * 10 + (s[at] - '0');
		}
	}
	/* The ranges strptime's %m %d %H %M %S accept. */
	if (v[0] < 1970 || v[1] < 1 || v[1] > 12 || v[2] < 1 || v[2] > 31 || v[3] > 23 ||
	    v[4] > 59 || v[5] > 60)
		return -1;
	struct tm tm = { .tm_year = v[0] - 1900, .tm_mon = v[1] - 1, .tm_mday = v[2],
			 .tm_hour = v[3], .tm_min = v[4], .tm_sec = v[5] };
	/* tm_isdst 0 as sshd leaves it (a zeroed struct tm). */
	time_t tt = utc ? timegm(&tm) : mktime(&tm);
	if (tt < 0)
		return -1;
	*t = (uint64_t)tt;
	return 0;
}
