/* SPDX-License-Identifier: MIT */
/*
 * wicket-auth-plugin: a PuTTY authentication plugin (protocol version 2,
 * PuTTY manual appendix H) that answers `wicket serve --token-file`'s
 * keyboard-interactive one-time token prompt from a file, so PuTTY tools log
 * in without anyone typing the token.
 *
 *   AuthPlugin=wicket-auth-plugin --token-file FILE  (a saved session's line;
 *   in PuTTY: Connection > SSH > Auth > "Plugin to provide authentication
 *   responses"), then plink -load SESSION ...
 *
 * The client (PuTTY) runs us with a pipe pair on stdin/stdout.  Every message
 * is an SSH "string" (uint32 length + bytes) whose first byte is the type.
 * The conversation is half-duplex, so this is straight-line code:
 *
 *   <- PLUGIN_INIT            -> PLUGIN_INIT_RESPONSE (or PLUGIN_INIT_FAILURE)
 *   then, per auth method the client tries with the plugin:
 *   <- PLUGIN_PROTOCOL        -> PLUGIN_PROTOCOL_ACCEPT / PLUGIN_PROTOCOL_REJECT
 *   <- PLUGIN_KI_SERVER_REQUEST
 *        wicket's token prompt -> PLUGIN_KI_SERVER_RESPONSE (the token)
 *        anything else         -> PLUGIN_KI_USER_REQUEST (same prompts)
 *                                 <- PLUGIN_KI_USER_RESPONSE
 *                                 -> PLUGIN_KI_SERVER_RESPONSE (the answers)
 *   <- PLUGIN_AUTH_SUCCESS / PLUGIN_AUTH_FAILURE   (then maybe PROTOCOL again)
 *   EOF on stdin: the client no longer needs us; exit 0.
 *
 * Any malformed or out-of-order message: a line on stderr and exit 2.  A
 * prompt we do not recognise is always passed to the user, so the plugin
 * never blocks a login it does not understand.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"

/* Message type codes (appendix H.6). */
enum {
	PLUGIN_INIT = 1,
	PLUGIN_INIT_RESPONSE = 2,
	PLUGIN_PROTOCOL = 3,
	PLUGIN_PROTOCOL_ACCEPT = 4,
	PLUGIN_PROTOCOL_REJECT = 5,
	PLUGIN_AUTH_SUCCESS = 6,
	PLUGIN_AUTH_FAILURE = 7,
	PLUGIN_INIT_FAILURE = 8,
	PLUGIN_KI_SERVER_REQUEST = 20,
	PLUGIN_KI_SERVER_RESPONSE = 21,
	PLUGIN_KI_USER_REQUEST = 22,
	PLUGIN_KI_USER_RESPONSE = 23,
};

#define PLUGIN_PROTO_VERSION 2u
#define MSG_MAX (256u * 1024u)	/* a message larger than this is an error */
#define MAX_PROMPTS 64u		/* RFC 4256 gives no cap; we do */
#define TOKEN_MAX 256

/* What `wicket serve` sends (host-tool/ssh/userauth.c, auth_kbd_start). */
#define WICKET_KI_NAME "wicket"
#define WICKET_KI_PROMPT "Token: "

#define EXIT_PROTO 2

static const char *prog = "wicket-auth-plugin";

struct plugin {
	const char *token_file;
	const char *user;	/* --user, or NULL: echo the client's */
	struct buf in;		/* the current message (type byte first) */
	bool token_sent;	/* answered a token prompt in this KI phase */
	bool token_refused;	/* a phase where we sent the token failed */
};

__attribute__((format(printf, 1, 2), noreturn))
static void die_proto(const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "%s: protocol error: ", prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(EXIT_PROTO);
}

static const char *type_name(uint8_t t)
{
	switch (t) {
	case PLUGIN_INIT: return "PLUGIN_INIT";
	case PLUGIN_INIT_RESPONSE: return "PLUGIN_INIT_RESPONSE";
	case PLUGIN_PROTOCOL: return "PLUGIN_PROTOCOL";
	case PLUGIN_PROTOCOL_ACCEPT: return "PLUGIN_PROTOCOL_ACCEPT";
	case PLUGIN_PROTOCOL_REJECT: return "PLUGIN_PROTOCOL_REJECT";
	case PLUGIN_AUTH_SUCCESS: return "PLUGIN_AUTH_SUCCESS";
	case PLUGIN_AUTH_FAILURE: return "PLUGIN_AUTH_FAILURE";
	case PLUGIN_INIT_FAILURE: return "PLUGIN_INIT_FAILURE";
	case PLUGIN_KI_SERVER_REQUEST: return "PLUGIN_KI_SERVER_REQUEST";
	case PLUGIN_KI_SERVER_RESPONSE: return "PLUGIN_KI_SERVER_RESPONSE";
	case PLUGIN_KI_USER_REQUEST: return "PLUGIN_KI_USER_REQUEST";
	case PLUGIN_KI_USER_RESPONSE: return "PLUGIN_KI_USER_RESPONSE";
	default: {
		static char other[32];
		snprintf(other, sizeof(other), "unknown type %u", t);
		return other;
	}
	}
}

