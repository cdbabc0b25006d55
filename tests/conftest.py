"""The one set of helpers of the black-box tests: the real daemon on a
temporary socket, what it is asked over FastCGI, what /proc says of its
processes, and real web servers on 127.0.0.1 in front of it.  The tests
are grouped by subject, a file each (README.md, "Building and testing",
lists them)."""

import contextlib
import json
import os
import pathlib
import pwd
import secrets
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid

import fcgi_client
import pytest

FCGIWRAP = os.environ.get("FCGIWRAP", os.path.abspath("fcgiwrap"))
TOP_SRCDIR = os.path.realpath(os.environ.get("TOP_SRCDIR", os.path.join(os.path.dirname(__file__), "..")))
CGI_DIR = os.path.join(TOP_SRCDIR, "tests", "cgi")
HELLO_CGI = os.environ.get("HELLO_CGI", os.path.abspath("tests/cgi/hello"))
HELLO_STATIC = os.environ.get("HELLO_STATIC", os.path.abspath("tests/cgi/hello-static"))
# An LD_PRELOAD shim that makes the daemon's buffer mappings fail on demand
# (tests/fault_mmap.c).
FAULT_MMAP = os.environ.get("FAULT_MMAP", os.path.abspath("tests/fault_mmap.so"))
# One that swaps two directory entries around each realpath() call
# (tests/fault_swap.c).
FAULT_SWAP = os.environ.get("FAULT_SWAP", os.path.abspath("tests/fault_swap.so"))
NGINX = os.environ.get("NGINX") or shutil.which("nginx") or "/usr/sbin/nginx"
PHP_CGI = "/usr/bin/php-cgi"
PERL = "/usr/bin/perl"
PYTHON = "/usr/bin/python3"

# The benchmark's free_port(): bench/bench.py does nothing when imported.
sys.path.insert(0, os.path.join(TOP_SRCDIR, "bench"))
from bench import free_port  # noqa: E402,F401


from testlib import wait_for  # noqa: E402,F401 (the tests take it from here)


def can_connect(address):
    try:
        if isinstance(address, tuple):
            s = socket.create_connection(address, timeout=1)
        else:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(address)
        s.close()
        return True
    except OSError:
        return False


def need(program):
    """Skips the test if program (an interpreter) is not installed."""
    if not os.access(program, os.X_OK):
        pytest.skip("%s is not installed (apt-get install %s)" % (
            program, {PHP_CGI: "php-cgi", PERL: "perl", PYTHON: "python3"}[program]))


def run_fcgiwrap(*args, timeout=10, **kw):
    """Runs fcgiwrap with args to its exit (a refusal, --help...)."""
    return subprocess.run([FCGIWRAP] + list(args), capture_output=True, text=True, timeout=timeout, **kw)


# ---- what /proc says ----

def all_pids():
    return [int(entry) for entry in os.listdir("/proc") if entry.isdigit()]


