"""What a web server sends, read by the daemon's own record reader: management
records at any moment, records of other request ids, padding, hostile
lengths and pacing.  After each, the daemon is the same process, still
serving, and stops on time."""

import os
import shutil
import signal
import socket
import struct
import subprocess
import threading
import time

import fcgi_client as fc
import pytest
from conftest import CGI_DIR, FAULT_MMAP, cgi_params, children_of, pid_alive, wait_for

GET_VALUES, GET_VALUES_RESULT, UNKNOWN_TYPE = 9, 10, 11
CANT_MPX_CONN, UNKNOWN_ROLE = 1, 3
MiB = 1024 * 1024


def begin(request_id=1, keep_conn=False, role=fc.RESPONDER, padding=0):
    body = struct.pack(">HB5x", role, fc.KEEP_CONN if keep_conn else 0)
    return fc.record(fc.BEGIN_REQUEST, request_id, body, padding)


def head(params, request_id=1, **kw):
    return begin(request_id, **kw) + fc.stream_records(fc.PARAMS, request_id, fc.encode_params(params))


def get_values(*names):
    return fc.record(GET_VALUES, 0, b"".join(fc.encode_params({n: ""}) for n in names))


def decode_pairs(content):
    out, pos = [], 0
    while pos < len(content):
        lens = []
        for _ in range(2):
            if content[pos] & 0x80:
                lens.append(struct.unpack(">I", content[pos:pos + 4])[0] & 0x7fffffff)
                pos += 4
            else:
                lens.append(content[pos])
                pos += 1
        out.append((content[pos:pos + lens[0]].decode(), content[pos + lens[0]:pos + sum(lens)].decode()))
        pos += sum(lens)
    return out


def read_until_end(c, request_id=1):
    """Reads records up to the END_REQUEST of request_id; returns the
    response and the other records seen on the way, in order."""
    resp, others = fc.Response(), []
    while True:
        rtype, rid, content = c.read_record()
        if rid == request_id and rtype in (fc.STDOUT, fc.STDERR, fc.END_REQUEST):
            if rtype == fc.STDOUT:
                resp.stdout += content
            elif rtype == fc.STDERR:
                resp.stderr += content
            else:
                resp.app_status, resp.protocol_status = struct.unpack(">IB3x", content)
                return resp, others
        else:
            others.append((rtype, rid, content))


def assert_still_serving(d):
    assert d.proc.poll() is None, "the daemon died: " + d.log()
    start = time.monotonic()
    r = fc.request(d.address, cgi_params(query="hello"))
    assert r.status == 200 and r.body == b"hello\n"
    assert time.monotonic() - start < 10


def test_get_values_with_a_repeated_name(start_daemon):
    # libfcgi's handler overflows a 64-byte stack buffer here and the
    # whole daemon dies ("stack smashing detected").
    d = start_daemon(["--max-connections", "7"])
    with fc.Client(d.address) as c:
        c.send(get_values(*["FCGI_MPXS_CONNS"] * 8))
        rtype, rid, content = c.read_record()
        assert (rtype, rid) == (GET_VALUES_RESULT, 0)
        assert decode_pairs(content) == [("FCGI_MPXS_CONNS", "0")]
        c.send(get_values("FCGI_MAX_CONNS", "NOT_A_VARIABLE", "FCGI_MAX_REQS", "FCGI_MAX_CONNS"))
        rtype, rid, content = c.read_record()
        assert decode_pairs(content) == [("FCGI_MAX_CONNS", "7"), ("FCGI_MAX_REQS", "7")]
        # The same connection then serves a request.
        r = c.request(cgi_params(query="hello"))
        assert r.body == b"hello\n"
    assert_still_serving(d)


