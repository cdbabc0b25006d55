#!/bin/sh
# One CGI script for the black-box tests; QUERY_STRING picks what it does.
case "$QUERY_STRING" in
hello)
	printf 'Content-Type: text/plain\r\n\r\nhello\n' ;;
env)
	printf 'Content-Type: text/plain\n\n'
	env | sort ;;
fds)
	printf 'Content-Type: text/plain\n\n'
	ls /proc/$$/fd ;;
pwd)
	printf 'Content-Type: text/plain\n\n'
	pwd ;;
signals)
	# Read by the process the shell becomes, as the script inherited it:
	# the shell's own mask, read from outside, is briefly all blocked
	# whenever dash waits for a child.
	printf 'Content-Type: text/plain\n\n'
	exec grep -E '^Sig(Blk|Ign):' /proc/self/status ;;
echo)
	printf 'Content-Type: application/octet-stream\n\n'
	cat ;;
count)
	printf 'Content-Type: text/plain\n\n'
	wc -c | tr -d ' ' ;;
stdin)
	# What the script's stdin is, then how many bytes it holds.
	printf 'Content-Type: text/plain\n\n'
	readlink /proc/$$/fd/0
	wc -c | tr -d ' ' ;;
lock-stdin)
	# A lock on the open file of its stdin, held as it exits.
	flock -x 0
	printf 'Content-Type: text/plain\n\nlocked\n' ;;
lock-devnull)
	# Whether /dev/null, opened anew, can be locked.
	printf 'Content-Type: text/plain\n\n'
	if flock -n -x /dev/null true; then echo free; else echo held; fi ;;
answer-first)
	# Headers and a megabyte of output before reading any of the body,
	# as git-http-backend does on a push.
	printf 'Content-Type: text/plain\n\n'
	head -c 1048576 /dev/zero | tr '\0' x
	echo
	wc -c | tr -d ' ' ;;
stream)
	printf 'Content-Type: text/plain\n\nfirst\n'
	sleep 2
	echo second ;;
sleep=*)
	sleep "${QUERY_STRING#sleep=}"
	printf 'Content-Type: text/plain\n\nslept\n' ;;
exit=*)
	printf 'Content-Type: text/plain\n\nbye\n'
	exit "${QUERY_STRING#exit=}" ;;
kill-self)
	printf 'Content-Type: text/plain\n\nbye\n'
	kill -9 $$ ;;
group)
	# A background child in the script's process group; both pids are
	# written to PIDFILE, then the script waits to be ended.
	sleep 300 &
	echo "$$ $!" > "$PIDFILE"
	printf 'Content-Type: text/plain\n\nwaiting\n'
	sleep 300 ;;
escape)
	# A child that leaves the script's process group (a session of its
	# own) keeping the script's stdout; then the script exits.
	setsid sleep 300 &
	echo "$$ $!" > "$PIDFILE"
	printf 'Content-Type: text/plain\n\nescaped\n' ;;
setsid-hang)
	# A child in a session of its own, then the script hangs without a
	# word: only a cgroup holds them both.
	setsid sleep 60 > /dev/null 2>&1 < /dev/null &
	echo "$$ $!" > "$PIDFILE"
	sleep 60 ;;
leave-behind)
	# Answers and exits, leaving a child of its own session running.
	setsid sleep 30 > /dev/null 2>&1 < /dev/null &
	echo "$$ $!" > "$PIDFILE"
	printf 'Content-Type: text/plain\n\ndone\n' ;;
burn)
	# About 200 ms of CPU and 50 MiB of memory, then the answer.
	exec python3 -c '
import time
x = bytearray(b"\1") * (50 * 1024 * 1024)
t = time.process_time()
while time.process_time() - t < 0.2:
    pass
print("Content-Type: text/plain\n\nburnt")' ;;
write=*)
	printf 'Content-Type: text/plain\n\n'
	if echo written > "${QUERY_STRING#write=}" 2>/dev/null; then echo ok; else echo refused; fi ;;
read=*)
	printf 'Content-Type: text/plain\n\n'
	if cat "${QUERY_STRING#read=}" 2>/dev/null; then :; else echo refused; fi ;;
fork-bomb)
	# Forks until refused (--script-pids-max); no answer.
	i=0
	while [ $i -lt 200 ]; do
		sleep 5 &
		i=$((i + 1))
	done 2>/dev/null
	wait ;;
spin)
	# Spins for 2 s of wall-clock time; says how much CPU it had.
	exec python3 -c '
import time
t = time.monotonic()
while time.monotonic() - t < 2:
    pass
print("Content-Type: text/plain\n\n%d" % (time.process_time() * 1000))' ;;
memory-hog)
	exec python3 -c '
x = bytearray(b"\1") * (512 * 1024 * 1024)
print("Content-Type: text/plain\n\nfitted")' ;;
slow-headers)
	# No headers yet; a background child holds stdout open.
	sleep 300 &
	echo "$$ $!" > "$PIDFILE"
	sleep 300 ;;
tick)
	printf 'Content-Type: text/plain\n\n'
	for i in 1 2 3 4 5 6; do
		echo tick
		sleep 0.4
	done ;;
id)
	printf 'Content-Type: text/plain\n\n'
	echo "uid=$(id -u) gid=$(id -g) groups=$(id -G)" ;;
limits)
	printf 'Content-Type: text/plain\n\n'
	echo "nofile=$(ulimit -n) cpu=$(ulimit -t)" ;;
ignore-term)
	trap '' TERM
	echo "$$" > "$PIDFILE"
	printf 'Content-Type: text/plain\n\n'
	sleep 300 ;;
detach)
	# Answers, closes its output, and goes on working (answer first,
	# work after); says when the work is done.
	printf 'Content-Type: text/plain\n\nanswered\n'
	exec >&- 2>&-
	sleep 5
	echo done > "$PIDFILE" ;;
no-headers)
	echo "just a body" ;;
blank-first)
	printf '\nbody\n' ;;
no-output)
	exit 0 ;;
stderr)
	echo "line one" >&2
	echo "line two" >&2
	printf 'Content-Type: text/plain\n\nok\n' ;;
status)
	printf 'Status: 418 I am a teapot\nContent-Type: text/plain\n\nteapot\n' ;;
location)
	printf 'Location: http://example.com/elsewhere\n\n' ;;
local-redirect)
	printf 'Location: /elsewhere\n\n' ;;
moved)
	printf 'Status: 301 Moved Permanently\nLocation: http://example.com/new\nContent-Type: text/plain\n\nmoved\n' ;;
big-headers=*)
	# A header block of about the given number of bytes.
	printf 'Content-Type: text/plain\n'
	printf 'X-Big: %s\n' "$(head -c "${QUERY_STRING#big-headers=}" /dev/zero | tr '\0' a)"
	printf '\nbody\n' ;;
stderr-then-close)
	# An error on stderr, then stdout closed without a header: both are
	# ready for the daemon at once.
	echo "cannot continue" >&2
	exec 1>&-
	sleep 1 ;;
stderr-only)
	echo "only to stderr" >&2
	exit 0 ;;
gigabyte)
	printf 'Content-Type: application/octet-stream\nContent-Length: 1073741824\n\n'
	head -c 1073741824 /dev/zero ;;
*)
	printf 'Status: 400 Bad Request\nContent-Type: text/plain\n\nunknown behaviour\n' ;;
esac