def proc_stat(pid):
    """The fields of /proc/PID/stat after the command name (the state
    first), or None once the pid is gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None


def proc_state(pid):
    fields = proc_stat(pid)
    return fields[0] if fields else None


def pid_alive(pid):
    return proc_state(pid) not in (None, "Z")


def children_of(pid):
    """(pid, state) of the processes whose parent is pid (zombies included)."""
    out = []
    for child in all_pids():
        fields = proc_stat(child)
        if fields and int(fields[1]) == pid:
            out.append((child, fields[0]))
    return out


# epoll_wait and epoll_pwait, as /proc/PID/task/TID/syscall numbers them.
EPOLL_WAIT_SYSCALLS = {"x86_64": {232, 281}, "aarch64": {22}}.get(os.uname().machine, set())


def serving_workers(pid):
    """The daemon's worker threads not waiting for a connection (in
    epoll_wait, src/workers.c): those serving one, or on their way to."""
    n = 0
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/syscall" % (pid, tid)) as f:
                call = f.read().split()[0]
        except (OSError, IndexError):
            continue
        if int(tid) != pid and not (call.isdigit() and int(call) in EPOLL_WAIT_SYSCALLS):
            n += 1
    return n


def real_uid(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            return int(next(line for line in f if line.startswith("Uid:")).split()[1])
    except (OSError, StopIteration):
        return None


def processes_of(uid):
    """Pids whose real user is uid (zombies included)."""
    return [pid for pid in all_pids() if real_uid(pid) == uid]


def all_gone(pids, timeout=5):
    """Waits until none of pids is alive (a zombie is gone)."""
    return wait_for(lambda: not any(pid_alive(p) for p in pids), timeout)


@pytest.fixture
def own_user():
    """A system user of the test's own (its pwd entry), removed after the
    test.  For anything counted per user, such as RLIMIT_NPROC, which counts
    every process of the user: a shared user like nobody would count
    whatever else runs as it on the machine."""
    name = "fcgiwrap-t-" + secrets.token_hex(4)
    subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name], check=True)
    user = pwd.getpwnam(name)
    try:
        yield user
    finally:
        # Only the test can have started processes as this user.
        for pid in processes_of(user.pw_uid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        wait_for(lambda: not processes_of(user.pw_uid), 5)
        subprocess.run(["userdel", name], check=True)


def cgroup2_mount():
    with open("/proc/mounts") as f:
        for line in f:
            dev, path, fstype = line.split()[:3]
            if fstype == "cgroup2":
                return path
    return None


@pytest.fixture
def cgroup_dir():
    """A cgroup v2 directory of the test's own, handed to --cgroup; what
    the daemon (or a script) left in it is killed and removed after."""
    mount = cgroup2_mount()
    if not mount:
        pytest.skip("no cgroup v2 hierarchy is mounted here (/proc/mounts)")
    path = os.path.join(mount, "fcgiwrap-test-" + uuid.uuid4().hex[:8])
    try:
        os.mkdir(path)
    except OSError as e:
        pytest.skip("cannot make a cgroup under %s: %s" % (mount, e))
    yield path
    # Whatever the daemon left: killed, then the directories removed.
    for sub in sorted(os.listdir(path)):
        sub_path = os.path.join(path, sub)
        if os.path.isdir(sub_path):
            with open(os.path.join(sub_path, "cgroup.kill"), "w") as f:
                f.write("1")
            wait_for(lambda: "populated 0" in open(os.path.join(sub_path, "cgroup.events")).read(), 5)
            # Cgroups made below it (by a script the test let do so) first.
            for below, _, _ in sorted(os.walk(sub_path), reverse=True):
                os.rmdir(below)
    os.rmdir(path)


class Daemon:
    def __init__(self, tmp_path, args=(), socket_url=None, env=None, name="fcgiwrap", user=None, binary=FCGIWRAP):
        self.tmp_path = tmp_path
        self.socket_path = str(tmp_path / (name + ".sock"))
        self.url = socket_url or "unix:" + self.socket_path
        if self.url.startswith("unix:"):
            self.address = self.url[5:]
        elif self.url.startswith("tcp:"):
            host, port = self.url[4:].rsplit(":", 1)
            self.address = (host, int(port))
        else:
            self.address = None
        self.log_path = tmp_path / (name + ".log")
        self.args = list(args)
        self.env = env
        # Started directly as this user (as systemd's User= does), not
        # dropped to it with --user.
        self.user = user
        self.binary = binary
        self.proc = None

    def start(self, wait=True, preexec_fn=None):
        self.log_file = open(self.log_path, "ab")
        # Tests run as root: a daemon started as root must be told so.
        extra = [] if "--user" in self.args else ["--allow-root"]
        binary, as_user = self.binary, {}
        if self.user:
            # The build tree may be closed to others (under /root): the
            # binary runs from a directory of the test's, which
            # self.public_path() also fills with what the user must reach.
            self.public = tempfile.mkdtemp(prefix="fcgiwrap-public.")
            os.chmod(self.public, 0o755)
            binary = self.public_path(self.binary)
            as_user = {"user": self.user, "group": pwd.getpwnam(self.user).pw_gid, "extra_groups": []}
        self.proc = subprocess.Popen([binary, "-s", self.url] + extra + self.args, stdout=self.log_file,
                                     stderr=subprocess.STDOUT, env=self.env, preexec_fn=preexec_fn, **as_user)
        if wait:
            # "serving" is logged once the daemon is fully started (it
            # accepts from listen() on, before its workers are up); waiting
            # for it, not connecting, also leaves no probe in the log.
            assert wait_for(lambda: "serving " in self.log() or self.proc.poll() is not None, 20), \
                "daemon did not start: " + self.log()
            assert self.proc.poll() is None, "daemon exited: " + self.log()
        return self

    def log(self):
        return self.log_path.read_text(errors="replace")

    def public_path(self, path):
        """A copy of path where the daemon's user (user=) can run it."""
        copy = os.path.join(self.public, os.path.basename(path))
        shutil.copy2(path, copy)
        return copy

    def stop(self, sig=signal.SIGTERM, timeout=15):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("daemon did not stop within %s s" % timeout)
        if self.proc:
            self.log_file.close()
        if self.user:
            shutil.rmtree(self.public, ignore_errors=True)
        return self.proc.returncode if self.proc else None


