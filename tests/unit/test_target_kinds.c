/* SPDX-License-Identifier: MIT */
/* host-tool/target_kinds: the one table, its texts and the KIND%NAME spelling. */
#include "tap.h"
#include "target_kinds.h"

static void host(const char *in, const char *want)
{
	char out[256];
	int r = target_from_ssh_host(in, out, sizeof(out));
	ok(r == 0, "%s: converted", in);
	is_str(out, want, "%s", in);
}

int main(void)
{
	const char *rest;
	const struct target_kind *k = target_kind_find("vm/web", &rest);
	ok(k && k->id == TK_VM && strcmp(rest, "web") == 0, "vm/web");
	k = target_kind_find("demo", &rest);
	ok(k && k->id == TK_DEMO && !*rest, "demo is bare");
	ok(!target_kind_find("demo/x", &rest), "demo/x is no kind");
	ok(!target_kind_find("vmx/web", &rest), "vmx/ is no kind");
	ok(!target_kind_find("vm", &rest), "vm without / is no kind");
	k = target_kind_find("pid/", &rest);
	ok(k && k->id == TK_PID && !*rest, "pid/ found, empty name");
	ok(target_kind_find("k8s/a/b/c", &rest) && strcmp(rest, "a/b/c") == 0, "k8s rest");

	char buf[1024];
	is_str(target_kinds_ssh_hosts(buf, sizeof(buf)),
	       "vm/* unix/* vsock/* serial/* podman/* docker/* k8s/* pid/* "
	       "vm%* unix%* vsock%* serial%* podman%* docker%* k8s%* pid%* demo",
	       "Host patterns");
	char small[20];
	target_kinds_ssh_hosts(small, sizeof(small));
	ok(strlen(small) == sizeof(small) - 1, "a short buffer truncates, terminated");
	target_kinds_syntax(buf, sizeof(buf));
	ok(strstr(buf, "unix/PATH, ") && strstr(buf, ", or --proxy-command CMD"), "syntax: %s", buf);

	host("vm%web", "vm/web");
	host("vm%a%b", "vm/a%b"); /* libvirt names may hold '%' */
	host("podman%c1", "podman/c1");
	host("pid%123", "pid/123");
	host("vsock%3:9022", "vsock/3:9022");
	host("unix%agent.sock", "unix/agent.sock");
	host("unix%%run%wicket%agent.sock", "unix//run/wicket/agent.sock");
	host("serial%%dev%ttyS1@115200", "serial//dev/ttyS1@115200");
	host("k8s%shop%web-0%app", "k8s/shop/web-0/app");
	host("unix//tmp/a%b.sock", "unix//tmp/a%b.sock"); /* already a target: as it is */
	host("demo", "demo");
	host("other%x", "other/x"); /* an unknown kind gets its error later */
	char tiny[4];
	ok(target_from_ssh_host("vm%web", tiny, sizeof(tiny)) < 0, "too long: -1");
	return done_testing();
}
