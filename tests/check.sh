#!/bin/sh
# Installs what is missing, builds, and runs every test: make check,
# make distcheck, and make check again under AddressSanitizer and
# UndefinedBehaviorSanitizer.  This is what CI runs.
set -eu
cd "$(dirname "$0")/.."
# fcgiwrap refuses scripts writable by group or others: a checkout made
# with umask 002 would make the test scripts so.
umask 022
chmod go-w tests/cgi/*.sh tests/cgi/*.pl tests/cgi/*.py examples/cgi-bin/*.sh
sh tests/install-deps.sh
autoreconf -fi
show_logs() {
	for f in "$1"/test-suite.log "$1"/tests/*.log; do
		[ -f "$f" ] && { echo "==> $f"; tail -n 200 "$f"; }
	done
	exit 1
}
./configure -q CFLAGS="-O2 -g -Werror"
make -j2
make check || show_logs .
cat tests/unit_tests.log tests/unit_relay.log tests/run-blackbox.log | grep -E "passed|failed" || true
# The guest tier: Debian 12 under qemu, systemd as PID 1 (tests/guest/).
make check-guest
make distcheck
make distclean
rm -rf build-asan && mkdir build-asan && cd build-asan
../configure -q --enable-sanitizers CFLAGS="-O1 -g -Werror"
make -j2
make check || show_logs .
cat tests/unit_tests.log tests/unit_relay.log tests/run-blackbox.log | grep -E "passed|failed" || true
cd ..
# The libFuzzer targets, FUZZ_SECONDS each (60 by default).
rm -rf build-fuzz && mkdir build-fuzz && cd build-fuzz
../configure -q CC=clang --enable-fuzzers CFLAGS="-O1 -g -Werror"
make -j2
make fuzz FUZZ_SECONDS="${FUZZ_SECONDS:-60}"
echo "all tests passed"