@pytest.fixture
def start_daemon(tmp_path):
    daemons = []

    def start(args=(), **kw):
        d = Daemon(tmp_path, args, name="fcgiwrap%d" % len(daemons), **kw).start()
        daemons.append(d)
        return d

    yield start
    for d in daemons:
        d.stop()


@pytest.fixture
def daemon(start_daemon):
    return start_daemon()


def start_refused(tmp_path, args, name="fcgiwrap"):
    """Starts the daemon with args, which must stop its start (exit
    status 1); returns its log."""
    d = Daemon(tmp_path, args, name=name).start(wait=False)
    try:
        assert d.proc.wait(10) == 1
    finally:
        d.stop()
    return d.log()


@pytest.fixture
def nobodys_dir():
    """A directory nobody owns, in a place nobody can reach (pytest's own
    temporary directories are root's alone)."""
    nobody = pwd.getpwnam("nobody")
    d = tempfile.mkdtemp(prefix="fcgiwrap-test.")
    os.chmod(d, 0o755)
    os.chown(d, nobody.pw_uid, nobody.pw_gid)
    yield pathlib.Path(d)
    shutil.rmtree(d)


def status(d, query=""):
    """The status page of a daemon started with --status-path /status,
    with query (json, openmetrics, full...)."""
    return fcgi_client.request(d.address, {"SCRIPT_NAME": "/status", "QUERY_STRING": query,
                                           "REQUEST_METHOD": "GET"})


def status_json(d):
    return json.loads(status(d, "json").body)


def example_daemon_opts(name):
    """The options of examples/NAME (an /etc/default/fcgiwrap), as systemd
    takes them in ExecStart=... $DAEMON_OPTS: split at spaces."""
    with open(os.path.join(TOP_SRCDIR, "examples", name)) as f:
        line = next(l for l in f if l.startswith("DAEMON_OPTS="))
    return shlex.split(line.split("=", 1)[1])[0].split()


def env_of(response):
    """The NAME=VALUE lines of a response (behave.sh's ?env) as a dict."""
    return dict(line.split("=", 1) for line in response.body.decode().splitlines() if "=" in line)


def cgi_params(script="behave.sh", query="", method="GET", **extra):
    params = {
        "GATEWAY_INTERFACE": "CGI/1.1",
        "REQUEST_METHOD": method,
        "SCRIPT_FILENAME": os.path.join(CGI_DIR, script),
        "SCRIPT_NAME": "/" + script,
        "QUERY_STRING": query,
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
    }
    params.update(extra)
    return params


def timed_request(address, params):
    """A request; returns the response and how long it took (s)."""
    start = time.monotonic()
    r = fcgi_client.request(address, params)
    return r, time.monotonic() - start


def start_script(d, tmp_path, query, script="behave.sh", request_id=1, body=b"", end=True, **params):
    """Starts script (in tests/cgi) with query and a PIDFILE it writes,
    ending with a newline, before it answers, and sends body (and its end
    unless end is False); returns the open client and the words of that
    file (pids as ints)."""
    pidfile = tmp_path / ("pids-%s-%s-%d" % (script, query, request_id))
    if pidfile.exists():
        pidfile.unlink()
    c = fcgi_client.Client(d.address, timeout=30)
    c.begin(cgi_params(script, query=query, PIDFILE=str(pidfile), **params), request_id=request_id)
    c.send_stdin(body, end=end)
    assert wait_for(lambda: pidfile.exists() and pidfile.read_text().endswith("\n"), 10), d.log()
    return c, [int(w) if w.isdigit() else w for w in pidfile.read_text().split()]


