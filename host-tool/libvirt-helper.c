/* SPDX-License-Identifier: MIT */
/*
 * wicket-libvirt: every libvirt call of the host tool, in its own program so
 * that `wicket` itself does not load libvirt's ~60 libraries (12-16 ms of
 * start-up on every command).  Run by wicket as
 *
 *   wicket-libvirt open FD NAME URI   relay domain NAME's agent channel on
 *                                     socket FD, after status lines (below)
 *   wicket-libvirt list URI           print the domains and how to reach them
 *
 * Status lines on FD before any stream byte:
 *   "W <text>\n"   a warning to show, more lines follow
 *   "E <text>\n"   the target cannot be opened (the reason); we exit
 *   "V <cid>\n"    connected over AF_VSOCK; that socket rides along as
 *                  SCM_RIGHTS and we exit
 *   "C\n"          the channel is open; stream bytes follow
 */
#include "vm.h"

#include "client.h" /* WICKET_EXIT_FAILURE */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include "fdpass.h"
#include "guest.h" /* TP_VSOCK_DEFAULT_PORT */
#include "libvirt.h"
#include "log.h"

/* ---- what the domain XML says about reaching the agent ---- */

struct vm_info {
	bool has_vsock;
	unsigned long cid;     /* 0: none known (auto, not started) */
	bool has_channel;
	bool chan_disconnected; /* live XML: the guest has not opened the port */
	bool chan_usable;       /* a source type virDomainOpenChannel can open */
};

/*
 * Value of attribute @attr in the start tag [@tag, @end), copied to @out.
 * libvirt writes attributes as name='value'; accept "value" too.
 */
static bool xml_attr(const char *tag, const char *end, const char *attr, char *out, size_t outlen)
{
	size_t al = strlen(attr);
	for (const char *p = tag; p + al + 2 < end; p++) {
		if ((p[-1] != ' ' && p[-1] != '\t' && p[-1] != '\n') || strncmp(p, attr, al) != 0 ||
		    p[al] != '=' || (p[al + 1] != '\'' && p[al + 1] != '"'))
			continue;
		char q = p[al + 1];
		const char *v = p + al + 2;
		const char *ve = memchr(v, q, (size_t)(end - v));
		if (!ve)
			return false;
		snprintf(out, outlen, "%.*s", (int)(ve - v), v);
		return true;
	}
	return false;
}

/* Next element <@name …> in [@p, @end): its start, the end of its start tag
 * (@tag_end, at '>') and the end of the element (@elem_end). */
static const char *xml_next(const char *p, const char *end, const char *name,
			    const char **tag_end, const char **elem_end)
{
	size_t nl = strlen(name);
	char close[64];
	snprintf(close, sizeof(close), "</%s>", name);
	while ((p = strstr(p, "<")) && p < end) {
		if (strncmp(p + 1, name, nl) == 0 && strchr(" \t\n/>", p[1 + nl])) {
			const char *te = memchr(p, '>', (size_t)(end - p));
			if (!te)
				return NULL;
			*tag_end = te;
			if (te[-1] == '/') {
				*elem_end = te + 1;
			} else {
				const char *c = strstr(te, close);
				*elem_end = c && c < end ? c + strlen(close) : end;
			}
			return p;
		}
		p++;
	}
	return NULL;
}

static void vm_parse_xml(const char *xml, struct vm_info *vi)
{
	*vi = (struct vm_info){ 0 };
	/* Only <devices>: <metadata> may hold anything. */
	const char *dev = strstr(xml, "<devices>");
	if (!dev)
		return;
	const char *end = strstr(dev, "</devices>");
	if (!end)
		end = dev + strlen(dev);
	const char *te, *ee;
	char v[128];

	const char *p = xml_next(dev, end, "vsock", &te, &ee);
	if (p) {
		vi->has_vsock = true;
		const char *cte, *cee;
		const char *c = xml_next(te, ee, "cid", &cte, &cee);
		if (c && xml_attr(c, cte, "address", v, sizeof(v))) {
			char *e;
			unsigned long cid = strtoul(v, &e, 10);
			if (!*e && cid > 2 && cid <= 0xffffffffUL)
				vi->cid = cid;
		}
	}
	for (p = dev; (p = xml_next(p, end, "channel", &te, &ee)); p = ee) {
		const char *tte, *tee;
		const char *t = xml_next(te, ee, "target", &tte, &tee);
		if (!t || !xml_attr(t, tte, "name", v, sizeof(v)) || strcmp(v, VM_CHANNEL_NAME) != 0)
			continue;
		vi->has_channel = true;
		if (xml_attr(t, tte, "state", v, sizeof(v)))
			vi->chan_disconnected = strcmp(v, "disconnected") == 0;
		vi->chan_usable = xml_attr(p, te, "type", v, sizeof(v)) &&
				  (strcmp(v, "unix") == 0 || strcmp(v, "pty") == 0);
		break;
	}
}

