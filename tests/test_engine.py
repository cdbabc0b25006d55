"""The engine: concurrency, full duplex, streaming, exit status, reaping,
process groups, kept connections."""

import os
import socket
import threading
import time

import fcgi_client as fc
from conftest import HELLO_CGI, cgi_params, children_of, pid_alive, wait_for

MiB = 1024 * 1024


def test_answer_before_reading_large_body(daemon):
    # The script writes its headers and 1 MiB before reading a 32 MiB body:
    # fcgiwrap 1.1.0 deadlocks here.
    body = b"y" * (32 * MiB)
    r = fc.request(daemon.address, cgi_params(query="answer-first", method="POST",
                                              CONTENT_LENGTH=str(len(body))), body, timeout=60)
    assert r.status == 200
    lines = r.body.split(b"\n")
    assert lines[0] == b"x" * MiB
    assert lines[1] == str(len(body)).encode()


def test_echo_while_reading(daemon):
    # cat writes as it reads: the relay must read output while feeding input.
    body = os.urandom(16 * MiB)
    r = fc.request(daemon.address, cgi_params(query="echo", method="POST",
                                              CONTENT_LENGTH=str(len(body))), body, timeout=60)
    assert r.body == body


def descendant_names(pid):
    """The command names of pid's descendants."""
    names, todo = [], [pid]
    while todo:
        for child, _ in children_of(todo.pop()):
            todo.append(child)
            try:
                with open("/proc/%d/comm" % child) as f:
                    names.append(f.read().strip())
            except OSError:
                pass
    return names


def test_no_output_before_body_ends(daemon):
    # Output the script writes early is held until FCGI_STDIN has ended.
    # 256 KiB of body without its end: more than the pipe holds, so the
    # relay is left reading the script's output, not waiting for the body.
    first = b"a" * (256 * 1024)
    with fc.Client(daemon.address) as c:
        c.begin(cgi_params(query="answer-first", method="POST", CONTENT_LENGTH=str(len(first) + 2)))
        c.send_stdin(first, end=False)
        # wc runs once the script's megabyte of output is written: from
        # then on, only the body's end may release it.
        assert wait_for(lambda: "wc" in descendant_names(daemon.proc.pid), 10)
        c.sock.settimeout(1.0)
        try:
            data = c.sock.recv(1)
        except socket.timeout:
            data = None
        assert data is None, "response bytes arrived before the body ended"
        c.sock.settimeout(20)
        c.send_stdin(b"cd")
        r = c.read_response()
    assert r.body.endswith(b"\n%d\n" % (len(first) + 2))


def test_streaming_latency(daemon):
    with fc.Client(daemon.address) as c:
        start = time.monotonic()
        c.begin(cgi_params(query="stream"))
        c.send_stdin(b"")
        r = c.read_response()
    first = next(t for t, rtype, content in r.events if rtype == fc.STDOUT and b"first" in content)
    second = next(t for t, rtype, content in r.events if rtype == fc.STDOUT and b"second" in content)
    # The script sleeps 2 s between its lines: held output would arrive
    # all at once.
    assert second - first >= 1.0, "the first line waited for the second"
    assert first - start < 5, "first line took %.2fs" % (first - start)


def test_slow_requests_do_not_block_fast_ones(daemon):
    results = []

    def slow():
        results.append(fc.request(daemon.address, cgi_params(query="sleep=10")).body)

    threads = [threading.Thread(target=slow) for _ in range(6)]
    for t in threads:
        t.start()
    assert wait_for(lambda: len(children_of(daemon.proc.pid)) == 6, 10)
    for _ in range(10):
        start = time.monotonic()
        assert fc.request(daemon.address, cgi_params(query="hello")).body == b"hello\n"
        assert time.monotonic() - start < 5
    for t in threads:
        t.join()
    assert results == [b"slept\n"] * 6