def read_until_end(c, request_id=1):
    """Reads records up to the END_REQUEST of request_id; returns the
    response and the other records seen on the way, in order."""
    resp, others = fcgi_client.Response(), []
    while True:
        rtype, rid, content = c.read_record()
        if rid == request_id and rtype in (fcgi_client.STDOUT, fcgi_client.STDERR, fcgi_client.END_REQUEST):
            if rtype == fcgi_client.STDOUT:
                resp.stdout += content
            elif rtype == fcgi_client.STDERR:
                resp.stderr += content
            else:
                resp.app_status, resp.protocol_status = struct.unpack(">IB3x", content)
                return resp, others
        else:
            others.append((rtype, rid, content))


def assert_still_serving(d):
    assert d.proc.poll() is None, "the daemon died: " + d.log()
    start = time.monotonic()
    r = fcgi_client.request(d.address, cgi_params(query="hello"))
    assert r.status == 200 and r.body == b"hello\n"
    assert time.monotonic() - start < 10


@contextlib.contextmanager
def trickling_into_body(d, what):
    """A POST whose body stalls, its connection kept busy (for up to 20 s)
    with bytes that do not move the body on: records of another request id
    (what="other-id") or the padding of a STDIN record (what="padding").
    Yields the client; stops the trickle and closes it after."""
    c = fcgi_client.Client(d.address, timeout=30)
    c.send(fcgi_client.request_head(cgi_params(query="count", method="POST", CONTENT_LENGTH="1000")))
    if what == "other-id":
        c.send(fcgi_client.record(fcgi_client.STDIN, 1, b"ab"))
        piece = fcgi_client.record(fcgi_client.STDIN, 2, b"x")
    else:
        # One STDIN record with 255 bytes of padding, sent a byte at a time.
        c.send(struct.pack(">BBHHBB", 1, fcgi_client.STDIN, 1, 2, 255, 0) + b"ab")
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
    try:
        yield c
    finally:
        stop.set()
        c.close()

def stop_process(p, sig):
    """Sends sig (a server's graceful stop), waits up to 10 s, then kills."""
    p.send_signal(sig)
    try:
        p.wait(10)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


class WebServer:
    """A web server on a free port of 127.0.0.1: a subclass writes its
    configuration into self.tmp and calls launch()."""
    stop_signal = signal.SIGTERM
    error_log_name = "error.log"

    def launch(self, argv, name):
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        assert wait_for(lambda: can_connect(("127.0.0.1", self.port)) or self.proc.poll() is not None)
        assert self.proc.poll() is None, name + " exited: " + self.error_log()
        self.url = "http://127.0.0.1:%d" % self.port

    def error_log(self):
        p = self.tmp / self.error_log_name
        return p.read_text(errors="replace") if p.exists() else ""

    def stop(self):
        stop_process(self.proc, self.stop_signal)

    # Where behave.sh?query streams its output, and its body: one
    # configuration does both for every URL (nginx's differs).
    def stream_path(self, query):
        return "/cgi-bin/behave.sh?" + query

    def unbuffered_path(self, query):
        return "/cgi-bin/behave.sh?" + query


# What every nginx of the tests runs with around its http.conf.
NGINX_CONF = """
daemon off; master_process off; user root; error_log {d}/error.log info; pid {d}/nginx.pid;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {d}/b; fastcgi_temp_path {d}/f; proxy_temp_path {d}/p;
    uwsgi_temp_path {d}/u; scgi_temp_path {d}/s;
    include {d}/http.conf;
}}
"""


class NginxServer(WebServer):
    """nginx with http (its http-level configuration: the server blocks,
    the first listening on 127.0.0.1:port) and files (name: text) beside
    it.  fastcgi_params is copied there too, so that relative includes
    work as in /etc/nginx."""
    stop_signal = signal.SIGQUIT

    def __init__(self, tmp_path, name, port, http, files=None):
        if not os.path.exists(NGINX):
            pytest.fail("nginx is required for the end-to-end tests (apt-get install nginx-light)")
        self.tmp = tmp_path / ("nginx-" + name)
        self.tmp.mkdir()
        self.port = port
        for fname, text in dict(files or {}, **{"http.conf": http}).items():
            (self.tmp / fname).write_text(text)
        shutil.copy("/etc/nginx/fastcgi_params", self.tmp / "fastcgi_params")
        (self.tmp / "nginx.conf").write_text(NGINX_CONF.format(d=self.tmp))
        self.launch([NGINX, "-p", str(self.tmp), "-c", str(self.tmp / "nginx.conf")], "nginx")


