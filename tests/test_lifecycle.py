"""The daemon's life from start to stop: its options, the sockets it
listens on, the signal dispositions it inherits, and stopping (gracefully,
within --shutdown-timeout, at once on a second signal, whatever the
peers do)."""

import contextlib
import os
import signal
import socket
import subprocess
import threading
import time

import fcgi_client as fc
import pytest
from conftest import (FCGIWRAP, Daemon, all_gone, can_connect, cgi_params, children_of, free_port, run_fcgiwrap,
                      serving_workers, start_script, trickling_into_body, wait_for)


def test_help_and_version():
    r = run_fcgiwrap("--allow-root", "-h")
    assert r.returncode == 0
    for opt in ["-c", "-f", "-s", "-p", "-h"]:
        assert opt in r.stdout
    r = run_fcgiwrap("--allow-root", "--version")
    assert r.returncode == 0 and r.stdout.startswith("fcgiwrap ")


def test_socket_url_help():
    r = run_fcgiwrap("--allow-root", "-s", "help")
    assert r.returncode == 0
    assert "unix:/path/to/socket" in r.stdout and "tcp6:[ipv6_addr]:port" in r.stdout


@pytest.mark.parametrize("args,message", [
    (["-x"], "invalid option"),
    (["-c", "0"], "invalid -c value"),
    (["-c", "many"], "invalid -c value"),
    (["-s", "udp:1.2.3.4:5"], "unknown socket URL scheme"),
    (["-s", "tcp:1.2.3.4:0"], "bad port"),
    (["-s", "tcp:not-an-ip:80"], "bad IPv4 address"),
    (["-s", "unix:/nonexistent-dir/sock"], "cannot bind"),
    (["--log-level", "loud"], "invalid log level"),
    ([], "no socket to listen on"),
])
def test_bad_options_exit_1(args, message):
    r = run_fcgiwrap("--allow-root", *args, stdin=subprocess.DEVNULL)
    assert r.returncode == 1
    assert message in r.stderr


def test_inherited_signal_dispositions_are_reset(tmp_path):
    # Started with SIGCHLD and SIGTERM ignored (a parent may leave them
    # so): exit statuses are still seen, and SIGTERM still stops it.
    def ignore():
        signal.signal(signal.SIGCHLD, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR2})

    d = Daemon(tmp_path).start(wait=False, preexec_fn=ignore)
    assert wait_for(lambda: can_connect(d.address))
    r = fc.request(d.address, cgi_params(query="exit=3"))
    assert r.app_status == 3
    assert wait_for(lambda: "exited with status 3" in d.log())
    assert d.stop() == 0


# ---- sockets ----


def test_tcp_socket(tmp_path):
    port = free_port()
    d = Daemon(tmp_path, socket_url="tcp:127.0.0.1:%d" % port).start()
    try:
        r = fc.request(("127.0.0.1", port), cgi_params(query="hello"))
        assert r.body == b"hello\n"
    finally:
        assert d.stop() == 0


def test_tcp6_socket(tmp_path):
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    port = free_port()
    d = Daemon(tmp_path, socket_url="tcp6:[::1]:%d" % port)
    d.address = ("::1", port)
    d.start()
    try:
        r = fc.request(("::1", port), cgi_params(query="hello"))
        assert r.body == b"hello\n"
    finally:
        d.stop()


def test_stale_socket_is_replaced(tmp_path):
    d = Daemon(tmp_path)
    s = socket.socket(socket.AF_UNIX)
    s.bind(d.socket_path)
    s.close()  # the file stays, nobody listens: what a crash leaves
    d.start()
    try:
        assert fc.request(d.address, cgi_params(query="hello")).body == b"hello\n"
        assert "removing stale socket" in d.log()
    finally:
        d.stop()


def test_live_socket_is_not_stolen(tmp_path):
    path = str(tmp_path / "fcgiwrap0.sock")
    s = socket.socket(socket.AF_UNIX)
    s.bind(path)
    s.listen(1)
    try:
        r = run_fcgiwrap("--allow-root", "-s", "unix:" + path)
        assert r.returncode == 1
        assert "already in use" in r.stderr
        assert os.path.exists(path)
    finally:
        s.close()


def test_regular_file_is_not_removed(tmp_path):
    path = tmp_path / "not-a-socket"
    path.write_text("precious")
    r = run_fcgiwrap("--allow-root", "-s", "unix:" + str(path))
    assert r.returncode == 1
    assert path.read_text() == "precious"


