"""The daemon's life: options, sockets, socket activation, stopping."""

import os
import signal
import socket
import subprocess
import threading
import time

import fcgi_client as fc
import pytest
from conftest import FCGIWRAP, Daemon, can_connect, cgi_params, children_of, free_port, wait_for


def run(*args, **kw):
    return subprocess.run([FCGIWRAP, "--allow-root"] + list(args), capture_output=True, text=True, timeout=10,
                          **kw)


def test_help_and_version():
    r = run("-h")
    assert r.returncode == 0
    for opt in ["-c", "-f", "-s", "-p", "-h"]:
        assert opt in r.stdout
    r = run("--version")
    assert r.returncode == 0 and r.stdout.startswith("fcgiwrap ")


def test_socket_url_help():
    r = run("-s", "help")
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
    r = run(*args, stdin=subprocess.DEVNULL)
    assert r.returncode == 1
    assert message in r.stderr


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
        r = run("-s", "unix:" + path)
        assert r.returncode == 1
        assert "already in use" in r.stderr
        assert os.path.exists(path)
    finally:
        s.close()


def test_regular_file_is_not_removed(tmp_path):
    path = tmp_path / "not-a-socket"
    path.write_text("precious")
    r = run("-s", "unix:" + str(path))
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


def test_socket_activation(tmp_path):
    a, b = str(tmp_path / "a.sock"), str(tmp_path / "b.sock")
    p = subprocess.Popen(["systemd-socket-activate", "-l", a, "-l", b, FCGIWRAP, "--allow-root"],
                         stderr=subprocess.PIPE)
    try:
        assert wait_for(lambda: can_connect(a) and can_connect(b))
        for path in (a, b):
            assert fc.request(path, cgi_params(query="hello")).body == b"hello\n"
        # Started by systemd: libsystemd was loaded (it is not otherwise).
        assert maps_libsystemd(p.pid)
    finally:
        p.terminate()
        assert p.wait(10) == 0


def maps_libsystemd(pid):
    with open("/proc/%d/maps" % pid) as f:
        return "libsystemd" in f.read()


def test_libsystemd_only_under_systemd(daemon):
    # Without LISTEN_FDS, NOTIFY_SOCKET or WATCHDOG_USEC the daemon never
    # loads libsystemd (and the libraries it pulls in: about 1 MiB of RSS).
    assert fc.request(daemon.address, cgi_params(query="hello")).body == b"hello\n"
    assert os.readlink("/proc/%d/exe" % daemon.proc.pid) == os.path.realpath(FCGIWRAP)
    assert not maps_libsystemd(daemon.proc.pid)


def test_socket_activation_ignores_s(tmp_path):
    a = str(tmp_path / "a.sock")
    other = str(tmp_path / "other.sock")
    p = subprocess.Popen(["systemd-socket-activate", "-l", a, FCGIWRAP, "--allow-root", "-s", "unix:" + other],
                         stderr=subprocess.PIPE)
    try:
        assert wait_for(lambda: can_connect(a))
        assert fc.request(a, cgi_params(query="hello")).body == b"hello\n"
        assert not os.path.exists(other)
    finally:
        p.terminate()
        p.wait(10)
