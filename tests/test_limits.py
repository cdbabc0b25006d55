"""Every request bounded: timeouts, slow and hostile peers, malformed
input, overload, resource exhaustion, rlimits, stopping with a deadline."""

import os
import resource
import signal
import socket
import struct
import subprocess
import threading
import time

import fcgi_client as fc
import pytest
from conftest import FCGIWRAP, Daemon, can_connect, cgi_params, children_of, pid_alive, status_json, wait_for


def start_script(daemon, tmp_path, query, **params):
    pidfile = tmp_path / "pids"
    c = fc.Client(daemon.address)
    c.begin(cgi_params(query=query, PIDFILE=str(pidfile), **params))
    c.send_stdin(b"")
    assert wait_for(lambda: pidfile.exists() and pidfile.read_text().endswith("\n"))
    return c, [int(p) for p in pidfile.read_text().split()]


def all_gone(pids, timeout=5):
    return wait_for(lambda: not any(pid_alive(p) for p in pids), timeout)


# Timeouts of a few seconds: a script must have started (and written its
# PIDFILE) well before they fire, even on a loaded machine; the upper
# bounds only tell "on time" from "never".

def test_timeout_before_headers_is_504(tmp_path, start_daemon):
    d = start_daemon(["-t", "3"])
    start = time.monotonic()
    c, pids = start_script(d, tmp_path, "slow-headers")
    with c:
        r = c.read_response()
    assert r.status == 504
    assert 2.9 <= time.monotonic() - start < 12
    # The script and the grandchild holding its stdout are both gone.
    assert all_gone(pids)
    assert "timed out (-t)" in d.log()


def test_timeout_after_headers_ends_response(tmp_path, start_daemon):
    d = start_daemon(["-t", "3"])
    c, pids = start_script(d, tmp_path, "group")
    with c:
        r = c.read_response()
    assert r.status == 200 and r.body == b"waiting\n"
    assert r.app_status == 128 + signal.SIGTERM
    assert all_gone(pids)


def test_inactivity_timeout(tmp_path, start_daemon):
    d = start_daemon(["-t", "0", "--inactivity-timeout", "3"])
    # Output every 0.4 s keeps a 2.4 s request alive...
    r = fc.request(d.address, cgi_params(query="tick"))
    assert r.body == b"tick\n" * 6 and r.app_status == 0
    # ...silence ends it.
    start = time.monotonic()
    c, pids = start_script(d, tmp_path, "group")
    with c:
        r = c.read_response()
    assert 2.9 <= time.monotonic() - start < 12
    assert all_gone(pids)
    assert "no input or output for --inactivity-timeout" in d.log()


def test_kill_grace_option(tmp_path, start_daemon):
    # The script ignores SIGTERM: ended 0.5 s after -t, where the default
    # grace (3 s) would take until 5 s at least.
    d = start_daemon(["-t", "2", "--kill-grace", "0.5"])
    start = time.monotonic()
    c, (pid,) = start_script(d, tmp_path, "ignore-term")
    with c:
        c.read_response()
    assert all_gone([pid], 10)
    assert 2.4 <= time.monotonic() - start < 4.9


def fast_request_latency(daemon):
    start = time.monotonic()
    assert fc.request(daemon.address, cgi_params(query="hello")).status == 200
    return time.monotonic() - start


def test_idle_connection_is_closed(start_daemon):
    d = start_daemon(["--peer-timeout", "5"])
    s = socket.socket(socket.AF_UNIX)
    start = time.monotonic()
    s.connect(d.address)
    # It holds its own worker only: others are served meanwhile.
    assert fast_request_latency(d) < 3
    assert fc.is_closed(s, 10)
    assert 4.9 <= time.monotonic() - start < 12
    assert "no complete request within --peer-timeout" in d.log()


def test_trickling_connection(start_daemon):
    # A byte every 0.1 s keeps coming, but the head must be whole within
    # --peer-timeout of the connection.
    d = start_daemon(["--peer-timeout", "5"])
    head = fc.record(fc.BEGIN_REQUEST, 1, struct.pack(">HB5x", 1, 0)) + \
        fc.stream_records(fc.PARAMS, 1, fc.encode_params(cgi_params(query="hello")))
    s = socket.socket(socket.AF_UNIX)
    start = time.monotonic()
    s.connect(d.address)
    closed = False
    for i in range(len(head) - 1):
        try:
            s.send(head[i:i + 1])
        except OSError:
            closed = True
            break
        if i == 5:
            assert fast_request_latency(d) < 3
        time.sleep(0.1)
        if time.monotonic() - start > 15:
            break
    assert closed or fc.is_closed(s, 10)
    assert 4.9 <= time.monotonic() - start < 12
    s.close()


