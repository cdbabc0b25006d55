"""How long: -t for the whole request, --inactivity-timeout for silence,
--kill-grace between SIGTERM and SIGKILL, --peer-timeout for a web server
that is slow, silent or trickling, whatever it sends to look busy."""

import signal
import socket
import time

import fcgi_client as fc
import pytest
from conftest import (all_gone, assert_still_serving, cgi_params, read_until_end, start_script, timed_request,
                      trickling_into_body, wait_for)

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


# ---- the web server's side: --peer-timeout ----


def test_idle_connection_is_closed(start_daemon):
    d = start_daemon(["--peer-timeout", "5"])
    s = socket.socket(socket.AF_UNIX)
    start = time.monotonic()
    s.connect(d.address)
    # It holds its own worker only: others are served meanwhile.
    r, took = timed_request(d.address, cgi_params(query="hello"))
    assert r.status == 200 and took < 3
    assert fc.is_closed(s, 10)
    assert 4.9 <= time.monotonic() - start < 12
    assert "no complete request within --peer-timeout" in d.log()


def test_trickling_connection(start_daemon):
    # A byte every 0.1 s keeps coming, but the head must be whole within
    # --peer-timeout of the connection.
    d = start_daemon(["--peer-timeout", "5"])
    head = fc.request_head(cgi_params(query="hello"))
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
            r, took = timed_request(d.address, cgi_params(query="hello"))
            assert r.status == 200 and took < 3
        time.sleep(0.1)
        if time.monotonic() - start > 15:
            break
    assert closed or fc.is_closed(s, 10)
    assert 4.9 <= time.monotonic() - start < 12
    s.close()


@pytest.mark.parametrize("what", ["other-id", "padding"])
def test_trickle_cannot_hold_a_body_past_peer_timeout(start_daemon, what):
    # Bytes that move no body byte do not count as progress: the request
    # ends after --peer-timeout, although bytes kept coming.
    d = start_daemon(["--peer-timeout", "1"])
    start = time.monotonic()
    with trickling_into_body(d, what) as c:
        assert fc.is_closed(c.sock, 10)
        assert time.monotonic() - start < 10  # the trickle goes on for 20 s
    assert wait_for(lambda: "the web server sent no body bytes for --peer-timeout" in d.log())
    assert_still_serving(d)


@pytest.mark.parametrize("what", ["other-id", "padding"])
def test_trickle_cannot_hold_a_body_past_timeout(start_daemon, what):
    d = start_daemon(["-t", "1"])
    start = time.monotonic()
    with trickling_into_body(d, what) as c:
        # The script ("count") has sent its header already: the response
        # ends where it is, the script ended by SIGTERM.
        r, _ = read_until_end(c)
        assert r.app_status == 128 + signal.SIGTERM
        assert time.monotonic() - start < 10  # the trickle goes on for 20 s
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
        c.send(fc.request_head(params))
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
        c.send(fc.request_head(cgi_params(script="nope.sh", method="POST", CONTENT_LENGTH="100")))
        try:
            for _ in range(40):
                c.send(fc.record(fc.STDIN, 1, b"x"))
                time.sleep(0.25)
        except OSError:
            pass
        assert fc.is_closed(c.sock, 10)
    assert time.monotonic() - start < 5  # the trickle goes on for 10 s
    assert wait_for(lambda: "the body did not end within the request's time (-t)" in d.log())


def test_peer_that_never_reads_replies(start_daemon):
    # Management replies wait for the peer under --peer-timeout, like any
    # output: a peer that sends and never reads is closed.
    d = start_daemon(["--peer-timeout", "1"])
    s = socket.socket(socket.AF_UNIX)
    s.connect(d.address)
    s.setblocking(False)
    one = fc.get_values(*["FCGI_MPXS_CONNS"] * 4)
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
