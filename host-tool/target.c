/* SPDX-License-Identifier: MIT */
#include "target.h"

#include "guest.h"
#include "vm.h"

#include <errno.h>
#include <stdbool.h>
#include <libgen.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

#define TARGET_KINDS \
	"vm/NAME, unix/PATH, vsock/CID[:PORT], serial/DEVICE[@BAUD], demo, " \
	"or --proxy-command CMD"

int target_open(const char *target, const char *proxy_cmd, const char *uri, struct tp *out,
		char *err, size_t errlen)
{
	*out = TP_INIT;
	if (proxy_cmd)
		return tp_command_spawn(proxy_cmd, out, err, errlen);
	if (strncmp(target, "vm/", 3) == 0)
		return vm_target_open(target + 3, uri, out, err, errlen);
	if (strncmp(target, "unix/", 5) == 0)
		return tp_unix_connect(target + 5, out, err, errlen);
	if (strcmp(target, "demo") == 0)
		return target_demo(out, err, errlen);
	if (strncmp(target, "vsock/", 6) == 0)
		return target_vsock(target + 6, out, err, errlen);
	if (strncmp(target, "serial/", 7) == 0 && target[7])
		return target_serial(target + 7, out, err, errlen);
	const char *slash = strchr(target, '/');
	if (slash) {
		snprintf(err, errlen,
			 "target '%s': unsupported kind '%.*s' (supported: " TARGET_KINDS ")",
			 target, (int)(slash - target), target);
	} else {
		snprintf(err, errlen,
			 "target '%s' is not of the form KIND/NAME (supported: " TARGET_KINDS ")",
			 target);
	}
	return -EINVAL;
}
