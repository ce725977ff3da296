/* SPDX-License-Identifier: MIT */
#include "target.h"
#include "target_kinds.h"

#include "cli.h"
#include "ctr.h"
#include "guest.h"
#include "vm.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <libgen.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

static bool is_exec(const char *p)
{
	return access(p, X_OK) == 0;
}

const char *target_find_wicketd(char *buf, size_t len)
{
	const char *env = getenv("WICKETD");
	if (env && *env) {
		snprintf(buf, len, "%s", env);
		return buf;
	}
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n > 0) {
		self[n] = 0;
		char *dir = dirname(self);
		/* Build tree first (host-tool/ next to agent/), then installed. */
		static const char *const rel[] = { "/../agent/wicketd", "/wicketd", "/../sbin/wicketd" };
		for (size_t i = 0; i < sizeof(rel) / sizeof(rel[0]); i++) {
			snprintf(buf, len, "%s%s", dir, rel[i]);
			if (is_exec(buf))
				return buf;
		}
	}
	static const char *const fixed[] = { "/usr/sbin/wicketd", "/usr/local/sbin/wicketd" };
	for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
		if (is_exec(fixed[i])) {
			snprintf(buf, len, "%s", fixed[i]);
			return buf;
		}
	}
	return NULL;
}

/*
 * The built-in demo guest: wicketd on a pipe inside a bubblewrap sandbox
 * with every namespace unshared (no network), a read-only root and a
 * private /tmp.
 */
static int target_demo(struct tp *out, char *err, size_t errlen)
{
	char agent[PATH_MAX];
	if (!target_find_wicketd(agent, sizeof(agent))) {
		snprintf(err, errlen, "demo: wicketd not found (build it, or set WICKETD=PATH)");
		return -ENOENT;
	}
	/*
	 * The agent's directory (wicketd and wicket-sftp-server) is mounted at a
	 * fixed place: the private /tmp would hide a build tree under /tmp.
	 */
	char agent_dir[PATH_MAX];
	snprintf(agent_dir, sizeof(agent_dir), "%s", agent);
	char *slash = strrchr(agent_dir, '/');
	if (!slash) {
		snprintf(err, errlen, "demo: wicketd path '%s' is not absolute", agent);
		return -EINVAL;
	}
	*slash = 0;
	char inner[PATH_MAX];
	snprintf(inner, sizeof(inner), "/run/wicket/%s", slash + 1);
	char *argv[] = {
		(char *)"bwrap", (char *)"--unshare-all", (char *)"--die-with-parent",
		(char *)"--new-session", (char *)"--ro-bind", (char *)"/", (char *)"/",
		(char *)"--dev", (char *)"/dev", (char *)"--proc", (char *)"/proc",
		(char *)"--tmpfs", (char *)"/tmp", (char *)"--tmpfs", (char *)"/run",
		(char *)"--ro-bind", agent_dir[0] ? agent_dir : (char *)"/", (char *)"/run/wicket",
		(char *)"--hostname", (char *)"wicket-demo", (char *)"--chdir", (char *)"/",
		(char *)"--", inner, (char *)"--stdio", (char *)"--quiet", NULL,
	};
	int r = tp_argv_spawn(argv, out, err, errlen);
	if (r == -ENOENT)
		snprintf(err, errlen, "demo: bubblewrap (bwrap) is not installed");
	return r;
}

/* vsock/CID[:PORT] */
static int target_vsock(const char *spec, struct tp *out, char *err, size_t errlen)
{
	char *end;
	errno = 0;
	unsigned long cid = strtoul(spec, &end, 10);
	unsigned long port = TP_VSOCK_DEFAULT_PORT;
	if (end == spec || errno || cid > UINT32_MAX || (*end && *end != ':')) {
		snprintf(err, errlen, "target 'vsock/%s': expected vsock/CID[:PORT]", spec);
		return -EINVAL;
	}
	if (*end == ':') {
		const char *ps = end + 1;
		port = strtoul(ps, &end, 10);
		if (end == ps || *end || port > UINT32_MAX) {
			snprintf(err, errlen, "target 'vsock/%s': bad port", spec);
			return -EINVAL;
		}
	}
	return tp_vsock_connect((uint32_t)cid, (uint32_t)port, out, err, errlen);
}

