#!/bin/bash
# SPDX-License-Identifier: MIT
# Build the Debian packages (wicket, wicketd, wicketd-static) with
# `dpkg-buildpackage -us -uc -b` in a temporary copy of the tree, and put
# the .deb, .changes and .buildinfo files into OUTDIR (default dist/deb).
#
#   scripts/build-deb.sh [--head] [OUTDIR]
#     --head   build what is committed (git archive HEAD), not the files on disk
#
# Why a copy and not a top-level debian/ (or a symlink to packaging/debian):
# dpkg-buildpackage writes debian/tmp, debian/PACKAGE/, obj-*/ and
# debian/files into the tree and its results into the tree's parent
# directory; a copy keeps the checkout clean, proves the build works from
# nothing but the source files, and leaves distributions free to keep their
# own debian/ for this source.  Needs: dpkg-dev, debhelper and the
# Build-Depends in packaging/debian/control (scripts/deps.sh installs them).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
head=0
if [ "${1:-}" = --head ]; then
	head=1
	shift
fi
out=$(realpath -m "${1:-$top/dist/deb}")

. "$top/scripts/srccopy.sh"
version=$(meson_version "$top")
tmp=$(mktemp -d "${TMPDIR:-/tmp}/wicket-deb.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
src=$tmp/wicket-$version
srccopy "$top" "$src" "$head"
cp -a "$src/packaging/debian" "$src/debian"

(cd "$src" && dpkg-buildpackage -us -uc -b)
mkdir -p "$out"
mv "$tmp"/*.deb "$tmp"/*.changes "$tmp"/*.buildinfo "$out"/
echo "build-deb: packages in $out:"
ls -1 "$out"