def test_management_records_during_the_body(daemon):
    body1, body2 = os.urandom(100000), os.urandom(50000)
    params = cgi_params(query="echo", method="POST", CONTENT_LENGTH=str(len(body1) + len(body2)))
    with fc.Client(daemon.address) as c:
        c.send(head(params))
        c.send_stdin(body1, end=False)
        c.send(get_values(*["FCGI_MPXS_CONNS"] * 8) + fc.record(42, 0, b"junk that is not body", 3))
        # Answered at once, while the response is still held back.
        rtype, _, content = c.read_record()
        assert rtype == GET_VALUES_RESULT and decode_pairs(content) == [("FCGI_MPXS_CONNS", "0")]
        rtype, _, content = c.read_record()
        assert rtype == UNKNOWN_TYPE and content[0] == 42
        c.send_stdin(body2)
        r, others = read_until_end(c)
    assert others == []
    # Nothing of the management records reached the script's stdin.
    assert r.body == body1 + body2


def test_begin_request_with_id_0_is_a_management_record(daemon):
    with fc.Client(daemon.address) as c:
        c.send(begin(request_id=0))
        rtype, rid, content = c.read_record()
        assert (rtype, rid, content[0]) == (UNKNOWN_TYPE, 0, fc.BEGIN_REQUEST)
        assert c.request(cgi_params(query="hello")).body == b"hello\n"


def test_second_request_on_a_connection_is_refused(daemon):
    with fc.Client(daemon.address) as c:
        c.send(begin(1) + begin(2) + fc.stream_records(fc.PARAMS, 1, fc.encode_params(cgi_params(query="hello"))))
        c.send(fc.record(fc.STDIN, 1))
        r, others = read_until_end(c)
    assert r.body == b"hello\n"
    assert [(t, rid, struct.unpack(">IB3x", content)[1]) for t, rid, content in others] == \
        [(fc.END_REQUEST, 2, CANT_MPX_CONN)]


def test_records_of_other_ids_are_ignored(daemon):
    # An empty record of another id made libfcgi drop the next record of
    # the request; records before BEGIN_REQUEST are ignored too
    # (specification 3.3: records of an inactive id are ignored).
    body = b"abc" * 1000
    params = cgi_params(query="echo", method="POST", CONTENT_LENGTH=str(len(body) + 3))
    with fc.Client(daemon.address) as c:
        c.send(fc.record(fc.STDIN, 1, b"before") + fc.record(fc.ABORT_REQUEST, 5) + head(params))
        c.send(fc.record(fc.STDIN, 2) + fc.record(fc.STDIN, 1, body) + fc.record(fc.PARAMS, 3, b"zzz", 5)
               + fc.record(fc.STDIN, 3, b"not this") + fc.record(fc.STDIN, 1, b"end") + fc.record(fc.STDIN, 1))
        r, others = read_until_end(c)
    assert r.body == body + b"end"
    assert others == []
    assert wait_for(lambda: "ignoring records of request 1, which is not active" in daemon.log())


def test_padded_records(daemon):
    # libfcgi lost every parameter of a padded BEGIN_REQUEST.
    params = fc.encode_params(cgi_params(query="env", method="POST", CONTENT_LENGTH="2", PADDED="yes"))
    with fc.Client(daemon.address) as c:
        c.send(begin(padding=7) + fc.record(fc.PARAMS, 1, params, 255) + fc.record(fc.PARAMS, 1, b"", 3)
               + fc.record(fc.STDIN, 1, b"hi", 6) + fc.record(fc.STDIN, 1, b"", 255))
        r = c.read_response()
    assert r.status == 200 and "PADDED=yes" in r.body.decode()


def test_huge_param_lengths(daemon):
    # A name and a value claiming 2 GiB each: libfcgi allocates 4 GiB.
    claim = struct.pack(">II", 0xffffffff, 0xffffffff) + b"x" * 16
    with fc.Client(daemon.address) as c:
        c.send(begin() + fc.record(fc.PARAMS, 1, claim) + fc.record(fc.PARAMS, 1))
        assert fc.is_closed(c.sock, 5)
    assert wait_for(lambda: "malformed PARAMS: a name or value runs past the end of the stream" in daemon.log())
    assert_still_serving(daemon)


def test_other_roles_refused_by_protocol_status(daemon):
    for role in (2, 3, 9):
        with fc.Client(daemon.address) as c:
            c.send(head(cgi_params(query="hello"), role=role))
            r = c.read_response()
            assert r.protocol_status == UNKNOWN_ROLE and r.stdout == b""
            assert fc.is_closed(c.sock, 5)
    assert wait_for(lambda: "FastCGI role 9 refused" in daemon.log())
    assert_still_serving(daemon)


