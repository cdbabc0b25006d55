"""Lifecycle and fair share: --script-limit classes, upgrade on SIGUSR2,
--idle-exit, and the systemd units checked offline."""

import http.client
import json
import os
import pwd
import re
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import threading
import time

import fcgi_client as fc
import pytest
from conftest import (FCGIWRAP, HELLO_CGI, NGINX, Nginx, TOP_SRCDIR, cgi_params, children_of, pid_alive, status,
                      wait_for)
from test_hardening import nobodys_dir  # noqa: F401 (a fixture)

SLOW_SCRIPT = """#!/bin/sh
# Writes when it starts and ends, so that the test can tell the order and
# how many ran at once.
echo "start $QUERY_STRING" >> "$RUNLOG"
sleep "${SLEEP:-1.5}"
echo "end $QUERY_STRING" >> "$RUNLOG"
printf 'Content-Type: text/plain\\n\\nslow %s\\n' "$QUERY_STRING"
"""


def slow_class(tmp_path):
    d = tmp_path / "slow"
    d.mkdir()
    script = d / "slow.sh"
    script.write_text(SLOW_SCRIPT)
    script.chmod(0o755)
    return d, script


def class_figures(d):
    return json.loads(status(d, "json").body)["classes"][0]


def fast_request(d):
    params = cgi_params(SCRIPT_FILENAME=HELLO_CGI, SCRIPT_NAME="/hello")
    start = time.monotonic()
    r = fc.request(d.address, params)
    return r.status, time.monotonic() - start


def test_script_limit_keeps_other_scripts_served(tmp_path, start_daemon):
    cls, script = slow_class(tmp_path)
    runlog = tmp_path / "runlog"
    d = start_daemon(["-c", "4", "--script-limit", "%s=2" % cls, "--queue-timeout", "60", "--status-path",
                      "/status"])
    results = {}

    def slow(i):
        r = fc.request(d.address, cgi_params(SCRIPT_FILENAME=str(script), SCRIPT_NAME="/slow.sh", query=str(i),
                                             RUNLOG=str(runlog)), timeout=120)
        results[i] = (r.status, r.body)

    threads = []
    for i in range(8):
        t = threading.Thread(target=slow, args=(i,))
        t.start()
        threads.append(t)
        # The next one arrives once this one is running or queued, so
        # that the arrival order is known.
        assert wait_for(lambda: class_figures(d)["running"] + class_figures(d)["queued"] == i + 1, 30)
    figures = class_figures(d)
    assert figures["limit"] == 2 and figures["running"] == 2 and figures["queued"] >= 5, figures
    text = status(d).body.decode()
    assert "class %s/: limit 2, running 2, queued" % cls in text
    metrics = status(d, "openmetrics").body.decode()
    assert 'fcgiwrap_class_running{class="%s/"} 2\n' % cls in metrics
    assert 'fcgiwrap_class_limit{class="%s/"} 2\n' % cls in metrics
    # Scripts outside the class keep their slots while the class waits.
    slowest = 0.0
    while any(t.is_alive() for t in threads):
        s, took = fast_request(d)
        assert s == 200
        slowest = max(slowest, took)
        time.sleep(0.05)
    for t in threads:
        t.join()
    assert slowest < 0.5, "a script outside the class waited %.2f s" % slowest
    assert results == {i: (200, b"slow %d\n" % i) for i in range(8)}
    # Never more than 2 at once, started in the order they arrived.
    running, most, order = 0, 0, []
    for line in runlog.read_text().split("\n"):
        if line.startswith("start "):
            running += 1
            order.append(int(line.split()[1]))
        elif line.startswith("end "):
            running -= 1
        most = max(most, running)
    assert most == 2
    # Two by two (the first two end together, and so do the next: which
    # of a pair given its slots at once starts first is a race).
    assert [sorted(order[k:k + 2]) for k in range(0, 8, 2)] == [[k, k + 1] for k in range(0, 8, 2)], order