/* Read exactly n bytes.  Returns n, 0 on EOF before the first byte, or
 * exits on a short read / I/O error. */
static size_t read_full(int fd, uint8_t *p, size_t n, bool eof_ok)
{
	size_t got = 0;
	while (got < n) {
		ssize_t r = read(fd, p + got, n - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			fprintf(stderr, "%s: read: %s\n", prog, strerror(errno));
			exit(EXIT_PROTO);
		}
		if (r == 0) {
			if (got == 0 && eof_ok)
				return 0;
			die_proto("unexpected end of input in the middle of a message");
		}
		got += (size_t)r;
	}
	return got;
}

/**
 * recv_msg() - read one message into p->in.
 * @eof_ok: a clean EOF here (between messages) is allowed.
 *
 * Return: the type code, or -1 on a clean EOF.
 */
static int recv_msg(struct plugin *p, bool eof_ok)
{
	uint8_t len[4];
	if (read_full(STDIN_FILENO, len, 4, eof_ok) == 0)
		return -1;
	uint32_t n = get_be32(len);
	if (n == 0)
		die_proto("empty message (no type code)");
	if (n > MSG_MAX)
		die_proto("message too long");
	buf_reset(&p->in);
	uint8_t *w = buf_reserve(&p->in, n);
	if (!w) {
		fprintf(stderr, "%s: out of memory\n", prog);
		exit(EXIT_PROTO);
	}
	read_full(STDIN_FILENO, w, n, false);
	buf_commit(&p->in, n);
	return buf_data(&p->in)[0];
}

/* A cursor over the current message, after the type code. */
static struct rd msg_body(const struct plugin *p)
{
	struct rd r;
	rd_init(&r, buf_data(&p->in) + 1, buf_used(&p->in) - 1);
	return r;
}

static void send_buf(struct buf *b)
{
	if (b->err || buf_used(b) < 4) {
		fprintf(stderr, "%s: cannot build a message\n", prog);
		exit(EXIT_PROTO);
	}
	put_be32(buf_data(b), (uint32_t)(buf_used(b) - 4)); /* length field */
	const uint8_t *q = buf_data(b);
	size_t left = buf_used(b);
	while (left) {
		ssize_t w = write(STDOUT_FILENO, q, left);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			fprintf(stderr, "%s: write: %s\n", prog, strerror(errno));
			exit(EXIT_PROTO);
		}
		q += w;
		left -= (size_t)w;
	}
	explicit_bzero(b->p, b->cap); /* it may have held the token */
	buf_free(b);
}

/* Start a message: room for the length, then the type code. */
static void msg_begin(struct buf *b, uint8_t type)
{
	buf_init(b, MSG_MAX + 4);
	buf_u32(b, 0);
	buf_u8(b, type);
}

static void expect_end(const struct rd *r, uint8_t type)
{
	if (!rd_end(r))
		die_proto("malformed %s message", type_name(type));
}

/* ------------------------------------------------------------ the token */

/*
 * The token: the first line of the file with trailing blanks removed, the
 * same rule `wicket serve` applies to its copy.  Returns its length, or -1
 * (with the reason on stderr).
 */
