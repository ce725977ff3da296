# SPDX-License-Identifier: MIT
# Sourced by build-deb.sh and build-rpm.sh: srccopy TOP DEST HEAD copies the
# source tree at TOP into DEST (created): with HEAD=1 what is committed (git
# archive HEAD), else the tracked and new files as they are on disk; ignored
# files (build directories, dist/) never.
srccopy() {
	local top=$1 dest=$2 head=$3
	mkdir -p "$dest"
	if [ "$head" = 1 ]; then
		git -C "$top" archive --format=tar HEAD | tar -x -C "$dest"
	elif git -C "$top" rev-parse --git-dir >/dev/null 2>&1; then
		(cd "$top" && git ls-files -z --cached --others --exclude-standard |
			xargs -0 -r sh -c 'for f; do [ -e "$f" ] && printf "%s\0" "$f"; done' sh |
			tar --null -T - -cf -) | tar -x -C "$dest"
	else
		tar -C "$top" --exclude='./build*' --exclude=./dist -cf - . | tar -x -C "$dest"
	fi
}

# The project version, from meson.build (the one place it is written).
meson_version() {
	meson introspect --projectinfo "$1/meson.build" |
		python3 -c 'import json,sys; print(json.load(sys.stdin)["version"])'
}