def test_script_limit_503_after_queue_timeout(tmp_path, start_daemon):
    cls, script = slow_class(tmp_path)
    runlog = tmp_path / "runlog"
    d = start_daemon(["-c", "4", "--script-limit", "%s=1" % script, "--queue-timeout", "0.5"])
    params = cgi_params(SCRIPT_FILENAME=str(script), SCRIPT_NAME="/slow.sh", query="1", RUNLOG=str(runlog),
                        SLEEP="5")
    held = threading.Thread(target=fc.request, args=(d.address, params))
    held.start()
    assert wait_for(lambda: runlog.exists() and "start 1" in runlog.read_text(), 20)
    start = time.monotonic()
    assert fc.request(d.address, dict(params, QUERY_STRING="2")).status == 503
    assert 0.4 <= time.monotonic() - start < 4
    # The -c slots are free for everything else.
    assert fast_request(d)[0] == 200
    held.join()
    assert wait_for(lambda: "all 1 slots of --script-limit %s stayed busy" % script in d.log())
    assert fc.request(d.address, dict(params, QUERY_STRING="3", SLEEP="0")).status == 200
    assert wait_for(lambda: "%s slots are available again" % script in d.log())


def test_script_limit_refuses_bad_values(tmp_path):
    for bad, why in (("/bin=0", "PATH=N with N from 1"), ("/bin", "PATH=N, not"), ("=3", "PATH=N, not"),
                     ("/bin=x", "PATH=N with N from 1"), ("/nonexistent/dir=2", "cannot resolve the path")):
        p = subprocess.run([FCGIWRAP, "-s", "unix:%s/s" % tmp_path, "--allow-root", "--script-limit", bad],
                           capture_output=True, text=True, timeout=30)
        assert p.returncode != 0 and why in p.stderr, (bad, p.stderr)


# ---- upgrade in place (SIGUSR2) ----


class Copies:
    """fcgiwrap started from a copy of the binary (so that the test can
    replace it on disk), followed through its upgrades by the log."""

    def __init__(self, tmp_path, args=(), env=None, exe_dir=None):
        self.exe = (exe_dir or tmp_path) / "bin" / "fcgiwrap"
        self.exe.parent.mkdir()
        self.exe.parent.chmod(0o755)
        shutil.copy(FCGIWRAP, self.exe)
        self.sock = str(tmp_path / "fcgiwrap.sock")
        self.log_path = tmp_path / "fcgiwrap.log"
        self.log_file = open(self.log_path, "ab")
        extra = [] if "--user" in args else ["--allow-root"]
        self.first = subprocess.Popen([str(self.exe), "-s", "unix:" + self.sock] + extra + list(args),
                                      stdout=self.log_file, stderr=subprocess.STDOUT, env=env)
        self.pids = [self.first.pid]
        assert wait_for(lambda: "serving " in self.log() or self.first.poll() is not None, 20), self.log()
        assert self.first.poll() is None, self.log()

    def log(self):
        return self.log_path.read_text(errors="replace")

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
        assert wait_for(lambda: not any(pid_alive(p) for p in self.pids), 30), self.log()
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
    if not os.path.exists(NGINX):
        pytest.fail("nginx is required for the end-to-end tests (apt-get install nginx-light)")
    d = copies(["-c", "64", "--shutdown-timeout", "60"])
    web = Nginx(tmp_path, "unix:" + d.sock)
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
    assert wait_for(lambda: not any(pid_alive(p) for p in d.pids[:-1]), 30), d.log()
    assert pid_alive(d.main) and os.path.exists(d.sock)
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
    assert fc.request(d.sock, cgi_params(query="hello")).status == 200
    # A binary that is not there at all.
    d.exe.unlink()
    os.kill(d.main, signal.SIGUSR2)
    assert wait_for(lambda: d.log().count("still serving") == 2, 30), d.log()
    assert fc.request(d.sock, cgi_params(query="hello")).status == 200
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
    assert fc.request(d.sock, cgi_params(query="hello")).status == 200


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
    assert not os.path.exists(d.sock)


def test_draining_copy_finishes_its_requests_on_sigterm(copies):
    # systemctl stop right after a reload signals the old copy too: its
    # first SIGTERM does not end the requests it is finishing.
    d = copies()
    results = []
    slow = threading.Thread(target=lambda: results.append(fc.request(d.sock, cgi_params(query="sleep=3"),
                                                                     timeout=60)))
    slow.start()
    old = d.main
    assert wait_for(lambda: children_of(old), 20)
    d.upgrade()
    os.kill(old, signal.SIGTERM)
    slow.join()
    assert results[0].status == 200 and results[0].body == b"slept\n"
    assert wait_for(lambda: not pid_alive(old), 30)


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