static int read_token(const char *path, char *out, size_t outlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		fprintf(stderr, "%s: %s: %s\n", prog, path, strerror(errno));
		return -1;
	}
	size_t got = 0;
	while (got < outlen - 1) {
		ssize_t n = read(fd, out + got, outlen - 1 - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	out[got] = 0;
	out[strcspn(out, "\r\n")] = 0;
	size_t l = strlen(out);
	while (l && (out[l - 1] == ' ' || out[l - 1] == '\t'))
		out[--l] = 0;
	if (l == 0) {
		fprintf(stderr, "%s: %s: no token in the file\n", prog, path);
		return -1;
	}
	return (int)l;
}

/* -------------------------------------------------- keyboard-interactive */

struct ki_request {
	struct sv name, instruction, lang;
	uint32_t nprompts;
	struct sv prompt0;
	bool echo0;
};

/* Parse (and so validate) a KI request body: RFC 4256 INFO_REQUEST fields. */
static void parse_ki_request(struct rd *r, struct ki_request *k, uint8_t type)
{
	k->name = rd_str(r);		/* name of the prompt collection */
	k->instruction = rd_str(r);	/* instructions */
	k->lang = rd_str(r);		/* language tag (deprecated) */
	k->nprompts = rd_u32(r);	/* number of prompts */
	if (r->err || k->nprompts > MAX_PROMPTS || k->nprompts > rd_left(r) / 5)
		die_proto("malformed %s message (prompt count)", type_name(type));
	for (uint32_t i = 0; i < k->nprompts; i++) {
		struct sv prompt = rd_str(r); /* prompt text, UTF-8 */
		bool echo = rd_bool(r);	      /* whether to echo the answer */
		if (i == 0) {
			k->prompt0 = prompt;
			k->echo0 = echo;
		}
	}
	expect_end(r, type);
}

static bool is_wicket_token_prompt(const struct ki_request *k)
{
	return sv_eq(k->name, WICKET_KI_NAME) && k->nprompts == 1 &&
	       sv_eq(k->prompt0, WICKET_KI_PROMPT);
}

/* Answer wicket's token prompt from the file.  False: could not read it. */
static bool answer_token(struct plugin *p)
{
	char tok[TOKEN_MAX];
	int l = read_token(p->token_file, tok, sizeof(tok));
	if (l < 0)
		return false;
	struct buf b;
	msg_begin(&b, PLUGIN_KI_SERVER_RESPONSE);
	buf_u32(&b, 1);		  /* number of responses */
	buf_str(&b, tok, (size_t)l); /* the token */
	explicit_bzero(tok, sizeof(tok));
	send_buf(&b);
	p->token_sent = true;
	return true;
}

/* Pass the server's prompts to the user and relay the answers back. */
static void forward_to_user(struct plugin *p, uint32_t nprompts)
{
	/* PLUGIN_KI_USER_REQUEST has exactly PLUGIN_KI_SERVER_REQUEST's body. */
	struct buf b;
	msg_begin(&b, PLUGIN_KI_USER_REQUEST);
	buf_put(&b, buf_data(&p->in) + 1, buf_used(&p->in) - 1);
	send_buf(&b);

	int t = recv_msg(p, false);
	if (t != PLUGIN_KI_USER_RESPONSE)
		die_proto("expected PLUGIN_KI_USER_RESPONSE, got %s", type_name((uint8_t)t));
	struct rd r = msg_body(p);
	uint32_t n = rd_u32(&r); /* number of responses */
	if (r.err || n != nprompts)
		die_proto("PLUGIN_KI_USER_RESPONSE: response count does not match the prompts");
	for (uint32_t i = 0; i < n; i++)
		rd_str(&r); /* the answer to prompt i */
	expect_end(&r, PLUGIN_KI_USER_RESPONSE);

	/* PLUGIN_KI_SERVER_RESPONSE has exactly PLUGIN_KI_USER_RESPONSE's body. */
	msg_begin(&b, PLUGIN_KI_SERVER_RESPONSE);
	buf_put(&b, buf_data(&p->in) + 1, buf_used(&p->in) - 1);
	send_buf(&b);
	explicit_bzero(p->in.p, p->in.cap); /* the user's answers */
}

/* One accepted keyboard-interactive phase, until AUTH_SUCCESS/FAILURE. */
static void ki_phase(struct plugin *p)
{
	p->token_sent = false;
	for (;;) {
		int t = recv_msg(p, false);
		struct rd r = msg_body(p);
		if (t == PLUGIN_AUTH_SUCCESS || t == PLUGIN_AUTH_FAILURE) {
			expect_end(&r, (uint8_t)t);
			if (t == PLUGIN_AUTH_FAILURE && p->token_sent) {
				fprintf(stderr, "%s: the server refused the token from %s\n",
					prog, p->token_file);
				p->token_refused = true;
			}
			return;
		}
		if (t != PLUGIN_KI_SERVER_REQUEST)
			die_proto("unexpected %s message during keyboard-interactive",
				  type_name((uint8_t)t));
		struct ki_request k;
		parse_ki_request(&r, &k, PLUGIN_KI_SERVER_REQUEST);
		/* The token goes out once per phase and never again after the
		 * server refused it: a repeated prompt is the user's to answer. */
		if (is_wicket_token_prompt(&k) && !p->token_sent && !p->token_refused &&
		    answer_token(p))
			continue;
		forward_to_user(p, k.nprompts);
	}
}

/* ------------------------------------------------------------------ main */

static void init(struct plugin *p)
{
	int t = recv_msg(p, true);
	if (t < 0)
		die_proto("end of input before PLUGIN_INIT");
	if (t != PLUGIN_INIT)
		die_proto("expected PLUGIN_INIT, got %s", type_name((uint8_t)t));
	struct rd r = msg_body(p);
	uint32_t version = rd_u32(&r); /* highest version the client speaks */
	struct sv host = rd_str(&r);   /* logical host name */
	uint32_t port = rd_u32(&r);    /* port */
	struct sv user = rd_str(&r);   /* the client's user name, maybe empty */
	expect_end(&r, PLUGIN_INIT);
	(void)host;
	(void)port;

	struct buf b;
	if (version < PLUGIN_PROTO_VERSION) {
		char msg[128];
		snprintf(msg, sizeof(msg), "%s speaks protocol version %u, the client only %u",
			 prog, PLUGIN_PROTO_VERSION, version);
		msg_begin(&b, PLUGIN_INIT_FAILURE);
		buf_cstr(&b, msg); /* error message for the user */
		send_buf(&b);
		fprintf(stderr, "%s: %s\n", prog, msg);
		exit(EXIT_PROTO);
	}
	msg_begin(&b, PLUGIN_INIT_RESPONSE);
	buf_u32(&b, PLUGIN_PROTO_VERSION); /* the version we will speak */
	if (p->user)
		buf_cstr(&b, p->user);	   /* suggested user name */
	else
		buf_sv(&b, user);
	send_buf(&b);
}

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: %s [--token-file FILE] [--user NAME]\n"
		"\n"
		"PuTTY authentication plugin (protocol 2): answers `wicket serve`'s\n"
		"keyboard-interactive one-time token prompt with the first line of FILE;\n"
		"other prompts go to the user.  Configure it as a PuTTY saved session's\n"
		"AuthPlugin setting, e.g. the line\n"
		"  AuthPlugin=%s --token-file F\n"
		"in ~/.putty/sessions/NAME, then plink -load NAME ...\n"
		"\n"
		"  --token-file FILE  the token's file (default: $WICKET_TOKEN_FILE)\n"
		"  --user NAME        the login name to suggest to the client\n"
		"  -h, --help         this text\n",
		prog, prog);
}