/* serial/DEVICE[@BAUD] */
static int target_serial(const char *spec, struct tp *out, char *err, size_t errlen)
{
	char dev[PATH_MAX];
	snprintf(dev, sizeof(dev), "%s", spec);
	unsigned long baud = 0;
	char *at = strrchr(dev, '@');
	if (at) {
		char *end;
		*at = 0;
		baud = strtoul(at + 1, &end, 10);
		if (*end || !baud) {
			snprintf(err, errlen, "target 'serial/%s': bad baud rate '%s'", spec, at + 1);
			return -EINVAL;
		}
	}
	int fd = tp_serial_open(dev, (unsigned)baud, err, errlen);
	if (fd < 0)
		return fd;
	*out = (struct tp){ .rfd = fd, .wfd = fd };
	return 0;
}

const char *target_find_static_agent(char *buf, size_t len)
{
	const char *env = getenv("WICKETD_STATIC");
	if (env && *env) {
		snprintf(buf, len, "%s", env);
		return buf;
	}
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n > 0) {
		self[n] = 0;
		char *dir = dirname(self);
		/* Build tree (host-tool/ next to agent/), then beside an install. */
		static const char *const rel[] = { "/../agent/wicketd-static",
						   "/../libexec/wicket/wicketd-static",
						   "/../lib/wicket/wicketd-static" };
		for (size_t i = 0; i < sizeof(rel) / sizeof(rel[0]); i++) {
			snprintf(buf, len, "%s%s", dir, rel[i]);
			if (is_exec(buf))
				return buf;
		}
	}
	snprintf(buf, len, "%s/wicket/wicketd-static", WICKET_LIBEXECDIR);
	return is_exec(buf) ? buf : NULL;
}

/* 1 when the ELF program at @fd asks for a loader (PT_INTERP), 0 not, -1 not ELF. */
static int elf_wants_loader(int fd)
{
	unsigned char h[64];
	if (pread(fd, h, sizeof(h), 0) != (ssize_t)sizeof(h) || memcmp(h, ELFMAG, SELFMAG) != 0)
		return -1;
	bool is64 = h[EI_CLASS] == ELFCLASS64;
	Elf64_Ehdr e64;
	Elf32_Ehdr e32;
	uint64_t phoff;
	unsigned phnum, phentsize;
	if (is64) {
		memcpy(&e64, h, sizeof(e64));
		phoff = e64.e_phoff, phnum = e64.e_phnum, phentsize = e64.e_phentsize;
	} else {
		memcpy(&e32, h, sizeof(e32));
		phoff = e32.e_phoff, phnum = e32.e_phnum, phentsize = e32.e_phentsize;
	}
	if (phentsize < (is64 ? sizeof(Elf64_Phdr) : sizeof(Elf32_Phdr)) || phnum > 4096)
		return -1;
	for (unsigned i = 0; i < phnum; i++) {
		uint32_t type;
		if (pread(fd, &type, sizeof(type), (off_t)(phoff + (uint64_t)i * phentsize)) !=
		    (ssize_t)sizeof(type))
			return -1;
		if (type == PT_INTERP)
			return 1;
	}
	return 0;
}