def test_upgrade_as_the_user_dropped_to(tmp_path, copies, nobodys_dir):
    # Started as root with --user: the new copy starts as nobody, already
    # what --user asks, and serves.
    d = copies(["--user", "nobody"], exe_dir=nobodys_dir)
    hello = nobodys_dir / "hello"
    shutil.copy(HELLO_CGI, hello)
    new = d.upgrade()
    with open("/proc/%d/status" % new) as f:
        uid = re.search(r"^Uid:\s+(\d+)", f.read(), re.M).group(1)
    assert int(uid) == pwd.getpwnam("nobody").pw_uid
    params = cgi_params(SCRIPT_FILENAME=str(hello), SCRIPT_NAME="/hello")
    assert fc.request(d.sock, params).status == 200


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
    r = fc.request(d.sock, cgi_params(query="leave-behind", PIDFILE=str(pidfile)))
    assert r.status == 200
    left = int(pidfile.read_text().split()[1])
    old = d.main
    d.upgrade()
    assert wait_for(lambda: not pid_alive(old), 30)
    assert pid_alive(left)
    assert wait_for(lambda: "adopted cgroup %s/script-%d-" % (cgroup_dir, old) in d.log(), 30), d.log()
    figures = json.loads(fc.request(d.sock, {"SCRIPT_NAME": "/status", "QUERY_STRING": "json",
                                             "REQUEST_METHOD": "GET"}).body)
    assert figures["leftover cgroups"] == 1
    os.kill(d.main, signal.SIGTERM)
    assert wait_for(lambda: not pid_alive(left), 30)


# ---- --idle-exit ----

# Starts a program as systemd's socket activation does: the socket on fd
# 3, LISTEN_FDS=1 and LISTEN_PID its own pid.
ACTIVATE = """
import os, sys
os.dup2(int(sys.argv[1]), 3)
os.environ["LISTEN_FDS"] = "1"
os.environ["LISTEN_PID"] = str(os.getpid())
os.execv(sys.argv[2], sys.argv[2:])
"""


