"""Under systemd: socket activation (and libsystemd loaded only then),
notifications and the watchdog, journal priorities, --idle-exit on
sockets systemd holds, what scripts never get of the service manager's,
and the units checked offline."""

import os
import shlex
import shutil
import signal
import socket
import subprocess
import time

import fcgi_client as fc
import pytest
from conftest import FCGIWRAP, TOP_SRCDIR, can_connect, cgi_params, env_of, run_fcgiwrap, wait_for


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


def test_notify_under_socket_activation(tmp_path):
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify"))
    notify.settimeout(5)
    a, b = str(tmp_path / "a.sock"), str(tmp_path / "b.sock")
    # systemd-socket-activate passes on only the variables given with -E,
    # and starts the daemon at the first connection.
    p = subprocess.Popen(["systemd-socket-activate", "-l", a, "-l", b,
                          "-E", "NOTIFY_SOCKET=%s" % (tmp_path / "notify"), "-E", "WATCHDOG_USEC=400000",
                          FCGIWRAP, "--allow-root"], stderr=subprocess.DEVNULL)
    messages = []

    def receive_until(text):
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                messages.append(notify.recv(4096).decode())
            except socket.timeout:
                break
            if any(text in m for m in messages):
                return True
        return False

    try:
        assert wait_for(lambda: can_connect(a))
        assert receive_until("READY=1")
        for path in (a, b):
            assert fc.request(path, cgi_params(query="hello")).status == 200
        assert receive_until("2 requests")
        assert receive_until("WATCHDOG=1")
        p.send_signal(signal.SIGTERM)
        assert receive_until("STOPPING=1")
        assert p.wait(10) == 0
    finally:
        if p.poll() is None:
            p.kill()
    statuses = [m for m in messages if m.startswith("STATUS=")]
    assert statuses and "connections" in statuses[0]


def test_journal_priorities(start_daemon):
    # Under systemd (JOURNAL_STREAM set), each line starts with its syslog
    # priority, so the journal keeps the levels.
    d = start_daemon(env=dict(os.environ, JOURNAL_STREAM="8:1234"))
    fc.request(d.address, cgi_params("missing.sh"))
    assert wait_for(lambda: "<4>" in d.log())
    lines = d.log().splitlines()
    assert lines[0].startswith("<6>serving ")
    assert any(line.startswith("<4>") and "script not found" in line for line in lines)
    plain = start_daemon()
    assert plain.log().startswith("serving ")


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
    p = run_fcgiwrap("-s", "unix:%s/s" % tmp_path, "--allow-root", "--idle-exit", "5", timeout=30)
    assert p.returncode != 0 and "--idle-exit needs sockets passed by systemd" in p.stderr


def test_scripts_do_not_get_the_service_managers_variables(activated):
    # Socket activation and notification are the daemon's business: a
    # script given NOTIFY_SOCKET or LISTEN_FDS could speak for the service.
    a = activated([])
    a.env = dict(os.environ, NOTIFY_SOCKET=str(a.sock_path) + ".notify", WATCHDOG_USEC="60000000")
    a.start()
    names = set(env_of(fc.request(a.sock_path, cgi_params(query="env"))))
    assert names & {"LISTEN_FDS", "LISTEN_PID", "NOTIFY_SOCKET", "WATCHDOG_USEC", "FCGIWRAP_UPGRADE_FD"} == set()
    assert "PATH" in names


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
