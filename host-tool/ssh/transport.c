/* SPDX-License-Identifier: MIT */
/*
 * SSH transport, server side: version exchange, the binary packet protocol
 * (RFC 4253 6) with sequence numbers, message dispatch by state, and the
 * poll loop that moves bytes between the client, this process and the guest.
 */
#include "sshs.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "log.h"
#include "msg.h"
#include "syscalls.h"

#define OUT_HIGH (1u << 20)	/* stop producing into a queue above this */
#define QUEUE_MAX (64u << 20)	/* hard cap of any queue */
#define READ_CHUNK (256u * 1024u)
#define DEFAULT_REKEY_BYTES (1ull << 30)
#define DEFAULT_REKEY_SECONDS 3600u

/* The poll loop, the clock, and libcrypto's randomness (padding, cookies; its
 * generator checks getpid() for a fork). */
SYSCALLS(sshs_transport) = {
	SC("read"), SC("write"), SC("poll"), SC("ppoll"), SC("clock_gettime"), SC("time"),
	SC("getrandom"), SC("getpid"), SC("close"), SC_EQ("fcntl", 1, F_GETFL),
	SC_EQ("fcntl", 1, F_SETFL),
	SC_END,
};

static const char server_version[] = "SSH-2.0-wicket_" WICKET_VERSION;

void ssh_pkt_begin(struct buf *b, uint8_t type)
{
	buf_init(b, SSH_MAX_PAYLOAD);
	buf_u8(b, type);
}

bool ssh_in_kex(const struct sshs *s)
{
	return s->kex_sent && !s->newkeys_sent;
}

/* Encrypt and queue one payload now (keys in force, no kex hold). */
static void send_now(struct sshs *s, const uint8_t *p, size_t n)
{
	struct ssh_dir *d = &s->tx;
	const struct cipher_info *ci = d->c.info;
	if (s->cfg->pktlog)
		fprintf(s->cfg->pktlog, "ssh> %s (%zu bytes)\n", msg_name(p[0]), n);
#ifdef HAVE_ZLIB
	if (d->zon) {
		buf_reset(&s->scratch);
		if (comp_deflate(d, p, n, &s->scratch) < 0) {
			s->closing = true;
			s->exit_code = 255;
			log_err("ssh: compression failed");
			return;
		}
		p = buf_data(&s->scratch);
		n = buf_used(&s->scratch);
	}
#endif
	size_t bs = ci->blocksize;
	/* With an AEAD cipher or etm the length field is outside the aligned part. */
	size_t base = d->c.len_clear ? 1 + n : 4 + 1 + n;
	size_t pad = bs - base % bs;
	if (pad < 4)
		pad += bs;
	size_t plen = 1 + n + pad;
	size_t total = 4 + plen + d->c.taglen;
	if (plen > SSH_MAX_PACKET) {
		log_err("ssh: refusing to send a %zu-byte packet", plen);
		s->closing = true;
		return;
	}
	uint8_t *w = buf_reserve(&s->cout, total);
	if (!w) {
		log_err("ssh: output queue overflow");
		s->closing = true;
		s->exit_code = 255;
		return;
	}
	put_be32(w, (uint32_t)plen);
	w[4] = (uint8_t)pad;
	memcpy(w + 5, p, n);
	memcpy(w + 5 + n, s->padpool, pad);
	if (cipher_seal(&d->c, d->seq, w, 4 + plen) < 0) {
		log_err("ssh: encryption failed");
		s->closing = true;
		s->exit_code = 255;
		return;
	}
	buf_commit(&s->cout, total);
	d->seq++;
	d->bytes += total;
}

void ssh_send(struct sshs *s, const uint8_t *p, size_t n)
{
	if (s->closing || n == 0)
		return;
	uint8_t t = p[0];
	bool transport = t <= 4 || (t >= 20 && t <= 49);
	if (ssh_in_kex(s) && !transport) {
		/* RFC 4253 7.1: nothing but kex until our NEWKEYS is out. */
		uint8_t *w = buf_reserve(&s->pending, 4 + n);
		if (!w) {
			log_err("ssh: queue overflow during key exchange");
			s->closing = true;
			return;
		}
		put_be32(w, (uint32_t)n);
		memcpy(w + 4, p, n);
		buf_commit(&s->pending, 4 + n);
		return;
	}
	send_now(s, p, n);
}