def trickle_into_body(d, what):
    """Starts a POST whose body stalls, then keeps the connection busy with
    bytes that do not move the body on; returns (client, stop event)."""
    c = fc.Client(d.address, timeout=30)
    c.send(head(cgi_params(query="count", method="POST", CONTENT_LENGTH="1000")))
    if what == "other-id":
        c.send(fc.record(fc.STDIN, 1, b"ab"))
        piece = fc.record(fc.STDIN, 2, b"x")
    else:
        # One STDIN record with 255 bytes of padding, sent a byte at a time.
        c.send(struct.pack(">BBHHBB", 1, fc.STDIN, 1, 2, 255, 0) + b"ab")
        piece = b"\0"
    stop = threading.Event()

    def run():
        for _ in range(200):
            if stop.wait(0.1):
                return
            try:
                c.send(piece)
            except OSError:
                return

    threading.Thread(target=run, daemon=True).start()
    return c, stop


@pytest.mark.parametrize("what", ["other-id", "padding"])
def test_trickle_cannot_hold_a_body_past_peer_timeout(start_daemon, what):
    # Bytes that move no body byte do not count as progress: the request
    # ends after --peer-timeout, although bytes kept coming.
    d = start_daemon(["--peer-timeout", "1"])
    start = time.monotonic()
    c, stop = trickle_into_body(d, what)
    try:
        assert fc.is_closed(c.sock, 10)
        assert time.monotonic() - start < 10  # the trickle goes on for 20 s
    finally:
        stop.set()
        c.close()
    assert wait_for(lambda: "the web server sent no body bytes for --peer-timeout" in d.log())
    assert_still_serving(d)


@pytest.mark.parametrize("what", ["other-id", "padding"])
def test_trickle_cannot_hold_a_body_past_timeout(start_daemon, what):
    d = start_daemon(["-t", "1"])
    start = time.monotonic()
    c, stop = trickle_into_body(d, what)
    try:
        # The script ("count") has sent its header already: the response
        # ends where it is, the script ended by SIGTERM.
        r, _ = read_until_end(c)
        assert r.app_status == 128 + signal.SIGTERM
        assert time.monotonic() - start < 10  # the trickle goes on for 20 s
    finally:
        stop.set()
        c.close()
    assert "timed out (-t)" in d.log()
    assert_still_serving(d)


@pytest.mark.parametrize("what", ["missing", "ping"])
def test_body_of_a_request_answered_without_a_script_may_trickle(start_daemon, what):
    # A body whose pieces come within --peer-timeout of each other is read
    # to its end, however long it takes in all, and then answered: the
    # head's deadline does not carry over to the body.
    d = start_daemon(["--peer-timeout", "2", "--ping-path", "/ping"])
    params = cgi_params(script="nope.sh", method="POST", CONTENT_LENGTH="8")
    if what == "ping":
        params["SCRIPT_NAME"] = "/ping"
    with fc.Client(d.address, timeout=30) as c:
        c.send(head(params))
        for _ in range(8):
            time.sleep(0.5)
            c.send(fc.record(fc.STDIN, 1, b"x"))
        c.send(fc.record(fc.STDIN, 1))
        r, _ = read_until_end(c)
    assert r.status == (404 if what == "missing" else 200)
    assert "sent no body bytes" not in d.log()


def test_body_of_a_request_answered_without_a_script_ends_at_timeout(start_daemon):
    # -t bounds the whole request, its refusal's body included.
    d = start_daemon(["-t", "1", "--peer-timeout", "8"])
    start = time.monotonic()
    with fc.Client(d.address, timeout=30) as c:
        c.send(head(cgi_params(script="nope.sh", method="POST", CONTENT_LENGTH="100")))
        try:
            for _ in range(40):
                c.send(fc.record(fc.STDIN, 1, b"x"))
                time.sleep(0.25)
        except OSError:
            pass
        assert fc.is_closed(c.sock, 10)
    assert time.monotonic() - start < 5  # the trickle goes on for 10 s
    assert wait_for(lambda: "the body did not end within the request's time (-t)" in d.log())