static const char *vm_state_name(int state)
{
	switch (state) {
	case VIR_DOMAIN_RUNNING: return "running";
	case VIR_DOMAIN_BLOCKED: return "idle";
	case VIR_DOMAIN_PAUSED: return "paused";
	case VIR_DOMAIN_SHUTDOWN: return "in shutdown";
	case VIR_DOMAIN_SHUTOFF: return "shut off";
	case VIR_DOMAIN_CRASHED: return "crashed";
	case VIR_DOMAIN_PMSUSPENDED: return "pmsuspended";
	default: return "no state";
	}
}

/* ---- libvirt errors as one line ---- */

static void vm_quiet_errors(void *data, virErrorPtr e)
{
	/* Keep libvirt from printing its own lines; we report virGetLastError(). */
}

static bool vm_err_is_denied(const virError *e)
{
	if (!e)
		return false;
	switch (e->code) {
	case VIR_ERR_AUTH_FAILED:
	case VIR_ERR_AUTH_CANCELLED:
	case VIR_ERR_AUTH_UNAVAILABLE:
	case VIR_ERR_ACCESS_DENIED:
	case VIR_ERR_OPERATION_DENIED:
		return true;
	default:
		return e->message && strstr(e->message, "Permission denied");
	}
}

/* libvirt's last error message on one line. */
static const char *vm_errmsg(char *buf, size_t len)
{
	const virError *e = virGetLastError();
	snprintf(buf, len, "%s", e && e->message ? e->message : "unknown libvirt error");
	for (char *p = buf; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	return buf;
}

static int vm_connect(const char *uri, unsigned flags, virConnectPtr *conn, char *err,
		      size_t errlen)
{
	virSetErrorFunc(NULL, vm_quiet_errors);
	*conn = virConnectOpenAuth(uri, virConnectAuthPtrDefault, flags);
	if (*conn)
		return 0;
	char m[400];
	const virError *e = virGetLastError();
	vm_errmsg(m, sizeof(m));
	if (vm_err_is_denied(e))
		snprintf(err, errlen,
			 "permission denied connecting to libvirt at %s: %s (run as root, join "
			 "the 'libvirt' group, or choose another URI with -c)",
			 uri, m);
	else
		snprintf(err, errlen, "cannot connect to libvirt at %s: %s%s", uri, m,
			 strstr(m, "No such file") || strstr(m, "Connection refused")
				 ? " (is libvirtd running?)"
				 : "");
	return -1;
}

/* True when @uri names this machine's libvirt (no host part), so a vsock
 * CID from its XML is reachable from here. */
static bool vm_uri_is_local(const char *uri)
{
	const char *s = strstr(uri, "://");
	return !s || s[3] == '/' || s[3] == 0;
}

/* ---- the helper process ---- */

static void status_send(int fd, int pass_fd, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void status_send(int fd, int pass_fd, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line) - 1, fmt, ap);
	va_end(ap);
	for (char *p = line; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	size_t n = strlen(line);
	line[n++] = '\n';
	struct iovec iov = { .iov_base = line, .iov_len = n };
	union fdpass_buf cm;
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	fdpass_attach(&mh, &cm, &pass_fd, pass_fd >= 0);
	ssize_t w;
	do
		w = sendmsg(fd, &mh, MSG_NOSIGNAL);
	while (w < 0 && errno == EINTR);
}

static virDomainPtr vm_lookup(virConnectPtr conn, const char *name)
{
	virDomainPtr dom = virDomainLookupByName(conn, name);
	if (!dom && strlen(name) == 36 && virGetLastErrorCode() == VIR_ERR_NO_DOMAIN)
		dom = virDomainLookupByUUIDString(conn, name);
	return dom;
}

/* Everything libvirt happens here, in the child; never returns. */
static void __attribute__((noreturn)) vm_helper(int fd, const char *name, const char *uri)
{
	char err[900], m[400];
	virConnectPtr conn = NULL;
	virDomainPtr dom = NULL;
	virStreamPtr st = NULL;
	char *xml = NULL;
	int code = 1;

	virSetErrorFunc(NULL, vm_quiet_errors);
	if (virInitialize() < 0 || virEventRegisterDefaultImpl() < 0) {
		status_send(fd, -1, "E cannot start libvirt's event loop: %s",
			    vm_errmsg(m, sizeof(m)));
		goto out;
	}
	if (vm_connect(uri, 0, &conn, err, sizeof(err)) < 0) {
		status_send(fd, -1, "E %s", err);
		goto out;
	}
	dom = vm_lookup(conn, name);
	if (!dom) {
		const virError *e = virGetLastError();
		if (e && e->code == VIR_ERR_NO_DOMAIN)
			status_send(fd, -1, "E no libvirt domain named '%s' at %s (see 'wicket list')",
				    name, uri);
		else if (vm_err_is_denied(e))
			status_send(fd, -1, "E permission denied looking up domain '%s' at %s: %s", name,
				    uri, vm_errmsg(m, sizeof(m)));
		else
			status_send(fd, -1, "E cannot look up domain '%s' at %s: %s", name, uri,
				    vm_errmsg(m, sizeof(m)));
		goto out;
	}
	int state = VIR_DOMAIN_NOSTATE, reason = 0;
	if (virDomainGetState(dom, &state, &reason, 0) < 0) {
		status_send(fd, -1, "E domain '%s': cannot get its state: %s", name,
			    vm_errmsg(m, sizeof(m)));
		goto out;
	}
	if (state == VIR_DOMAIN_PAUSED) {
		status_send(fd, -1, "E domain '%s' is paused (resume it: virsh -c %s resume %s)", name,
			    uri, name);
		goto out;
	}
	if (state != VIR_DOMAIN_RUNNING && state != VIR_DOMAIN_BLOCKED) {
		status_send(fd, -1, "E domain '%s' is not running (%s; start it: virsh -c %s start %s)",
			    name, vm_state_name(state), uri, name);
		goto out;
	}
	xml = virDomainGetXMLDesc(dom, 0);
	if (!xml) {
		status_send(fd, -1, "E domain '%s': cannot read its XML: %s", name,
			    vm_errmsg(m, sizeof(m)));
		goto out;
	}
	struct vm_info vi;
	vm_parse_xml(xml, &vi);

	char vsock_err[300] = "";
	if (vi.cid && vm_uri_is_local(uri)) {
		struct tp vt;
		if (tp_vsock_connect((uint32_t)vi.cid, TP_VSOCK_DEFAULT_PORT, &vt, vsock_err,
				     sizeof(vsock_err)) == 0) {
			status_send(fd, vt.rfd, "V %lu", vi.cid);
			code = 0;
			goto out;
		}
	}
	if (!vi.has_channel) {
		if (vi.cid && vsock_err[0])
			status_send(fd, -1,
				    "E domain '%s': %s, and it has no %s channel; add to its "
				    "<devices> (virsh edit %s, then restart it): %s",
				    name, vsock_err, VM_CHANNEL_NAME, name, VM_CHANNEL_XML);
		else
			status_send(fd, -1,
				    "E domain '%s' has no %s channel%s; add to its <devices> "
				    "(virsh edit %s, then restart it): %s",
				    name, VM_CHANNEL_NAME,
				    vi.cid ? " (and its vsock CID is not reachable from here)"
					   : " and no vsock CID",
				    name, VM_CHANNEL_XML);
		goto out;
	}
	if (!vi.chan_usable) {
		status_send(fd, -1,
			    "E domain '%s': channel %s must be of type 'unix' or 'pty' to be opened "
			    "through libvirt; use: %s",
			    name, VM_CHANNEL_NAME, VM_CHANNEL_XML);
		goto out;
	}
	if (vsock_err[0])
		log_info("vm/%s: %s; using channel %s", name, vsock_err, VM_CHANNEL_NAME);
	if (vi.chan_disconnected)
		status_send(fd, -1,
			    "W vm/%s: the guest has not opened %s (is wicketd running in it?); "
			    "waiting for it",
			    name, VM_CHANNEL_NAME);

	st = virStreamNew(conn, VIR_STREAM_NONBLOCK);
	if (!st || virDomainOpenChannel(dom, VM_CHANNEL_NAME, st, VIR_DOMAIN_CHANNEL_FORCE) < 0) {
		const virError *e = virGetLastError();
		status_send(fd, -1, "E %sdomain '%s': cannot open channel %s: %s",
			    vm_err_is_denied(e) ? "permission denied: " : "", name, VM_CHANNEL_NAME,
			    vm_errmsg(m, sizeof(m)));
		goto out;
	}
	status_send(fd, -1, "C");
	code = tp_libvirt_pump(st, fd) < 0 ? 1 : 0;
out:
	free(xml);
	if (st)
		virStreamFree(st);
	if (dom)
		virDomainFree(dom);
	if (conn)
		virConnectClose(conn);
	close(fd);
	_exit(code);
}

/* ---- wicket list ---- */

struct vm_row {
	char *name;
	int state;
	struct vm_info vi;
};

static int vm_row_cmp(const void *a, const void *b)
{
	return strcmp(((const struct vm_row *)a)->name, ((const struct vm_row *)b)->name);
}

static int helper_list(const char *uri)
{
	char err[900], m[400];
	virConnectPtr conn;
	if (vm_connect(uri, VIR_CONNECT_RO, &conn, err, sizeof(err)) < 0) {
		fprintf(stderr, "wicket: list: %s\n", err);
		return WICKET_EXIT_FAILURE;
	}
	virDomainPtr *doms = NULL;
	int nd = virConnectListAllDomains(conn, &doms, 0);
	if (nd < 0) {
		fprintf(stderr, "wicket: list: cannot list the domains at %s: %s\n", uri,
			vm_errmsg(m, sizeof(m)));
		virConnectClose(conn);
		return WICKET_EXIT_FAILURE;
	}
	struct vm_row *rows = calloc((size_t)nd + 1, sizeof(*rows));
	size_t nr = 0, wname = 4;
	for (int i = 0; i < nd; i++) {
		const char *name = virDomainGetName(doms[i]);
		if (rows && name) {
			struct vm_row *r = &rows[nr];
			int reason;
			r->name = strdup(name);
			if (virDomainGetState(doms[i], &r->state, &reason, 0) < 0)
				r->state = VIR_DOMAIN_NOSTATE;
			char *xml = virDomainGetXMLDesc(doms[i], 0);
			if (xml)
				vm_parse_xml(xml, &r->vi);
			free(xml);
			if (r->name) {
				if (strlen(r->name) > wname)
					wname = strlen(r->name);
				nr++;
			}
		}
		virDomainFree(doms[i]);
	}
	free(doms);
	virConnectClose(conn);
	if (!rows) {
		fprintf(stderr, "wicket: list: out of memory\n");
		return WICKET_EXIT_FAILURE;
	}
	qsort(rows, nr, sizeof(*rows), vm_row_cmp);
	if (nr == 0)
		fprintf(stderr, "wicket: list: no domains at %s\n", uri);
	else
		printf("%-*s  %-11s  %s\n", (int)wname, "NAME", "STATE", "AGENT");
	for (size_t i = 0; i < nr; i++) {
		struct vm_row *r = &rows[i];
		char how[256] = "";
		size_t o = 0;
		if (r->vi.cid)
			o += (size_t)snprintf(how + o, sizeof(how) - o, "vsock CID %lu", r->vi.cid);
		else if (r->vi.has_vsock)
			o += (size_t)snprintf(how + o, sizeof(how) - o, "vsock CID auto");
		if (r->vi.has_channel && o < sizeof(how))
			o += (size_t)snprintf(how + o, sizeof(how) - o, "%schannel %s%s",
					      o ? ", " : "", VM_CHANNEL_NAME,
					      r->vi.chan_disconnected ? " (guest not connected)" : "");
		if (!o)
			snprintf(how, sizeof(how), "no agent channel");
		printf("%-*s  %-11s  %s\n", (int)wname, r->name, vm_state_name(r->state), how);
		free(r->name);
	}
	free(rows);
	return fflush(stdout) == 0 ? 0 : WICKET_EXIT_FAILURE;
}


int main(int argc, char **argv)
{
	log_set_ident("wicket");
	if (argc == 5 && strcmp(argv[1], "open") == 0) {
		char *end;
		long fd = strtol(argv[2], &end, 10);
		if (*end || fd < 3 || fd > 1023) {
			fprintf(stderr, "wicket-libvirt: bad fd '%s'\n", argv[2]);
			return 2;
		}
		vm_helper((int)fd, argv[3], argv[4]);
	}
	if (argc == 3 && strcmp(argv[1], "list") == 0)
		return helper_list(argv[2]);
	fprintf(stderr, "usage: wicket-libvirt open FD NAME URI | list URI (run by wicket)\n");
	return 2;
}