void ssh_send_buf(struct sshs *s, struct buf *b)
{
	if (!b->err)
		ssh_send(s, buf_data(b), buf_used(b));
	else
		log_err("ssh: internal: message too large");
	buf_free(b);
}

/* Send what was held back during the key exchange. */
static void flush_pending(struct sshs *s)
{
	while (buf_used(&s->pending) >= 4 && !s->closing) {
		uint32_t n = get_be32(buf_data(&s->pending));
		send_now(s, buf_data(&s->pending) + 4, n);
		buf_consume(&s->pending, 4 + (size_t)n);
	}
}

void kex_after_newkeys_sent(struct sshs *s)
{
	flush_pending(s);
}

/* Remember why the connection ends; the first reason is the one logged. */
static void ended(struct sshs *s, const char *why)
{
	if (!s->end_why[0])
		snprintf(s->end_why, sizeof(s->end_why), "%s", why);
}

/*
 * Every connection that ends before authentication leaves a line with the
 * peer address, the user it tried (if any) and the reason, as sshd's
 * "Connection closed by authenticating user ... [preauth]".
 */
static void log_preauth_end(const struct sshs *s)
{
	if (s->authed)
		return;
	log_msg(s->cfg->log_preauth ? LOG_WARN : LOG_INFO,
		"ssh: %s: connection closed%s%s before authentication: %s [preauth]",
		s->cfg->peer_addr ? s->cfg->peer_addr : "UNKNOWN",
		s->user[0] ? " by authenticating user " : "", s->user,
		s->end_why[0] ? s->end_why : "connection ended");
}