def test_socket_on_fd_0(tmp_path):
    path = str(tmp_path / "fd0.sock")
    s = socket.socket(socket.AF_UNIX)
    s.bind(path)
    s.listen(16)
    p = subprocess.Popen([FCGIWRAP, "--allow-root"], stdin=s.fileno(), stderr=subprocess.PIPE)
    s.close()
    try:
        assert wait_for(lambda: can_connect(path))
        assert fc.request(path, cgi_params(query="hello")).body == b"hello\n"
        # The script must not see the listening socket on its stdin.
        r = fc.request(path, cgi_params(query="count", method="POST", CONTENT_LENGTH="3"), b"abc")
        assert r.body.strip() == b"3"
    finally:
        p.terminate()
        assert p.wait(10) == 0


# ---- stopping ----


def test_graceful_stop(daemon):
    result = {}

    def slow():
        result["r"] = fc.request(daemon.address, cgi_params(query="sleep=2"))

    t = threading.Thread(target=slow)
    t.start()
    # The request runs (its script started) before the stop.
    assert wait_for(lambda: children_of(daemon.proc.pid), 10)
    daemon.proc.send_signal(signal.SIGTERM)
    # Stops accepting at once and removes its socket file...
    assert wait_for(lambda: not os.path.exists(daemon.address), 10)
    assert not can_connect(daemon.address)
    # ...but the running request completes.
    t.join()
    assert result["r"].body == b"slept\n"
    assert daemon.proc.wait(10) == 0
    assert "stopped" in daemon.log()


def test_stop_closes_idle_kept_connections(daemon):
    with fc.Client(daemon.address) as c:
        c.request(cgi_params(query="hello"), keep_conn=True)
        daemon.proc.send_signal(signal.SIGINT)
        assert fc.is_closed(c.sock, 10)
    assert daemon.proc.wait(10) == 0


def socket_fds(pid):
    n = 0
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            n += os.readlink("/proc/%d/fd/%s" % (pid, fd)).startswith("socket:")
        except OSError:
            pass
    return n


def test_connection_accepted_before_a_stop_is_served(start_daemon):
    d = start_daemon(["--shutdown-timeout", "60"])
    before = socket_fds(d.proc.pid)
    talker, silent = fc.Client(d.address, timeout=30), fc.Client(d.address, timeout=30)
    # Both accepted (the daemon holds their sockets) before the stop.
    assert wait_for(lambda: socket_fds(d.proc.pid) >= before + 2, 20)
    d.proc.send_signal(signal.SIGTERM)
    assert wait_for(lambda: "stopping:" in d.log(), 20)
    with talker:
        assert talker.request(cgi_params(query="hello")).status == 200
    # The silent one has a moment (2 s), not --peer-timeout or the whole
    # --shutdown-timeout.
    start = time.monotonic()
    assert d.proc.wait(30) == 0
    assert time.monotonic() - start < 15
    assert fc.is_closed(silent.sock, 5)
    silent.close()
    assert "no request within 2000 ms" in d.log()


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


@pytest.mark.parametrize("second_signal", [False, True])
def test_trickle_cannot_hold_the_stop(start_daemon, second_signal):
    # After SIGTERM the daemon exits within --shutdown-timeout plus
    # --kill-grace plus a second, whatever the peer does; a second signal
    # ends requests at once.
    d = start_daemon(["--shutdown-timeout", "60" if second_signal else "1", "--kill-grace", "1"])
    with contextlib.ExitStack() as stack:
        for what in ("other-id", "padding"):
            stack.enter_context(trickling_into_body(d, what))
        # A peer that never reads what it is sent, and a head never finished.
        flood = stack.enter_context(fc.Client(d.address, timeout=30))
        flood.sock.setblocking(False)
        try:
            for _ in range(100000):
                flood.sock.send(fc.get_values("FCGI_MPXS_CONNS"))
        except BlockingIOError:
            pass
        partial = stack.enter_context(fc.Client(d.address, timeout=30))
        partial.send(fc.begin_record())
        # Every connection taken by a worker (four serving; an idle one may
        # wait for the next connection), the two trickled requests' scripts
        # running.
        assert wait_for(lambda: serving_workers(d.proc.pid) == 4 and len(children_of(d.proc.pid)) == 2, 10)
        start = time.monotonic()
        d.proc.send_signal(signal.SIGTERM)
        if second_signal:
            time.sleep(0.3)
            d.proc.send_signal(signal.SIGTERM)
        assert d.proc.wait(20) == 0
        # Against 20 s of trickle, a peer that never reads (--peer-timeout
        # 30) and 60 s of --shutdown-timeout.
        assert time.monotonic() - start < 10