NGINX_SITE = """
client_max_body_size 0;
server {{
    listen 127.0.0.1:{port};
    root {root};
    location ~ ^/cgi-bin/(.+)$ {{
        include /etc/nginx/fastcgi_params;
        fastcgi_param SCRIPT_FILENAME {cgi_dir}/$1;
        fastcgi_pass {upstream};
    }}
    location /stream/ {{
        include /etc/nginx/fastcgi_params;
        fastcgi_param SCRIPT_FILENAME {cgi_dir}/behave.sh;
        fastcgi_buffering off;
        fastcgi_pass {upstream};
    }}
    location /unbuffered/ {{
        include /etc/nginx/fastcgi_params;
        fastcgi_param SCRIPT_FILENAME {cgi_dir}/behave.sh;
        fastcgi_request_buffering off;
        fastcgi_pass {upstream};
    }}
    location /hello {{
        include /etc/nginx/fastcgi_params;
        fastcgi_param SCRIPT_FILENAME {hello};
        fastcgi_pass {upstream};
    }}
    location /docroot/ {{
        # nginx sends every fastcgi_param, duplicates included, and
        # fcgiwrap (as 1.1.0) uses the first: overrides come first.
        fastcgi_param DOCUMENT_ROOT {cgi_dir};
        fastcgi_param SCRIPT_NAME /echo.sh$uri;
        include /etc/nginx/fastcgi_params;
        fastcgi_pass {upstream};
    }}
}}
"""


class Nginx(NginxServer):
    """nginx in front of upstream (a fastcgi_pass address) with the
    locations the tests use: /cgi-bin/, /stream/ (fastcgi_buffering off),
    /unbuffered/ (fastcgi_request_buffering off), /hello, /docroot/."""

    def __init__(self, tmp_path, upstream):
        port = free_port()
        super().__init__(tmp_path, "main", port, NGINX_SITE.format(port=port, root=tmp_path, cgi_dir=CGI_DIR,
                                                                   upstream=upstream, hello=HELLO_CGI))

    def stream_path(self, query):
        return "/stream/?" + query

    def unbuffered_path(self, query):
        return "/unbuffered/?" + query


@pytest.fixture
def nginx(tmp_path, daemon):
    n = Nginx(tmp_path, "unix:" + daemon.address)
    n.daemon = daemon
    n.name = "nginx"
    yield n
    n.stop()


LIGHTTPD = shutil.which("lighttpd") or "/usr/sbin/lighttpd"
APACHE = shutil.which("apache2") or "/usr/sbin/apache2"

# The examples are used as they are, but for their paths, with what only
# the tests need around them.
LIGHTTPD_CONF = """
server.document-root = "{root}"
server.bind = "127.0.0.1"
server.port = {port}
server.errorlog = "{tmp}/error.log"
server.pid-file = "{tmp}/lighttpd.pid"
server.max-request-size = 0
include "{tmp}/cgi-bin.conf"
fastcgi.server += ("/hello" => (( "socket" => "{sock}", "check-local" => "disable" )))
"""


class Lighttpd(WebServer):
    """lighttpd with mod_fastcgi and examples/lighttpd-cgi-bin.conf."""

    def __init__(self, tmp_path, socket_path):
        self.tmp = tmp_path / "lighttpd"
        (self.tmp / "root").mkdir(parents=True)
        os.symlink(HELLO_CGI, self.tmp / "root" / "hello")
        self.port = free_port()
        example = open(os.path.join(TOP_SRCDIR, "examples", "lighttpd-cgi-bin.conf")).read()
        (self.tmp / "cgi-bin.conf").write_text(example.replace("/usr/lib/cgi-bin/", CGI_DIR + "/")
                                               .replace("/run/fcgiwrap.socket", socket_path))
        conf = self.tmp / "lighttpd.conf"
        conf.write_text(LIGHTTPD_CONF.format(root=self.tmp / "root", port=self.port, tmp=self.tmp,
                                             sock=socket_path))
        self.launch([LIGHTTPD, "-D", "-f", str(conf)], "lighttpd")