BEGIN = fc.record(fc.BEGIN_REQUEST, 1, struct.pack(">HB5x", 1, 0))
PARAMS = fc.stream_records(fc.PARAMS, 1, fc.encode_params(cgi_params(query="hello")))

MALFORMED = [
    ("bad version", b"\x02" + BEGIN[1:] + PARAMS, "unsupported FastCGI version"),
    ("http request", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "unsupported FastCGI version"),
    ("short BEGIN", fc.record(fc.BEGIN_REQUEST, 1, b"\0\1\0"), "malformed BEGIN_REQUEST"),
    ("BEGIN for the active request", BEGIN + fc.record(fc.BEGIN_REQUEST, 1, struct.pack(">HB5x", 1, 0)),
     "BEGIN_REQUEST for request 1, which is active already"),
    ("STDIN inside PARAMS", BEGIN + fc.record(fc.PARAMS, 1, b"\x01\x01ab") + fc.record(fc.STDIN, 1, b"x"),
     "other than PARAMS"),
    ("unknown type inside PARAMS", BEGIN + fc.record(42, 1, b"x"), "other than PARAMS"),
    ("huge PARAMS", BEGIN + fc.stream_records(fc.PARAMS, 1, fc.encode_params({"BIG": "x" * 200000})),
     "larger than 131072"),
    ("huge record length", BEGIN + struct.pack(">BBHHBB", 1, fc.PARAMS, 1, 65535, 255, 0) + b"\0" * 70000,
     None),
    ("truncated then closed", BEGIN[:5], "closed before a complete request"),
    ("params truncated then closed", BEGIN + PARAMS[:20], "closed before a complete request"),
    ("bad name length", BEGIN + fc.record(fc.PARAMS, 1, b"\x80\x00\x00\x10ab") + fc.record(fc.PARAMS, 1), None),
]


