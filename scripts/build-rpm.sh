#!/bin/bash
# SPDX-License-Identifier: MIT
# Build the RPM packages from packaging/rpm/wicket.spec with `rpmbuild -bb`
# in a temporary %_topdir, from a tarball of a copy of the tree, and put the
# .rpm files into OUTDIR (default dist/rpm).
#
#   scripts/build-rpm.sh [--head] [OUTDIR] [-- RPMBUILD-OPTION...]
#     --head   build what is committed (git archive HEAD), not the files on disk
#
# On Debian (package "rpm") the BuildRequires cannot be checked (the rpm
# database does not know dpkg's packages), so --nodeps is passed there; the
# Debian Build-Depends in packaging/debian/control provide the same things.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
head=0
if [ "${1:-}" = --head ]; then
	head=1
	shift
fi
out=$(realpath -m "${1:-$top/dist/rpm}")
[ $# -gt 0 ] && shift
[ "${1:-}" = -- ] && shift

. "$top/scripts/srccopy.sh"
version=$(meson_version "$top")
specversion=$(sed -n 's/^Version:[[:space:]]*//p' "$top/packaging/rpm/wicket.spec")
if [ "$version" != "$specversion" ]; then
	echo "build-rpm: packaging/rpm/wicket.spec says Version $specversion but meson.build's project version is $version" >&2
	exit 1
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/wicket-rpm.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp"/{SOURCES,SPECS,BUILD,RPMS,SRPMS}
srccopy "$top" "$tmp/src/wicket-$version" "$head"
tar -C "$tmp/src" -czf "$tmp/SOURCES/wicket-$version.tar.gz" "wicket-$version"
cp "$top/packaging/rpm/wicket.spec" "$tmp/SPECS/"

# The SELinux subpackage needs the reference policy's devel Makefile.
if [ ! -e /usr/share/selinux/devel/Makefile ]; then
	echo "build-rpm: /usr/share/selinux/devel/Makefile missing: building --without selinux" >&2
	set -- --without selinux "$@"
fi
nodeps=()
if [ -e /etc/debian_version ]; then
	nodeps=(--nodeps)
fi
rpmbuild -bb "${nodeps[@]}" --define "_topdir $tmp" "$@" "$tmp/SPECS/wicket.spec"
mkdir -p "$out"
find "$tmp/RPMS" -name '*.rpm' -exec mv -t "$out" {} +
echo "build-rpm: packages in $out:"
ls -1 "$out"
