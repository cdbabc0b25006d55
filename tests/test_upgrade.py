"""The upgrade in place (SIGUSR2, systemctl reload): the new copy takes
over the sockets while the old one drains, under load and losing nothing;
a binary that cannot start leaves the old one serving; the new copy stays
what --user asked, becomes systemd's main process and adopts what the old
one kept."""

import http.client
import os
import pwd
import re
import shutil
import signal
import socket
import struct
import subprocess
import threading
import time

import fcgi_client as fc
import pytest
from conftest import (FCGIWRAP, HELLO_CGI, Daemon, Nginx, all_gone, cgi_params, children_of, pid_alive,
                      real_uid, status_json, wait_for)


class Copies(Daemon):
    """fcgiwrap started from a copy of the binary (so that the test can
    replace it on disk), followed through its upgrades by the log."""

    def __init__(self, tmp_path, args=(), env=None, exe_dir=None):
        self.exe = (exe_dir or tmp_path) / "bin" / "fcgiwrap"
        self.exe.parent.mkdir()
        self.exe.parent.chmod(0o755)
        shutil.copy(FCGIWRAP, self.exe)
        super().__init__(tmp_path, args, env=env, binary=str(self.exe))
        self.first = self.start().proc
        self.pids = [self.first.pid]

    @property
    def main(self):
        return self.pids[-1]

    def upgrade(self):
        """SIGUSR2 to the main copy; returns once the new one has taken
        over."""
        before = self.log().count("this one is the main process now")
        os.kill(self.main, signal.SIGUSR2)
        assert wait_for(lambda: self.log().count("this one is the main process now") > before, 30), self.log()
        new = int(re.findall(r"the new copy \(pid (\d+)\) serves", self.log())[-1])
        assert new not in self.pids
        self.pids.append(new)
        return new

    def stop(self):
        for pid in self.pids:
            if pid_alive(pid):
                os.kill(pid, signal.SIGTERM)
        assert all_gone(self.pids, 30), self.log()
        self.first.wait()
        self.log_file.close()


@pytest.fixture
def copies(tmp_path):
    started = []

    def start(args=(), env=None, exe_dir=None):
        c = Copies(tmp_path, args, env, exe_dir)
        started.append(c)
        return c

    yield start
    for c in started:
        c.stop()


