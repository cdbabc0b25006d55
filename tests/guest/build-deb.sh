#!/bin/sh
# Builds the Debian package from this tree: build-deb.sh OUTDIR.
#
# The files git knows (tracked, and new ones not ignored) are copied to a
# temporary directory, so that build products in the tree neither reach
# the package nor get in the way; dpkg-buildpackage -b -us -uc runs there,
# and the .deb files (with the .changes and .buildinfo) land in OUTDIR.
# The build's output goes to stderr; stdout gets the path of the
# fcgiwrap .deb.  Nothing is installed: missing build dependencies are
# named, and the script fails.
set -eu

die() {
	echo "build-deb.sh: $*" >&2
	exit 1
}

[ $# -eq 1 ] || { echo "usage: $0 OUTDIR" >&2; exit 2; }
top=$(cd "$(dirname "$0")/../.." && pwd)
[ -f "$top/debian/control" ] || die "$top has no debian/control"
command -v dpkg-buildpackage >/dev/null || die "dpkg-buildpackage not found: apt-get install dpkg-dev"
git -C "$top" rev-parse --git-dir >/dev/null 2>&1 || die "$top is not a git checkout (the files to build are those git knows)"
mkdir -p "$1"
out=$(cd "$1" && pwd)

version=$(cd "$top" && dpkg-parsechangelog -S Version)
work=$(mktemp -d "${TMPDIR:-/tmp}/fcgiwrap-deb.XXXXXX")
trap 'rm -rf "$work"' EXIT
trap 'exit 1' HUP INT TERM
src="$work/fcgiwrap-${version%-*}"
mkdir "$src"

# Files deleted but not yet committed are listed too: skip them.
(cd "$top" && git -c core.quotePath=off ls-files --cached --others --exclude-standard) |
	while IFS= read -r f; do
		[ -e "$top/$f" ] || [ -L "$top/$f" ] || continue
		printf '%s\n' "$f"
	done >"$work/files"
(cd "$top" && tar -cf - --no-recursion -T "$work/files") | (cd "$src" && tar -xf -)

if ! (cd "$src" && dpkg-checkbuilddeps) >&2; then
	die "install the build dependencies named above (apt-get install ...), then run this again"
fi
(cd "$src" && dpkg-buildpackage -b -us -uc -Jauto) >&2 || die "dpkg-buildpackage failed (output above)"

deb=""
for f in "$work"/*.deb "$work"/*.changes "$work"/*.buildinfo; do
	[ -e "$f" ] || continue
	mv -f "$f" "$out/"
	case "${f##*/}" in
	fcgiwrap_*.deb) deb="$out/${f##*/}" ;;
	esac
done
[ -n "$deb" ] || die "dpkg-buildpackage made no fcgiwrap .deb"
echo "$deb"
