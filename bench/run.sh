#!/bin/sh
# One command for the benchmark: installs what it needs (Debian: wrk,
# gnuplot, and Debian's fcgiwrap to compare with), builds, and runs
# bench/bench.py.  Arguments go to bench.py (--smoke for a quick run).
# Results: bench/out/results.txt, bench/out/chart.png and
# bench/out/latency.png.
# With --php first: PHP through fcgiwrap and php-cgi against PHP-FPM
# (bench/php.py, which prints its table).
set -eu
cd "$(dirname "$0")/.."
target=bench
pkgs="wrk gnuplot-nox fcgiwrap"
if [ "${1:-}" = "--php" ]; then
	shift
	target=bench-php
	pkgs="wrk php-cgi php-fpm"
fi
sh tests/install-deps.sh
missing=""
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
	SUDO=""
	[ "$(id -u)" -eq 0 ] || SUDO=sudo
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
[ -f Makefile ] || { autoreconf -fi && ./configure -q; }
make -s -j2
make -s $target BENCH_ARGS="$*"