const char *target_find_toolbox(const char *dir, char *buf, size_t len, char *err, size_t errlen)
{
	if (dir)
		snprintf(buf, len, "%s/busybox", dir);
	else
		snprintf(buf, len, "%s", TOOLBOX_DEFAULT);
	int fd = open(buf, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || access(buf, X_OK) < 0) {
		int e = errno;
		snprintf(err, errlen, "--tools: %s: %s (%s)", buf, strerror(e),
			 dir ? "--tools-path DIR must hold a static busybox as DIR/busybox"
			     : "install busybox-static, or give --tools-path DIR with DIR/busybox");
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	int dyn = elf_wants_loader(fd);
	close(fd);
	if (dyn != 0) {
		snprintf(err, errlen,
			 "--tools: %s is %s: a container may have no loader or libraries for it "
			 "(Debian: busybox-static)",
			 buf, dyn > 0 ? "dynamically linked" : "not an ELF program");
		return NULL;
	}
	return buf;
}

/* podman/NAME, docker/NAME, k8s/..., pid/PID */
static int target_container(const char *target, const struct globals *g, struct tp *out,
			    char *err, size_t errlen)
{
	char agent[PATH_MAX];
	struct ctr_opts o = {
		.agent = target_find_static_agent(agent, sizeof(agent)),
		.tools = g->tools,
		.context = g->context,
		.agent_image = g->agent_image,
		.label = target,
	};
	const char *slash = strchr(target, '/');
	const char *rest = slash + 1;
	if (!*rest) {
		snprintf(err, errlen, "target '%s': a name is missing after '%.*s/'", target,
			 (int)(slash - target), target);
		return -EINVAL;
	}
	if (strncmp(target, "podman/", 7) == 0)
		return ctr_podman_open(rest, &o, out, err, errlen);
	if (strncmp(target, "docker/", 7) == 0)
		return ctr_docker_open(rest, &o, out, err, errlen);
	if (strncmp(target, "k8s/", 4) == 0)
		return ctr_k8s_open(rest, &o, out, err, errlen);
	return ctr_pid_open(rest, &o, out, err, errlen);
}

/*
 * --proxy-command with --tools: the command gets the toolbox as descriptor
 * CTR_FD_TOOLS (a sealed memfd, as the container openers hand it over) and
 * passes it on to its agent ("wicketd --toolbox-fd 4").
 */
static int target_proxy_tools(const struct globals *g, struct tp *out, char *err,
			      size_t errlen)
{
	int fd = ctr_program_fd(g->tools, "busybox", err, errlen);
	if (fd < 0)
		return fd;
	_Static_assert(CTR_FD_AGENT == 3 && CTR_FD_TOOLS == 4, "descriptors 3 + i below");
	int fds[] = { -1, fd }; /* no agent: the command brings its own */
	int r = tp_command_spawn_fds(g->proxy_cmd, fds, 2, out, err, errlen);
	close(fd);
	return r;
}

static bool is_container_kind(const char *t)
{
	const char *rest;
	const struct target_kind *k = target_kind_find(t, &rest);
	return k && (k->flags & TK_CONTAINER);
}

/* The container target whose stream this process opened (not a proxy command). */
static char opened_target[512];

void target_note_opened(const char *target)
{
	snprintf(opened_target, sizeof(opened_target), "%s", target);
}

int target_lost_reason(const char *target, char *why, size_t len)
{
	if (!target || !opened_target[0] || strcmp(target, opened_target) != 0)
		return 0;
	if (strncmp(target, "podman/", 7) == 0)
		return ctr_podman_lost(target + 7, why, len);
	return 0;
}

void target_explain_loss(const char *target, char *reason, size_t len)
{
	char why[200];
	if (strncmp(reason, "peer disconnected", 17) != 0 &&
	    target_lost_reason(target, why, sizeof(why)))
		snprintf(reason, len, "%s", why);
}

int target_open(const char *target, const struct globals *g, struct tp *out, char *err,
		size_t errlen)
{
	*out = TP_INIT;
	if (g->proxy_cmd && g->tools)
		return target_proxy_tools(g, out, err, errlen);
	if (g->proxy_cmd)
		return tp_command_spawn(g->proxy_cmd, out, err, errlen);
	if (g->tools && !is_container_kind(target)) {
		snprintf(err, errlen,
			 "%s: --tools needs a container target (podman/, docker/, k8s/, pid/) or "
			 "--proxy-command: an agent already running there uses its own programs",
			 target);
		return -EINVAL;
	}
	const char *rest;
	const struct target_kind *k = target_kind_find(target, &rest);
	char kinds[512];
	if (!k) {
		const char *slash = strchr(target, '/');
		if (slash)
			snprintf(err, errlen, "target '%s': unsupported kind '%.*s' (supported: %s)",
				 target, (int)(slash - target), target,
				 target_kinds_syntax(kinds, sizeof(kinds)));
		else
			snprintf(err, errlen,
				 "target '%s' is not of the form KIND/NAME (supported: %s)", target,
				 target_kinds_syntax(kinds, sizeof(kinds)));
		return -EINVAL;
	}
	if (!(k->flags & TK_BARE) && !*rest) {
		snprintf(err, errlen, "target '%s': a name is missing after '%s/' (%s)", target,
			 k->name, k->syntax);
		return -EINVAL;
	}
	int r;
	switch (k->id) {
	case TK_VM:
		return vm_target_open(rest, g->uri, out, err, errlen);
	case TK_UNIX:
		return tp_unix_connect(rest, out, err, errlen);
	case TK_VSOCK:
		return target_vsock(rest, out, err, errlen);
	case TK_SERIAL:
		return target_serial(rest, out, err, errlen);
	case TK_DEMO:
		return target_demo(out, err, errlen);
	case TK_PODMAN:
	case TK_DOCKER:
	case TK_K8S:
	case TK_PID:
		r = target_container(target, g, out, err, errlen);
		if (r == 0)
			target_note_opened(target);
		return r;
	}
	snprintf(err, errlen, "target '%s': kind %s has no opener", target, k->name);
	return -EINVAL;
}