class Activated:
    """fcgiwrap on a listening socket the test holds, as systemd holds a
    .socket unit's."""

    def __init__(self, tmp_path, args):
        self.sock_path = str(tmp_path / "activated.sock")
        self.listener = socket.socket(socket.AF_UNIX)
        self.listener.bind(self.sock_path)
        self.listener.listen(64)
        self.args = args
        self.log_path = tmp_path / "activated.log"
        self.proc = None
        self.env = None

    def start(self):
        fd = self.listener.fileno()
        before = self.log().count("serving ")
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(["/usr/bin/python3", "-c", ACTIVATE, str(fd), FCGIWRAP, "--allow-root"]
                                         + self.args, pass_fds=(fd,), stdout=log, stderr=subprocess.STDOUT,
                                         env=self.env)
        assert wait_for(lambda: self.log().count("serving ") > before or self.proc.poll() is not None, 20)
        assert self.proc.poll() is None, self.log()
        return self

    def log(self):
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def close(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(30)
        self.listener.close()


@pytest.fixture
def activated(tmp_path):
    made = []

    def make(args):
        a = Activated(tmp_path, args)
        made.append(a)
        return a

    yield make
    for a in made:
        a.close()


def test_idle_exit_then_next_connection_starts_it_again(activated):
    a = activated(["--idle-exit", "1"]).start()
    started = time.monotonic()
    assert fc.request(a.sock_path, cgi_params(query="hello")).status == 200
    answered = time.monotonic()
    assert a.proc.wait(30) == 0
    assert time.monotonic() - answered >= 0.9 and time.monotonic() - started < 30
    assert "idle for 1 s (--idle-exit): exiting" in a.log()
    # The socket stays (systemd's): a connection made now waits in its
    # backlog, and the next start serves it.
    client = fc.Client(a.sock_path, timeout=30)
    client.begin(cgi_params(query="hello"))
    client.send_stdin(b"")
    a.start()
    with client:
        assert client.read_response().status == 200
    assert os.path.exists(a.sock_path)


def test_idle_exit_waits_for_running_scripts_and_open_connections(activated):
    a = activated(["--idle-exit", "1"]).start()
    # A 3-second script: answered whole, so the daemon served it to the
    # end; it exits only an idle second after that.
    r = fc.request(a.sock_path, cgi_params(query="sleep=3"))
    assert r.status == 200 and r.body == b"slept\n"
    ended = time.monotonic()
    # A connection kept open between requests keeps it too.
    with fc.Client(a.sock_path, timeout=30) as c:
        assert c.request(cgi_params(query="hello"), keep_conn=True).status == 200
        assert a.proc.poll() is None
        kept = time.monotonic()
        assert c.request(cgi_params(query="hello"), keep_conn=True).status == 200
    assert a.proc.wait(30) == 0
    assert time.monotonic() - max(ended, kept) >= 0.9


def test_idle_exit_waits_for_kept_leftovers(tmp_path, activated, cgroup_dir):
    a = activated(["--idle-exit", "1", "--cgroup", cgroup_dir]).start()
    pidfile = tmp_path / "pids"
    assert fc.request(a.sock_path, cgi_params(query="leave-behind", PIDFILE=str(pidfile))).status == 200
    left = int(pidfile.read_text().split()[1])
    # Its leftover's cgroup holds it; once the process is gone, it exits.
    with pytest.raises(subprocess.TimeoutExpired):
        a.proc.wait(3)
    os.kill(left, signal.SIGKILL)
    assert a.proc.wait(30) == 0


def test_idle_exit_needs_inherited_sockets(tmp_path):
    p = subprocess.run([FCGIWRAP, "-s", "unix:%s/s" % tmp_path, "--allow-root", "--idle-exit", "5"],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode != 0 and "--idle-exit needs sockets passed by systemd" in p.stderr


# ---- the units ----

def test_systemd_units_verify(tmp_path):
    analyze = shutil.which("systemd-analyze")
    if not analyze:
        pytest.skip("systemd-analyze is not installed (package systemd)")
    # The units as installed, the binary being the one built; template
    # units as the instance for www-data.
    units = []
    for name in sorted(os.listdir(os.path.join(TOP_SRCDIR, "systemd"))):
        if not name.endswith(".in"):
            continue
        text = open(os.path.join(TOP_SRCDIR, "systemd", name)).read().replace("@sbindir@/fcgiwrap", FCGIWRAP)
        assert "@" not in text.replace("%i", "").replace("fcgiwrap@", ""), name
        (tmp_path / name[:-3]).write_text(text)
        units.append(name[:-3].replace("@.", "@www-data."))
    assert len(units) == 4
    p = subprocess.run([analyze, "verify", "--man=no"] + [str(tmp_path / u) for u in units], capture_output=True,
                       text=True, timeout=120, cwd=tmp_path)
    # A key systemd does not know, or a value it cannot parse, is only a
    # warning: none is accepted.
    assert p.returncode == 0 and p.stderr.strip() == "" and p.stdout.strip() == "", p.stdout + p.stderr


def test_units_reload_without_procps():
    # A minimal Debian has no procps, so no /bin/kill: each service's
    # ExecReload, as systemd hands it over ("$$" is a literal dollar, and
    # $MAINPID is in the environment), must signal with what is always there.
    for name in ("fcgiwrap.service.in", "fcgiwrap@.service.in"):
        text = open(os.path.join(TOP_SRCDIR, "systemd", name)).read()
        (line,) = [x for x in text.splitlines() if x.startswith("ExecReload=")]
        argv = [a.replace("$$", "$") for a in shlex.split(line[len("ExecReload="):])]
        assert os.path.basename(argv[0]) not in ("kill", "pkill", "pgrep"), line
        main = subprocess.Popen(["sleep", "60"])
        try:
            subprocess.run(argv, env={"MAINPID": str(main.pid), "PATH": "/usr/bin:/bin"}, check=True, timeout=10)
            assert main.wait(10) == -signal.SIGUSR2, name
        finally:
            main.kill()
            main.wait()

def test_scripts_do_not_get_the_service_managers_variables(activated):
    # Socket activation and notification are the daemon's business: a
    # script given NOTIFY_SOCKET or LISTEN_FDS could speak for the service.
    a = activated([])
    a.env = dict(os.environ, NOTIFY_SOCKET=str(a.sock_path) + ".notify", WATCHDOG_USEC="60000000")
    a.start()
    env = fc.request(a.sock_path, cgi_params(query="env")).body.decode()
    names = {line.split("=", 1)[0] for line in env.split("\n") if "=" in line}
    assert names & {"LISTEN_FDS", "LISTEN_PID", "NOTIFY_SOCKET", "WATCHDOG_USEC", "FCGIWRAP_UPGRADE_FD"} == set()
    assert "PATH" in names