void ssh_disconnect(struct sshs *s, uint32_t reason, const char *fmt, ...)
{
	char msg[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (s->closing)
		return;
	ended(s, msg);
	log_err("ssh: %s%s%s: disconnecting: %s", s->cfg->peer_addr ? s->cfg->peer_addr : "",
		  s->user[0] ? " user " : "", s->user, msg);
	struct buf b;
	ssh_pkt_begin(&b, MSG_DISCONNECT);
	buf_u32(&b, reason);
	buf_cstr(&b, msg);
	buf_cstr(&b, "");
	if (!b.err)
		send_now(s, buf_data(&b), buf_used(&b));
	buf_free(&b);
	s->closing = true;
	if (!s->exit_code)
		s->exit_code = 255;
}

/*
 * A bad identification line ends the connection at once, as sshd does: the
 * reason in our log (with the peer address, from log_preauth_end()), sshd's
 * plain-text answer to the client (no packet: there is no protocol yet).
 */
static int bad_ident(struct sshs *s, const char *reply, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int bad_ident(struct sshs *s, const char *reply, const char *fmt, ...)
{
	char why[200], m[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	snprintf(m, sizeof(m), "Invalid SSH identification string: %s", why);
	log_err("ssh: %s: %s", s->cfg->peer_addr ? s->cfg->peer_addr : "UNKNOWN", m);
	ended(s, m);
	buf_put(&s->cout, reply, strlen(reply));
	s->closing = true;
	s->exit_code = 255;
	return -1;
}

/*
 * The client's identification line; 1 done, 0 need more, -1 fatal.
 * RFC 4253 4.2 lets only the server send other lines before its version
 * line; a client's first line must be "SSH-2.0-..." (or "SSH-1.99-", 2.0
 * compatible), and sshd refuses anything else at once.
 */
static int read_version(struct sshs *s)
{
	uint8_t *p = buf_data(&s->cin);
	size_t n = buf_used(&s->cin);
	uint8_t *nl = memchr(p, '\n', n < 256 ? n : 256);
	if (!nl) {
		if (n >= 256)
			return bad_ident(s, "Invalid SSH identification string.\r\n",
					 "line longer than 255 bytes");
		/* Not "SSH-" so far: no need to wait for the end of the line. */
		if (n && memcmp(p, "SSH-", n < 4 ? n : 4) != 0)
			goto not_ssh;
		return 0;
	}
	size_t len = (size_t)(nl - p);
	if (len && p[len - 1] == '\r')
		len--;
	if (len < 4 || memcmp(p, "SSH-", 4) != 0)
		goto not_ssh;
	if (!(len >= 8 && memcmp(p, "SSH-2.0-", 8) == 0) &&
	    !(len >= 9 && memcmp(p, "SSH-1.99-", 9) == 0)) {
		char v[64];
		sv_printable((struct sv){ p, len }, v, sizeof(v));
		return bad_ident(s, "Protocol major versions differ.\r\n",
				 "protocol version not supported (\"%s\")", v);
	}
	for (size_t i = 0; i < len; i++)
		if (p[i] < 0x20 || p[i] == 0x7f)
			return bad_ident(s, "Invalid SSH identification string.\r\n",
					 "control character in the version line");
	memcpy(s->peer_version, p, len);
	s->peer_version[len] = 0;
	buf_consume(&s->cin, (size_t)(nl - p) + 1);
	s->version_done = true;
	if (!s->kex_sent)
		kex_send_init(s); /* ours follows the client's version, as sshd's */
	return 1;
not_ssh:;
	char shown[64];
	size_t l = nl ? (size_t)(nl - p) : n;
	if (l && p[l - 1] == '\r')
		l--;
	sv_printable((struct sv){ p, l < 40 ? l : 40 }, shown, sizeof(shown));
	return bad_ident(s, "Invalid SSH identification string.\r\n",
			 "the client sent \"%s%s\" instead of a version line", shown,
			 l > 40 ? "..." : "");
}

static int dispatch(struct sshs *s, struct sv pl)
{
	uint8_t t = pl.p[0];
	struct rd r;
	rd_init(&r, pl.p + 1, pl.n - 1);
	if (s->cfg->pktlog)
		fprintf(s->cfg->pktlog, "ssh< %s (%zu bytes)\n", msg_name(t), pl.n);
	/*
	 * RFC 4253 11.2: IGNORE (and DEBUG) may come at any time, before the
	 * first KEXINIT too.  A client that then asks for strict kex is refused
	 * in kex_on_kexinit(): its KEXINIT must be its first packet.
	 */
	if (s->kex_count == 0 && !s->kex_rcvd && t != SSH_MSG_KEXINIT && t != MSG_IGNORE &&
	    t != MSG_DEBUG) {
		ssh_disconnect(s, SSH_DISC_PROTOCOL_ERROR, "first message is not KEXINIT");
		return -1;
	}
	if (s->skip_guess && t >= 30 && t <= 49) {
		s->skip_guess = false; /* a wrong first_kex_packet_follows guess */
		return 0;
	}
	if (!s->first_kex_done && s->strict && t != SSH_MSG_KEXINIT &&
	    t != SSH_MSG_KEX_ECDH_INIT && t != SSH_MSG_NEWKEYS) {
		ssh_disconnect(s, SSH_DISC_PROTOCOL_ERROR,
			       "unexpected message %u during strict key exchange", t);
		return -1;
	}
	switch (t) {
	case MSG_DISCONNECT: {
		rd_u32(&r);
		char why[128];
		sv_printable(rd_str(&r), why, sizeof(why));
		log_info("ssh: client disconnected: %s", why);
		char m[160];
		snprintf(m, sizeof(m), "the client disconnected: %s", why[0] ? why : "(no reason)");
		ended(s, m);
		s->closing = true;
		return -1;
	}
	case MSG_IGNORE:
	case MSG_DEBUG:
	case MSG_UNIMPLEMENTED:
		return 0;
	case SSH_MSG_KEXINIT:
		if (s->kex_rcvd) {
			ssh_disconnect(s, SSH_DISC_PROTOCOL_ERROR, "KEXINIT during key exchange");
			return -1;
		}
		return kex_on_kexinit(s, pl);
	case SSH_MSG_KEX_ECDH_INIT:
		if (!s->kex_rcvd || s->newkeys_sent) {
			ssh_disconnect(s, SSH_DISC_PROTOCOL_ERROR, "unexpected KEX_ECDH_INIT");
			return -1;
		}
		return kex_on_ecdh_init(s, &r);
	case SSH_MSG_NEWKEYS:
		if (!s->newkeys_sent || !rd_end(&r)) {
			ssh_disconnect(s, SSH_DISC_PROTOCOL_ERROR, "unexpected NEWKEYS");
			return -1;
		}
		return kex_on_newkeys(s);
	default:
		break;
	}
	if (s->kex_rcvd || !s->first_kex_done) {
		ssh_disconnect(s, SSH_DISC_PROTOCOL_ERROR, "unexpected message %u during key exchange",
			       t);
		return -1;
	}
	if (t >= 80 && t <= 127) {
		if (!s->authed) {
			ssh_disconnect(s, SSH_DISC_PROTOCOL_ERROR,
				       "connection-layer message %u before authentication", t);
			return -1;
		}
		return relay_from_client(s, pl);
	}
	switch (t) {
	case SSH_MSG_SERVICE_REQUEST:
		return auth_on_service_request(s, &r);
	case SSH_MSG_USERAUTH_REQUEST:
		if (s->authed)
			return 0; /* RFC 4252 5.1: ignore after success */
		return auth_on_request(s, &r);
	case SSH_MSG_USERAUTH_INFO_RESPONSE:
		if (!s->authed && s->kbd_pending)
			return auth_on_info_response(s, &r);
		break;
	default:
		if (t >= 128) {
			struct buf b;
			ssh_pkt_begin(&b, MSG_UNIMPLEMENTED);
			buf_u32(&b, s->rx.seq - 1);
			ssh_send_buf(s, &b);
			return 0;
		}
		break;
	}
	ssh_disconnect(s, SSH_DISC_PROTOCOL_ERROR, "unexpected message %u", t);
	return -1;
}

/* Decrypt and dispatch every complete packet in cin; -1 when ending. */
static int rx_packets(struct sshs *s)
{
	while (!s->closing) {
		if (!s->version_done) {
			int r = read_version(s);
			if (r <= 0)
				return r;
			continue;
		}
		if (buf_used(&s->gout) > OUT_HIGH)
			return 0; /* back-pressure: the guest is slow */
		struct ssh_dir *d = &s->rx;
		const struct cipher_info *ci = d->c.info;
		size_t avail = buf_used(&s->cin);
		if (!s->rx_need) {
			if (avail < cipher_peek_need(&d->c))
				return 0;
			uint32_t len = cipher_peek_len(&d->c, d->seq, buf_data(&s->cin));
			size_t aligned = d->c.len_clear ? len : (size_t)len + 4;
			if (len > SSH_MAX_PACKET || len < 5 || aligned % ci->blocksize) {
				ssh_disconnect(s, SSH_DISC_PROTOCOL_ERROR, "bad packet length %u", len);
				return -1;
			}
			s->rx_need = 4 + (size_t)len + d->c.taglen;
		}
		if (avail < s->rx_need)
			return 0;
		uint8_t *p = buf_data(&s->cin);
		size_t need = s->rx_need;
		if (cipher_open(&d->c, d->seq, p, need - d->c.taglen) < 0) {
			ssh_disconnect(s, SSH_DISC_MAC_ERROR, "message authentication failed");
			return -1;
		}
		uint32_t plen = get_be32(p);
		uint8_t pad = p[4];
		if (pad < 4 || (size_t)pad + 1 >= plen) {
			ssh_disconnect(s, SSH_DISC_PROTOCOL_ERROR, "bad padding length %u", pad);
			return -1;
		}
		struct sv pl = { p + 5, plen - 1 - pad };
		d->seq++;
		d->bytes += need;
#ifdef HAVE_ZLIB
		if (d->zon) {
			buf_reset(&s->rxz);
			if (comp_inflate(d, pl.p, pl.n, &s->rxz) < 0) {
				ssh_disconnect(s, SSH_DISC_PROTOCOL_ERROR, "bad compressed data");
				return -1;
			}
			pl.p = buf_data(&s->rxz);
			pl.n = buf_used(&s->rxz);
			if (!pl.n) {
				ssh_disconnect(s, SSH_DISC_PROTOCOL_ERROR, "empty packet");
				return -1;
			}
		}
#endif
		int r = dispatch(s, pl);
		buf_consume(&s->cin, need);
		s->rx_need = 0;
		if (r < 0)
			return -1;
	}
	return -1;
}

static void set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	if (fl >= 0 && !(fl & O_NONBLOCK))
		fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

/* Read into @b; 1 got bytes, 0 EOF, -1 error (EAGAIN counts as 1). */
static int read_into(int fd, struct buf *b)
{
	uint8_t *w = buf_reserve(b, READ_CHUNK);
	if (!w)
		return -1;
	ssize_t n = read(fd, w, READ_CHUNK);
	if (n < 0)
		return (errno == EAGAIN || errno == EINTR) ? 1 : -1;
	if (n == 0)
		return 0;
	buf_commit(b, (size_t)n);
	return 1;
}

/* Write from @b; 0 ok (maybe partial), -1 error. */
static int write_from(int fd, struct buf *b)
{
	ssize_t n = write(fd, buf_data(b), buf_used(b));
	if (n < 0)
		return (errno == EAGAIN || errno == EINTR) ? 0 : -1;
	buf_consume(b, (size_t)n);
	return 0;
}

static void sshs_free(struct sshs *s)
{
	kex_wipe(s);
	auth_wipe(s);
	cipher_free(&s->rx.c);
	cipher_free(&s->tx.c);
#ifdef HAVE_ZLIB
	comp_end(&s->rx);
	comp_end(&s->tx);
#endif
	OPENSSL_cleanse(s->cin.p, s->cin.cap);
	OPENSSL_cleanse(s->gin.p, s->gin.cap);
	OPENSSL_cleanse(s->gout.p, s->gout.cap);
	OPENSSL_cleanse(s->scratch.p, s->scratch.cap);
	OPENSSL_cleanse(s->rxz.p, s->rxz.cap);
	OPENSSL_cleanse(s->pending.p, s->pending.cap);
	buf_free(&s->cin);
	buf_free(&s->cout);
	buf_free(&s->gin);
	buf_free(&s->gout);
	buf_free(&s->ic);
	buf_free(&s->is);
	buf_free(&s->pending);
	buf_free(&s->scratch);
	buf_free(&s->rxz);
}

struct sshs *sshs_new(const struct ssh_server_cfg *cfg, int rfd, int wfd)
{
	struct sshs *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->cfg = cfg;
	s->crfd = rfd;
	s->cwfd = wfd;
	s->guest = TP_INIT;
	buf_init(&s->cin, 2 * SSH_MAX_PACKET + 2 * READ_CHUNK);
	buf_init(&s->cout, QUEUE_MAX);
	buf_init(&s->gin, 2 * SSH_MAX_PACKET + 2 * READ_CHUNK);
	buf_init(&s->gout, QUEUE_MAX);
	buf_init(&s->ic, SSH_MAX_PACKET);
	buf_init(&s->is, SSH_MAX_PACKET);
	buf_init(&s->pending, QUEUE_MAX);
	buf_init(&s->scratch, 2 * SSH_MAX_PACKET);
	buf_init(&s->rxz, SSH_MAX_PACKET);
	cipher_init(&s->rx.c, cipher_none(), NULL, NULL, NULL, NULL, false);
	cipher_init(&s->tx.c, cipher_none(), NULL, NULL, NULL, NULL, true);
	if (RAND_bytes(s->padpool, sizeof(s->padpool)) != 1) {
		log_err("ssh: no randomness");
		sshs_free(s);
		free(s);
		return NULL;
	}
	s->started = time(NULL);
	buf_put(&s->cout, server_version, sizeof(server_version) - 1);
	buf_put(&s->cout, "\r\n", 2);
	return s;
}

int sshs_run(const struct ssh_server_cfg *cfg, int rfd, int wfd)
{
	/* SIGPIPE is ignored already (privsep_run): no sigaction in the sandbox. */
	struct sshs *s = sshs_new(cfg, rfd, wfd);
	if (!s)
		return 255;
	set_nonblock(rfd);
	set_nonblock(wfd);

	uint64_t rekey_bytes = cfg->rekey_bytes ? cfg->rekey_bytes : DEFAULT_REKEY_BYTES;
	unsigned rekey_secs = cfg->rekey_seconds ? cfg->rekey_seconds : DEFAULT_REKEY_SECONDS;
	for (;;) {
		if (!s->closing) {
			rx_packets(s);
			if (!s->closing && s->authed && s->guest_open)
				relay_from_guest(s);
		}
		if (s->closing && !buf_used(&s->cout))
			break;
		/* Client gone: stop once what it sent has been handed on. */
		if (s->client_eof && !s->closing &&
		    (buf_used(&s->gout) <= OUT_HIGH || !s->guest_open || s->guest_eof))
			break;
		time_t now = time(NULL);
		if (!s->closing && s->first_kex_done && !s->kex_sent &&
		    (s->tx.bytes > rekey_bytes || s->rx.bytes > rekey_bytes ||
		     (unsigned)(now - s->kex_time) >= rekey_secs))
			kex_send_init(s);
		if (!s->closing && !s->authed && cfg->grace_seconds &&
		    now - s->started >= cfg->grace_seconds)
			ssh_disconnect(s, SSH_DISC_BY_APPLICATION, "login grace time exceeded");
		if (!s->closing && s->guest_eof && !buf_used(&s->gin))
			ssh_disconnect(s, SSH_DISC_BY_APPLICATION, "the guest closed the connection");

		struct pollfd p[4];
		int np = 0, ci = -1, co = -1, gi = -1, go = -1;
		if (!s->closing && !s->client_eof && buf_used(&s->cin) < 2 * SSH_MAX_PACKET &&
		    buf_used(&s->gout) <= OUT_HIGH) {
			ci = np;
			p[np++] = (struct pollfd){ .fd = s->crfd, .events = POLLIN };
		}
		if (buf_used(&s->cout)) {
			if (s->cwfd == s->crfd && ci >= 0) {
				p[ci].events |= POLLOUT;
				co = ci;
			} else {
				co = np;
				p[np++] = (struct pollfd){ .fd = s->cwfd, .events = POLLOUT };
			}
		}
		if (!s->closing && s->guest_open && !s->guest_eof && s->authed &&
		    buf_used(&s->cout) <= OUT_HIGH && buf_used(&s->pending) <= OUT_HIGH &&
		    buf_used(&s->gin) < 2 * SSH_MAX_PACKET) {
			gi = np;
			p[np++] = (struct pollfd){ .fd = s->guest.rfd, .events = POLLIN };
		}
		if (!s->closing && s->guest_open && buf_used(&s->gout)) {
			if (s->guest.wfd == s->guest.rfd && gi >= 0) {
				p[gi].events |= POLLOUT;
				go = gi;
			} else {
				go = np;
				p[np++] = (struct pollfd){ .fd = s->guest.wfd, .events = POLLOUT };
			}
		}
		int timeout = s->authed ? 60000 : 1000;
		if (poll(p, (nfds_t)np, timeout) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (co >= 0 && (p[co].revents & (POLLOUT | POLLERR | POLLHUP))) {
			if (write_from(s->cwfd, &s->cout) < 0) {
				ended(s, "the client stopped reading (write failed)");
				break; /* client gone */
			}
		}
		if (ci >= 0 && (p[ci].revents & (POLLIN | POLLHUP | POLLERR))) {
			int r = read_into(s->crfd, &s->cin);
			if (r <= 0) {
				s->client_eof = true;
				char m[128];
				snprintf(m, sizeof(m), "reading from the client failed: %s",
					 strerror(errno));
				ended(s, r < 0 ? m : "the client closed the connection");
			}
		}
		if (go >= 0 && (p[go].revents & (POLLOUT | POLLERR | POLLHUP))) {
			if (write_from(s->guest.wfd, &s->gout) < 0) {
				s->guest_eof = true;
				buf_reset(&s->gout);
			}
		}
		if (gi >= 0 && (p[gi].revents & (POLLIN | POLLHUP | POLLERR))) {
			int r = read_into(s->guest.rfd, &s->gin);
			if (r <= 0)
				s->guest_eof = true;
		}
	}
	/* Hand the guest what the client sent last (best effort). */
	time_t deadline = time(NULL) + 5;
	while (s->guest_open && !s->guest_eof && buf_used(&s->gout) && time(NULL) < deadline) {
		struct pollfd p = { .fd = s->guest.wfd, .events = POLLOUT };
		if (poll(&p, 1, 1000) < 0 && errno != EINTR)
			break;
		if (p.revents && write_from(s->guest.wfd, &s->gout) < 0)
			break;
	}
	/* Our copies only: a helper process belongs to whoever opened the guest. */
	if (s->guest.rfd >= 0)
		close(s->guest.rfd);
	if (s->guest.wfd >= 0 && s->guest.wfd != s->guest.rfd)
		close(s->guest.wfd);
	log_preauth_end(s);
	int code = s->exit_code;
	sshs_free(s);
	OPENSSL_cleanse(s, sizeof(*s));
	free(s);
	return code;
}