APACHE_CONF = """
ServerRoot "{tmp}"
ServerName localhost
Listen 127.0.0.1:{port}
PidFile "{tmp}/apache.pid"
ErrorLog "{tmp}/error.log"
LogLevel warn
LoadModule mpm_event_module /usr/lib/apache2/modules/mod_mpm_event.so
LoadModule authz_core_module /usr/lib/apache2/modules/mod_authz_core.so
LoadModule setenvif_module /usr/lib/apache2/modules/mod_setenvif.so
LoadModule proxy_module /usr/lib/apache2/modules/mod_proxy.so
LoadModule proxy_fcgi_module /usr/lib/apache2/modules/mod_proxy_fcgi.so
User {user}
Group {group}
DocumentRoot "{tmp}"
Include "{tmp}/cgi-bin.conf"
SetEnvIf Request_URI "^/hello$" CGI_SCRIPT={hello}
ProxyPassMatch "^/hello$" "unix:{sock}|fcgi://localhost/" flushpackets=on
"""


class Apache(WebServer):
    """Apache with mod_proxy_fcgi and examples/apache-cgi-bin.conf.  Its
    workers run as www-data, so the daemon's socket is in a directory they
    can reach and belongs to them."""
    stop_signal = signal.SIGWINCH  # graceful stop

    def __init__(self, tmp_path, socket_path):
        self.tmp = tmp_path / "apache"
        self.tmp.mkdir()
        self.port = free_port()
        example = open(os.path.join(TOP_SRCDIR, "examples", "apache-cgi-bin.conf")).read()
        (self.tmp / "cgi-bin.conf").write_text(example.replace("/usr/lib/cgi-bin/", CGI_DIR + "/")
                                               .replace("/run/fcgiwrap.socket", socket_path))
        conf = self.tmp / "apache.conf"
        conf.write_text(APACHE_CONF.format(tmp=self.tmp, port=self.port, user="www-data", group="www-data",
                                           hello=HELLO_CGI, sock=socket_path))
        self.launch([APACHE, "-DFOREGROUND", "-f", str(conf)], "apache")


@pytest.fixture(params=["nginx", "lighttpd", "apache"])
def web(request, tmp_path, start_daemon):
    """The same end-to-end tests through each web server installed."""
    name = request.param
    if name == "nginx":
        d = start_daemon()
        server = Nginx(tmp_path, "unix:" + d.address)
    else:
        binary = LIGHTTPD if name == "lighttpd" else APACHE
        if not os.path.exists(binary):
            pytest.skip("%s is not installed (apt-get install %s)" % (name, "lighttpd" if name == "lighttpd"
                                                                     else "apache2"))
        if name == "lighttpd":
            d = start_daemon()
            server = Lighttpd(tmp_path, d.address)
        else:
            sock_dir = tempfile.mkdtemp(prefix="fcgiwrap-apache.")
            os.chmod(sock_dir, 0o755)
            request.addfinalizer(lambda: shutil.rmtree(sock_dir, ignore_errors=True))
            d = start_daemon(["--socket-owner", "www-data"], socket_url="unix:%s/fcgiwrap.sock" % sock_dir)
            server = Apache(tmp_path, d.address)
    server.daemon = d
    server.name = name
    yield server
    server.stop()


def nginx_with(tmp_path, site, name, http_extra=""):
    """nginx on a free port of 127.0.0.1 with site (server-level
    configuration, e.g. an example file) and http_extra (http-level)."""
    port = free_port()
    return NginxServer(tmp_path, name, port, http_extra + """
    server {
        listen 127.0.0.1:%d;
        include site.conf;
    }
""" % port, {"site.conf": site})


def curl(*args, timeout=60):
    """Runs curl; returns (http status, body bytes)."""
    out = subprocess.run(["curl", "-sS", "--max-time", str(timeout), "-o", "-", "-w", "\n%{http_code}"]
                         + list(args), capture_output=True, check=True, timeout=timeout + 5)
    body, _, code = out.stdout.rpartition(b"\n")
    return int(code), body