@pytest.mark.parametrize("second_signal", [False, True])
def test_trickle_cannot_hold_the_stop(start_daemon, second_signal):
    # After SIGTERM the daemon exits within --shutdown-timeout plus
    # --kill-grace plus a second, whatever the peer does; a second signal
    # ends requests at once.
    d = start_daemon(["--shutdown-timeout", "60" if second_signal else "1", "--kill-grace", "1"])
    trickles = [trickle_into_body(d, what) for what in ("other-id", "padding")]
    # A peer that never reads what it is sent, and a head never finished.
    flood = fc.Client(d.address, timeout=30)
    flood.sock.setblocking(False)
    try:
        for _ in range(100000):
            flood.sock.send(get_values("FCGI_MPXS_CONNS"))
    except BlockingIOError:
        pass
    partial = fc.Client(d.address, timeout=30)
    partial.send(begin())
    # Every connection taken by a worker (the main thread and four), the
    # two trickled requests' scripts running.
    assert wait_for(lambda: len(os.listdir("/proc/%d/task" % d.proc.pid)) == 5
                    and len(children_of(d.proc.pid)) == 2, 10)
    start = time.monotonic()
    d.proc.send_signal(signal.SIGTERM)
    if second_signal:
        time.sleep(0.3)
        d.proc.send_signal(signal.SIGTERM)
    try:
        assert d.proc.wait(20) == 0
        # Against 20 s of trickle, a peer that never reads (--peer-timeout
        # 30) and 60 s of --shutdown-timeout.
        assert time.monotonic() - start < 10
    finally:
        for c, stop in trickles:
            stop.set()
            c.close()
        flood.close()
        partial.close()


def test_peer_that_never_reads_replies(start_daemon):
    # Management replies wait for the peer under --peer-timeout, like any
    # output: a peer that sends and never reads is closed.
    d = start_daemon(["--peer-timeout", "1"])
    s = socket.socket(socket.AF_UNIX)
    s.connect(d.address)
    s.setblocking(False)
    one = get_values(*["FCGI_MPXS_CONNS"] * 4)
    start = time.monotonic()
    sent = 0
    try:
        while time.monotonic() - start < 15:
            try:
                sent += s.send(one * 1000)
            except BlockingIOError:
                time.sleep(0.01)
            if "cannot send a management reply" in d.log():
                break
    except (BrokenPipeError, ConnectionResetError):
        pass
    finally:
        s.close()
    assert wait_for(lambda: "cannot send a management reply: the web server does not read" in d.log(), 10)
    assert time.monotonic() - start < 10
    assert_still_serving(d)


def test_refused_connection_is_closed_while_bytes_keep_coming(daemon):
    # libfcgi went on reading a refused connection for as long as bytes
    # came less than 100 ms apart.
    s = socket.socket(socket.AF_UNIX)
    s.connect(daemon.address)
    s.sendall(b"\x07" + begin()[1:])
    start = time.monotonic()
    closed_at = None
    try:
        while time.monotonic() - start < 15:
            s.send(b"x")
            time.sleep(0.05)
    except OSError:
        closed_at = time.monotonic()
    s.close()
    assert closed_at is not None and closed_at - start < 5
    assert "unsupported FastCGI version 7" in daemon.log()
    assert_still_serving(daemon)


def start_group(d, tmp_path, body=b"", end=False):
    """A request for the 'group' script (it never reads its stdin) with a
    body that has not ended; returns the client and the script's pids."""
    pidfile = tmp_path / "pids"
    c = fc.Client(d.address)
    c.send(head(cgi_params(query="group", method="POST", PIDFILE=str(pidfile))))
    c.send_stdin(body, end=end)
    assert wait_for(lambda: pidfile.exists() and pidfile.read_text().endswith("\n"))
    return c, [int(p) for p in pidfile.read_text().split()]