def http_get(port, path):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def slow_upload(port, size, pieces):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.putrequest("POST", "/unbuffered/?count")
        conn.putheader("Content-Length", str(size))
        conn.endheaders()
        for i in range(pieces):
            conn.send(b"u" * (size // pieces + (size % pieces if i == pieces - 1 else 0)))
            time.sleep(0.1)  # the pace of a slow client, not a wait for an event
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def test_upgrade_under_load_loses_no_request(tmp_path, copies):
    d = copies(["-c", "64", "--shutdown-timeout", "60"])
    web = Nginx(tmp_path, "unix:" + d.address)
    done = threading.Event()
    failures, counts, lock = [], {"short": 0, "long": 0, "upload": 0}, threading.Lock()

    def loop(kind, call, expect):
        while not done.is_set():
            try:
                got = call()
            except Exception as e:  # a reset, a refused connection, a timeout
                got = repr(e)
            with lock:
                if got == expect:
                    counts[kind] += 1
                else:
                    failures.append((kind, got))

    size, pieces = 2 * 1024 * 1024, 20
    threads = [threading.Thread(target=loop, args=("short", lambda: http_get(web.port, "/hello"),
                                                   (200, b"Hello, world!\n"))) for _ in range(4)]
    threads += [threading.Thread(target=loop, args=("long", lambda: http_get(web.port, "/cgi-bin/behave.sh?sleep=3"),
                                                    (200, b"slept\n"))) for _ in range(3)]
    threads.append(threading.Thread(target=loop, args=("upload", lambda: slow_upload(web.port, size, pieces),
                                                       (200, b"%d\n" % size))))
    try:
        for t in threads:
            t.start()
        # Under way first: short ones answered, long ones and the upload
        # running.
        assert wait_for(lambda: counts["short"] >= 20, 30)
        for _ in range(5):
            served = counts["short"]
            d.upgrade()
            # The new copy serves before the next upgrade.
            assert wait_for(lambda: counts["short"] >= served + 20, 30), (counts, failures[:5])
        # Every long request and upload that was running completes.
        long_before, upload_before = counts["long"], counts["upload"]
        assert wait_for(lambda: counts["long"] >= long_before + 3 and counts["upload"] > upload_before, 60), \
            (counts, failures[:5])
    finally:
        done.set()
        for t in threads:
            t.join()
        web.stop()
    assert failures == []
    assert counts["long"] >= 6 and counts["upload"] >= 2, counts
    # The old copies are gone, the last one serves, the socket is there.
    assert all_gone(d.pids[:-1], 30), d.log()
    assert pid_alive(d.main) and os.path.exists(d.address)
    assert d.log().count("draining: ") == 5
    assert "upstream" not in web.error_log(), web.error_log()


def test_upgrade_reads_the_binary_again_and_survives_a_bad_one(tmp_path, copies):
    d = copies()
    good = d.exe.read_bytes()
    # A binary that cannot start: the old copy says why and keeps serving.
    d.exe.unlink()
    d.exe.write_text("#!/bin/sh\necho 'broken build' >&2\nexit 3\n")
    d.exe.chmod(0o755)
    os.kill(d.main, signal.SIGUSR2)
    assert wait_for(lambda: "exited with status 3 before serving" in d.log(), 30), d.log()
    assert "still serving" in d.log() and "broken build" in d.log()
    assert fc.request(d.address, cgi_params(query="hello")).status == 200
    # A binary that is not there at all.
    d.exe.unlink()
    os.kill(d.main, signal.SIGUSR2)
    assert wait_for(lambda: d.log().count("still serving") == 2, 30), d.log()
    assert fc.request(d.address, cgi_params(query="hello")).status == 200
    # The binary replaced on disk (as a package upgrade renames the new
    # one over it): the upgrade runs the new file.
    tmp = d.exe.with_name("fcgiwrap.new")
    tmp.write_bytes(good)
    tmp.chmod(0o755)
    os.rename(tmp, d.exe)
    old = d.main
    new = d.upgrade()
    assert os.stat("/proc/%d/exe" % new).st_ino == os.stat(d.exe).st_ino
    assert wait_for(lambda: not pid_alive(old), 30)
    assert fc.request(d.address, cgi_params(query="hello")).status == 200


def test_stop_during_an_upgrade_stops_the_new_copy_too(copies):
    # A new copy that takes its time to start (a wrapper that waits, then
    # runs the binary with the sockets it was given).
    d = copies()
    real = d.exe.with_name("fcgiwrap.real")
    shutil.copy(d.exe, real)
    marker = d.exe.with_name("started")
    d.exe.unlink()
    d.exe.write_text("#!/bin/sh\necho $$ > %s\nsleep 60\nexec %s \"$@\"\n" % (marker, real))
    d.exe.chmod(0o755)
    os.kill(d.main, signal.SIGUSR2)
    assert wait_for(lambda: marker.exists() and marker.read_text().endswith("\n"), 30)
    new = int(marker.read_text())
    # Stopped while the upgrade is under way: the new copy goes too, and
    # no daemon is left serving a socket whose file is gone.
    os.kill(d.main, signal.SIGTERM)
    assert d.first.wait(30) == 0
    assert wait_for(lambda: not pid_alive(new), 30)
    assert "the upgrade under way is abandoned" in d.log()
    assert not os.path.exists(d.address)


def test_draining_copy_finishes_its_requests_on_sigterm(copies):
    # systemctl stop right after a reload signals the old copy too: its
    # first SIGTERM does not end the requests it is finishing.
    d = copies()
    results = []
    slow = threading.Thread(target=lambda: results.append(fc.request(d.address, cgi_params(query="sleep=3"),
                                                                     timeout=60)))
    slow.start()
    old = d.main
    assert wait_for(lambda: children_of(old), 20)
    d.upgrade()
    os.kill(old, signal.SIGTERM)
    slow.join()
    assert results[0].status == 200 and results[0].body == b"slept\n"
    assert wait_for(lambda: not pid_alive(old), 30)


def test_upgrade_as_the_user_dropped_to(tmp_path, copies, nobodys_dir):
    # Started as root with --user: the new copy starts as nobody, already
    # what --user asks, and serves.
    d = copies(["--user", "nobody"], exe_dir=nobodys_dir)
    hello = nobodys_dir / "hello"
    shutil.copy(HELLO_CGI, hello)
    new = d.upgrade()
    assert real_uid(new) == pwd.getpwnam("nobody").pw_uid
    params = cgi_params(SCRIPT_FILENAME=str(hello), SCRIPT_NAME="/hello")
    assert fc.request(d.address, params).status == 200


def test_user_needs_root_unless_upgraded(nobodys_dir):
    # Started as nobody (not by an upgrade), --user nobody is refused as
    # before: its supplementary groups are whatever its starter left.
    nobody = pwd.getpwnam("nobody")

    def as_nobody():
        os.setgroups([])
        os.setgid(nobody.pw_gid)
        os.setuid(nobody.pw_uid)

    exe = nobodys_dir / "fcgiwrap"
    shutil.copy(FCGIWRAP, exe)
    p = subprocess.run([str(exe), "-s", "unix:%s/a" % nobodys_dir, "--user", "nobody"], preexec_fn=as_nobody,
                       capture_output=True, text=True, timeout=30)
    assert p.returncode != 0 and "need fcgiwrap to be started as root" in p.stderr


def test_upgrade_makes_the_new_copy_systemds_main_process(tmp_path, copies):
    # A stand-in for systemd's notification socket, with the sender of
    # each message.
    path = str(tmp_path / "notify")
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(path)
    notify.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
    notify.settimeout(30)
    messages = []

    def receive_until(predicate):
        while not predicate():
            msg, anc, _, _ = notify.recvmsg(4096, socket.CMSG_SPACE(12))
            pid = next(struct.unpack("iII", data[:12])[0] for level, kind, data in anc
                       if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS)
            messages.append((pid, msg.decode()))

    d = copies(env=dict(os.environ, NOTIFY_SOCKET=path))
    old = d.main
    receive_until(lambda: (old, "READY=1") in messages)
    new = d.upgrade()
    receive_until(lambda: (new, "READY=1") in messages)
    notify.close()
    senders = [pid for pid, _ in messages]
    # The old copy, systemd's main process, names the new one; the new one
    # says nothing before that (systemd would drop it, and log it), and
    # the old one nothing after, not even STOPPING=1.
    switch = messages.index((old, "MAINPID=%d" % new))
    assert new not in senders[:switch] and old not in senders[switch + 1:], messages
    assert all("STOPPING" not in m for _, m in messages), messages


def test_upgrade_hands_over_kept_leftovers(tmp_path, copies, cgroup_dir):
    # A process a script left behind in its cgroup under the old copy is
    # adopted by the new one: counted, and ended at its stop.
    d = copies(["--cgroup", cgroup_dir, "--status-path", "/status"])
    pidfile = tmp_path / "pids"
    r = fc.request(d.address, cgi_params(query="leave-behind", PIDFILE=str(pidfile)))
    assert r.status == 200
    left = int(pidfile.read_text().split()[1])
    old = d.main
    d.upgrade()
    assert wait_for(lambda: not pid_alive(old), 30)
    assert pid_alive(left)
    assert wait_for(lambda: "adopted cgroup %s/script-%d-" % (cgroup_dir, old) in d.log(), 30), d.log()
    figures = status_json(d)
    assert figures["leftover cgroups"] == 1
    os.kill(d.main, signal.SIGTERM)
    assert wait_for(lambda: not pid_alive(left), 30)