@pytest.mark.parametrize("name,data,log", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_input_fails_only_its_connection(start_daemon, name, data, log):
    d = start_daemon(["--peer-timeout", "2"])
    s = socket.socket(socket.AF_UNIX)
    s.connect(d.address)
    try:
        s.sendall(data)
    except OSError:
        pass
    if "closed" in name:
        s.shutdown(socket.SHUT_WR)
    assert fc.is_closed(s, 4), name
    s.close()
    if log:
        assert wait_for(lambda: log in d.log()), d.log()
    r = fc.request(d.address, cgi_params(query="hello"))
    assert r.status == 200 and r.body == b"hello\n"
    assert d.proc.poll() is None


def test_endless_params(start_daemon):
    # The daemon reads the PARAMS stream as it comes, so it outgrows the
    # head limit long before --peer-timeout.
    d = start_daemon(["--peer-timeout", "20"])
    s = socket.socket(socket.AF_UNIX)
    s.connect(d.address)
    s.sendall(BEGIN)
    sent = 0
    s.settimeout(3)
    try:
        while sent < 4 * 1024 * 1024:
            s.sendall(fc.record(fc.PARAMS, 1, fc.encode_params({"N%d" % sent: "v" * 8000})))
            sent += 8000
    except OSError:
        pass
    assert fc.is_closed(s, 5)
    assert wait_for(lambda: "request head (PARAMS) larger than 131072 bytes" in d.log())
    assert fc.request(d.address, cgi_params(query="hello")).status == 200


def test_bad_record_in_body_aborts_request(start_daemon):
    d = start_daemon()
    with fc.Client(d.address) as c:
        c.begin(cgi_params(query="count", method="POST", CONTENT_LENGTH="10"))
        c.send(fc.record(fc.STDIN, 1, b"12345") + b"\x09" + fc.record(fc.STDIN, 1, b"12345")[1:])
        assert fc.is_closed(c.sock, 5)
    assert wait_for(lambda: "unsupported FastCGI version 9" in d.log())
    assert fc.request(d.address, cgi_params(query="hello")).status == 200


def test_overload_503_after_queue_timeout(start_daemon):
    d = start_daemon(["-c", "1", "--queue-timeout", "0.5"])
    slow = threading.Thread(target=fc.request, args=(d.address, cgi_params(query="sleep=5")))
    slow.start()
    # The slow script runs: it holds the only slot.
    assert wait_for(lambda: children_of(d.proc.pid), 10)
    start = time.monotonic()
    r = fc.request(d.address, cgi_params(query="hello"))
    assert r.status == 503
    assert 0.4 <= time.monotonic() - start < 3
    slow.join()
    assert fc.request(d.address, cgi_params(query="hello")).status == 200
    log = d.log()
    assert log.count("stayed busy for --queue-timeout") == 1
    assert "script slots are available again" in log


def test_overload_waits_within_queue_timeout(start_daemon):
    d = start_daemon(["-c", "1", "--queue-timeout", "20"])
    slow = threading.Thread(target=fc.request, args=(d.address, cgi_params(query="sleep=3")))
    slow.start()
    assert wait_for(lambda: children_of(d.proc.pid), 10)
    start = time.monotonic()
    assert fc.request(d.address, cgi_params(query="hello")).status == 200
    assert time.monotonic() - start >= 1.0
    slow.join()


def test_overload_503_waits_for_a_late_body(start_daemon):
    # The body of a request that waited its --queue-timeout may come after
    # that: the 503 waits for it as long as bytes keep coming within
    # --peer-timeout.  (With both at their default 30 s, the head's
    # deadline had passed when the queue gave up, and the request was
    # reset instead: nginx showed 502.)
    d = start_daemon(["-c", "1", "--queue-timeout", "2", "--peer-timeout", "2", "--status-path", "/status"])
    slow = threading.Thread(target=fc.request, args=(d.address, cgi_params(query="sleep=8")))
    slow.start()
    assert wait_for(lambda: children_of(d.proc.pid), 10)
    with fc.Client(d.address, timeout=30) as c:
        start = time.monotonic()
        c.begin(cgi_params(query="count", method="POST", CONTENT_LENGTH="4"))
        assert wait_for(lambda: status_json(d)["queued requests"] == 1, 10)
        # Past the queue's end (2 s) and the head's --peer-timeout (2 s),
        # within --peer-timeout of the queue's end.
        time.sleep(max(0, start + 3 - time.monotonic()))
        c.send_stdin(b"body")
        r = c.read_response()
    assert r.status == 503
    slow.join()
    assert "sent no body bytes" not in d.log()


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_fd_exhaustion_recovers(tmp_path):
    def low_nofile():
        resource.setrlimit(resource.RLIMIT_NOFILE, (40, 40))

    d = Daemon(tmp_path)
    d.log_file = open(d.log_path, "ab")
    d.proc = subprocess.Popen([FCGIWRAP, "-s", d.url, "--allow-root", "--peer-timeout", "60"], stdout=d.log_file,
                              stderr=subprocess.STDOUT, preexec_fn=low_nofile)
    assert wait_for(lambda: "serving " in d.log())
    held = []
    try:
        # Idle connections use up the daemon's fds.
        for _ in range(40):
            s = socket.socket(socket.AF_UNIX)
            s.connect(d.address)
            held.append(s)
        assert wait_for(lambda: "cannot accept connections for now" in d.log())
        cpu0 = cpu_seconds(d.proc.pid)
        time.sleep(1)
        assert cpu_seconds(d.proc.pid) - cpu0 < 0.2, "spinning while out of fds"
        # A request on one of the accepted connections cannot get pipes: 503.
        statuses = set()
        for s in held[:30]:
            s.settimeout(0.2)
            try:
                s.sendall(BEGIN + PARAMS + fc.record(fc.STDIN, 1))
            except OSError:
                pass
        for s in held[:30]:
            c = fc.Client.__new__(fc.Client)
            c.sock, c.buf = s, b""
            s.settimeout(5)
            try:
                statuses.add(c.read_response().status)
            except (OSError, ConnectionError, ValueError):
                pass
        assert 503 in statuses, statuses
        # One line per episode of shortage, not one per refused request.
        log = d.log()
        assert log.count("cannot start scripts") <= log.count("scripts can be started again") + 1
    finally:
        for s in held:
            s.close()
    # Resources are back: it serves again, by itself.
    def serves():
        try:
            return fc.request(d.address, cgi_params(query="hello")).status == 200
        except OSError:
            return False
    assert wait_for(serves, 10)
    assert "accepting connections again" in d.log()
    assert "scripts can be started again" in d.log()
    assert d.proc.poll() is None
    d.stop()


def test_rlimits_apply_to_scripts(start_daemon):
    d = start_daemon(["--rlimit", "nofile=64", "--rlimit", "cpu=7"])
    r = fc.request(d.address, cgi_params(query="limits"))
    assert r.body == b"nofile=64 cpu=7\n"


@pytest.mark.parametrize("spec", ["nofile", "bogus=1", "cpu=-1", "as=12Q", "cpu=10M"])
def test_bad_rlimit_spec(spec):
    r = subprocess.run([FCGIWRAP, "--allow-root", "--rlimit", spec, "-s", "unix:/nonexistent/x"], capture_output=True,
                       text=True)
    assert r.returncode == 1
    assert "invalid --rlimit" in r.stderr


def test_stop_deadline_ends_requests(tmp_path, start_daemon):
    d = start_daemon(["--shutdown-timeout", "1"])
    c, pids = start_script(d, tmp_path, "slow-headers")
    start = time.monotonic()
    d.proc.send_signal(signal.SIGTERM)
    with c:
        r = c.read_response()
    assert r.status == 503
    assert 0.9 <= time.monotonic() - start < 10
    assert d.proc.wait(10) == 0
    assert all_gone(pids)


def test_second_signal_stops_at_once(tmp_path, start_daemon):
    d = start_daemon()
    c, pids = start_script(d, tmp_path, "slow-headers")
    start = time.monotonic()
    d.proc.send_signal(signal.SIGTERM)
    d.proc.send_signal(signal.SIGINT)
    with c:
        r = c.read_response()
    assert r.status == 503
    # At once, where the first signal alone would wait 60 s.
    assert time.monotonic() - start < 10
    assert d.proc.wait(10) == 0
    assert all_gone(pids)


def test_max_connections_then_next_is_taken(start_daemon):
    # --max-connections 2: two silent connections hold both workers, a
    # third waits (in the listen backlog) unanswered; once one of the two
    # closes, the worker it held takes the waiting one at once.
    d = start_daemon(["--max-connections", "2", "--peer-timeout", "20"])
    idle = []
    for _ in range(2):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(d.address)
        idle.append(s)
    # Both taken: the main thread and two workers.
    assert wait_for(lambda: len(os.listdir("/proc/%d/task" % d.proc.pid)) == 3, 10)
    with fc.Client(d.address, timeout=10) as c:
        c.begin(cgi_params(query="hello"))
        c.send_stdin(b"")
        c.sock.settimeout(1)
        with pytest.raises(socket.timeout):
            c.sock.recv(1)
        idle[0].close()
        c.sock.settimeout(10)
        start = time.monotonic()
        assert c.read_response().body == b"hello\n"
        assert time.monotonic() - start < 5
    idle[1].close()


def buffer_rss_kib(pid):
    """Resident KiB of each worker's buffer mapping: one read-write
    anonymous mapping of 64 KiB (output) + 64 KiB (body) + 128 KiB (request
    head) + 64 KiB (input), 80 pages, kept apart from its neighbours by a
    page with no access on each side (src/worker_buffers.c)."""
    out, size = [], None
    with open("/proc/%d/smaps" % pid) as f:
        for line in f:
            fields = line.split()
            if "-" in fields[0] and ":" not in fields[0]:
                lo, hi = (int(x, 16) for x in fields[0].split("-"))
                size = hi - lo if fields[1] == "rw-p" and len(fields) == 5 else None
            elif fields[0] == "Rss:" and size == 80 * 4096:
                out.append(int(fields[1]))
    return out


def test_buffers_given_back_after_large_request(daemon):
    # A worker that served a 1 MiB upload gives its buffers' pages back:
    # otherwise every worker that ever saw one would keep them.
    body = os.urandom(1024 * 1024)
    with fc.Client(daemon.address) as c:
        r = c.request(cgi_params(query="count", method="POST", CONTENT_LENGTH=str(len(body))), body)
        # The buffers are trimmed before the connection is closed.
        assert fc.is_closed(c.sock, 10)
    assert r.body.strip() == str(len(body)).encode()
    rss = buffer_rss_kib(daemon.proc.pid)
    assert rss and max(rss) <= 8, rss