@pytest.mark.parametrize("behind", [0, 150 * 1024])
def test_abort_during_the_body(tmp_path, start_daemon, behind):
    # FCGI_ABORT_REQUEST while the body streams: the script's group is
    # ended at once, even when the abort comes behind body bytes the
    # script has not taken (150 KiB: more than its pipe and the daemon's
    # body buffer hold, so the abort is found by looking ahead in the
    # bytes read from the socket).
    # A grace of 30 s: gone well before it means SIGTERM came at once.
    daemon = start_daemon(["--kill-grace", "30"])
    c, pids = start_group(daemon, tmp_path, b"x" * behind)
    with c:
        start = time.monotonic()
        c.send(fc.record(fc.ABORT_REQUEST, 1))
        assert wait_for(lambda: not any(pid_alive(p) for p in pids), 10)
        assert time.monotonic() - start < 10
        if not behind:
            # Answered with END_REQUEST; the connection is still usable.
            r, _ = read_until_end(c)
            assert r.app_status == 128 + signal.SIGTERM
    assert wait_for(lambda: "the web server aborted the request" in daemon.log())
    assert_still_serving(daemon)


def test_close_during_a_body_the_script_does_not_read(tmp_path, start_daemon):
    # 160 KiB: the script's pipe and the daemon's body buffer are full, so
    # the daemon is not reading the body when the web server goes away.
    daemon = start_daemon(["--kill-grace", "30"])
    c, pids = start_group(daemon, tmp_path, b"y" * (160 * 1024))
    start = time.monotonic()
    c.close()
    assert wait_for(lambda: not any(pid_alive(p) for p in pids), 10)
    assert time.monotonic() - start < 10
    assert_still_serving(daemon)


def test_cgi_fcgi_client(daemon):
    # libfcgi's own client, as a second, independent implementation.
    cgi_fcgi = shutil.which("cgi-fcgi")
    if not cgi_fcgi:
        pytest.fail("cgi-fcgi is required (apt-get install libfcgi-bin)")
    body = os.urandom(300000)
    env = {"SCRIPT_FILENAME": os.path.join(CGI_DIR, "behave.sh"), "QUERY_STRING": "echo",
           "REQUEST_METHOD": "POST", "CONTENT_LENGTH": str(len(body))}
    out = subprocess.run([cgi_fcgi, "-bind", "-connect", daemon.address], input=body, env=env,
                         capture_output=True, timeout=30)
    assert out.returncode == 0, out.stderr
    headers, _, got = out.stdout.partition(b"\r\n\r\n")
    assert headers == b"Content-Type: application/octet-stream"
    assert got == body


def test_worker_that_cannot_map_its_buffers(tmp_path, start_daemon):
    # While a new worker cannot map its buffers, its connections are
    # closed (not left waiting) with one log line; once memory is back,
    # every request is served: a worker that failed does not stay behind
    # to close connections, nor leave the pool's counts wrong.
    flag = tmp_path / "no-memory"
    flag.write_text("")
    env = dict(os.environ, LD_PRELOAD=FAULT_MMAP, FAULT_MMAP_FLAG=str(flag), FAULT_MMAP_MIN="65536",
               ASAN_OPTIONS="verify_asan_link_order=0:" + os.environ.get("ASAN_OPTIONS", ""))
    d = start_daemon(env=env)
    for _ in range(3):
        with fc.Client(d.address) as c:
            try:
                c.send(head(cgi_params(query="hello")) + fc.record(fc.STDIN, 1))
            except OSError:
                pass  # closed already
            c.sock.settimeout(5)
            try:
                assert c.sock.recv(65536) == b"", "answered without buffers"
            except ConnectionResetError:
                pass
    assert wait_for(lambda: "cannot map a worker's buffers (Cannot allocate memory)" in d.log())
    flag.unlink()
    for _ in range(20):
        assert fc.request(d.address, cgi_params(query="hello"), timeout=5).body == b"hello\n"
    threads = [threading.Thread(target=fc.request, args=(d.address, cgi_params(query="sleep=1"))) for _ in range(5)]
    for t in threads:
        t.start()
    assert wait_for(lambda: len(children_of(d.proc.pid)) == 5, 10)
    assert fc.request(d.address, cgi_params(query="hello"), timeout=10).body == b"hello\n"
    for t in threads:
        t.join()
    assert "workers can map their buffers again" in d.log()