def test_concurrency_limit(start_daemon):
    d = start_daemon(["-c", "2"])
    done = []

    def slow():
        fc.request(d.address, cgi_params(query="sleep=3"))
        done.append(time.monotonic())

    start = time.monotonic()
    threads = [threading.Thread(target=slow) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = sorted(t - start for t in done)
    assert elapsed[1] < 5, elapsed
    assert elapsed[2] >= 5.9, "the third request did not wait for a slot: %r" % elapsed


def test_no_zombies(daemon):
    for q in ["hello", "exit=1", "kill-self", "no-output", "hello"]:
        fc.request(daemon.address, cgi_params(query=q))
    assert wait_for(lambda: children_of(daemon.proc.pid) == [], 5), children_of(daemon.proc.pid)


def start_script(daemon, tmp_path, query):
    """Starts a script that writes its pids (script, then a background
    child if any) to PIDFILE; returns the open client and the pids."""
    pidfile = tmp_path / "pids"
    c = fc.Client(daemon.address)
    c.begin(cgi_params(query=query, PIDFILE=str(pidfile)))
    c.send_stdin(b"")
    assert wait_for(lambda: pidfile.exists() and pidfile.read_text().endswith("\n"))
    return c, [int(p) for p in pidfile.read_text().split()]


def test_script_inherits_only_stdio(tmp_path, daemon):
    # Read until it holds: the background child may still be a shell
    # before its exec, or in ld.so with a library open as fd 3; an fd it
    # inherited would stay for good.
    c, (script, background) = start_script(daemon, tmp_path, "group")
    fds = "/proc/%d/fd" % background
    with c:
        assert wait_for(lambda: sorted(os.listdir(fds)) == ["0", "1", "2"], 5), os.listdir(fds)


def test_script_signals_are_clean(daemon):
    # The daemon ignores SIGPIPE and blocks the signals it reads with a
    # signalfd; a script must inherit neither.
    r = fc.request(daemon.address, cgi_params(query="signals"))
    fields = dict(line.split(":\t") for line in r.body.decode().splitlines())
    assert int(fields["SigBlk"], 16) == 0
    assert int(fields["SigIgn"], 16) == 0


def test_client_gone_kills_process_group(tmp_path, start_daemon):
    # A grace of 30 s: gone well before it means SIGTERM came at once.
    d = start_daemon(["--kill-grace", "30"])
    c, (script, background) = start_script(d, tmp_path, "group")
    rtype, _, content = c.read_record()
    assert rtype == fc.STDOUT
    assert pid_alive(script) and pid_alive(background)
    c.close()
    start = time.monotonic()
    assert wait_for(lambda: not pid_alive(script) and not pid_alive(background), 10)
    assert time.monotonic() - start < 10
    assert wait_for(lambda: children_of(d.proc.pid) == [], 5)
    assert fc.request(d.address, cgi_params(query="hello")).status == 200


def test_sigkill_after_grace(tmp_path, daemon):
    # The script ignores SIGTERM: SIGKILL after the grace (3 s), not before.
    c, (pid,) = start_script(daemon, tmp_path, "ignore-term")
    start = time.monotonic()
    c.close()
    assert wait_for(lambda: not pid_alive(pid), 10)
    assert 2.9 <= time.monotonic() - start < 10


def test_abort_request_record(tmp_path, start_daemon):
    d = start_daemon(["--kill-grace", "30"])
    c, (script, background) = start_script(d, tmp_path, "group")
    with c:
        c.send(fc.record(fc.ABORT_REQUEST, 1))
        assert wait_for(lambda: not pid_alive(script) and not pid_alive(background), 10)
    assert fc.request(d.address, cgi_params(query="hello")).status == 200


def test_keep_conn(daemon):
    with fc.Client(daemon.address) as c:
        for i in range(3):
            r = c.request(cgi_params(query="hello"), request_id=i + 1, keep_conn=True)
            assert r.body == b"hello\n"
            assert r.app_status == 0
        r = c.request(cgi_params(query="exit=4"), request_id=9, keep_conn=True)
        assert r.app_status == 4
        # Without FCGI_KEEP_CONN the daemon closes after the response.
        r = c.request(cgi_params(query="hello"), request_id=10, keep_conn=False)
        assert r.body == b"hello\n"
        assert fc.is_closed(c.sock, 10)


def test_connection_closed_without_keep_conn(daemon):
    with fc.Client(daemon.address) as c:
        c.request(cgi_params(query="hello"))
        assert fc.is_closed(c.sock, 10)


def test_small_response_is_one_record(daemon):
    # The CGI header block and the body bytes read with it leave in one
    # STDOUT record (one sendmsg), not one for the header and one for the
    # body.
    r = fc.request(daemon.address, {"SCRIPT_FILENAME": HELLO_CGI, "REQUEST_METHOD": "GET"})
    assert r.body == b"Hello, world!\n"
    stdout = [content for _, rtype, content in r.events if rtype == fc.STDOUT and content]
    assert len(stdout) == 1 and stdout[0].endswith(b"\r\n\r\nHello, world!\n")