int main(int argc, char **argv)
{
	struct plugin p = { .token_file = getenv("WICKET_TOKEN_FILE") };
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if ((!strcmp(a, "--token-file") || !strcmp(a, "--user")) && i + 1 < argc) {
			if (!strcmp(a, "--token-file"))
				p.token_file = argv[++i];
			else
				p.user = argv[++i];
		} else if (!strncmp(a, "--token-file=", 13)) {
			p.token_file = a + 13;
		} else if (!strncmp(a, "--user=", 7)) {
			p.user = a + 7;
		} else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			usage(stdout);
			return 0;
		} else {
			usage(stderr);
			return 64;
		}
	}
	if (p.token_file && !*p.token_file)
		p.token_file = NULL;
	signal(SIGPIPE, SIG_IGN); /* a vanished client is a write error */
	buf_init(&p.in, MSG_MAX);

	init(&p);
	for (;;) {
		int t = recv_msg(&p, true);
		if (t < 0)
			break; /* the client is done with us */
		if (t != PLUGIN_PROTOCOL)
			die_proto("expected PLUGIN_PROTOCOL, got %s", type_name((uint8_t)t));
		struct rd r = msg_body(&p);
		struct sv method = rd_str(&r); /* SSH auth method name */
		expect_end(&r, PLUGIN_PROTOCOL);
		struct buf b;
		if (!sv_eq(method, "keyboard-interactive")) {
			msg_begin(&b, PLUGIN_PROTOCOL_REJECT);
			buf_cstr(&b, ""); /* not ours at all: no message for the user */
			send_buf(&b);
			continue;
		}
		if (!p.token_file) {
			msg_begin(&b, PLUGIN_PROTOCOL_REJECT);
			buf_cstr(&b, "wicket-auth-plugin: no --token-file (or WICKET_TOKEN_FILE) given");
			send_buf(&b);
			continue;
		}
		msg_begin(&b, PLUGIN_PROTOCOL_ACCEPT); /* no fields */
		send_buf(&b);
		ki_phase(&p);
	}
	buf_free(&p.in);
	return 0;
}
