#!/usr/bin/python3
"""The checks of the guest tier, run inside a Debian 12 guest booted by
tests/guest/tier.py, as root, with systemd as PID 1 and a pure cgroup v2
hierarchy.  They run in this order, each on the state the ones before it
left (Debian's fcgiwrap 1.1.0 first, then the package built from the tree
installed over it, then removed and 1.1.0 installed again), and each
records whether it passed and what it saw in the results file the host
reads back.

    checks.py RESULTS.json [NAME...]

The second disk (/checks) carries this file, fcgi_client.py, testlib.py, the packages
(debs/) and the tree's build (tree/: fcgiwrap, tests/)."""

import glob
import hashlib
import json
import os
import subprocess
import sys
import threading
import time
import traceback
import urllib.error
import urllib.request

CHECKS = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, CHECKS)
import fcgi_client  # noqa: E402
import testlib  # noqa: E402
from testlib import processes  # noqa: E402

CGI_BIN = "/usr/lib/cgi-bin"
SCRIPTS = {
    # hello.sh is in the image, as an admin would have one.
    "sleep3.sh": "#!/bin/sh\nsleep 3\nprintf 'Content-Type: text/plain\\n\\nslept\\n'\n",
    "sink.sh": "#!/bin/sh\nn=$(wc -c)\nprintf 'Content-Type: text/plain\\n\\n%s\\n' \"$n\"\n",
    "hog.sh": "#!/bin/sh\nexec perl -e '$x = \"a\" x (200 * 1024 * 1024); "
              "print \"Content-Type: text/plain\\n\\nsurvived\\n\"'\n",
    # Forks until refused (at most 100 times), and says how many ran;
    # they sleep a moment, their output closed.
    "bomb.sh": "#!/bin/sh\nexec perl -e 'my $n = 0; for (1 .. 100) { my $p = fork; last unless defined $p; "
               "if (!$p) { close STDOUT; close STDERR; sleep 5; exit 0 } $n++ } "
               "print \"Content-Type: text/plain\\n\\nforked $n\\n\"'\n",
    # 3 s of wall-clock time spinning; says how much CPU it had (ms).
    "spin.sh": "#!/bin/sh\nexec perl -e '$t = time + 3; 1 while time < $t; ($u, $s) = times; "
               "printf \"Content-Type: text/plain\\n\\n%d\\n\", ($u + $s) * 1000'\n",
    "escape.sh": "#!/bin/sh\nsetsid sleep 1001 </dev/null >/dev/null 2>&1 &\nsleep 120\n",
    "leftover.sh": "#!/bin/sh\nsetsid sleep 1002 </dev/null >/dev/null 2>&1 &\n"
                   "printf 'Content-Type: text/plain\\n\\nleft one\\n'\n",
    "whoami.sh": "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\n%s\\n' \"$(id -un)\"\n",
}


def sh(*cmd, check=True, timeout=300, env=None):
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                       env=dict(os.environ, DEBIAN_FRONTEND="noninteractive", **(env or {})))
    if check and p.returncode != 0:
        raise AssertionError("%s: exit %d\n%s%s" % (" ".join(cmd), p.returncode, p.stdout, p.stderr))
    return p


def wait_for(predicate, timeout=60, interval=0.2):
    """testlib.wait_for() with bounds for an emulated guest."""
    return testlib.wait_for(predicate, timeout, interval)


def get(path, data=None, timeout=120):
    """An HTTP request through nginx: (status, body)."""
    req = urllib.request.Request("http://127.0.0.1" + path, data=data)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def prop(unit, name):
    return sh("systemctl", "show", "-P", name, unit).stdout.strip()


def main_pid(unit="fcgiwrap.service"):
    return int(prop(unit, "MainPID") or 0)


def active(unit):
    return prop(unit, "ActiveState") == "active"


def running(argv):
    return [p for p, _, a in processes() if a == argv]


def daemons():
    """Processes running an fcgiwrap binary (deleted ones included)."""
    return [p for p, exe, _ in processes() if os.path.basename(exe).startswith("fcgiwrap")]


def tree_hash(*roots):
    h = hashlib.sha256()
    for root in roots:
        for path in sorted(glob.glob(root + "/**", recursive=True)):
            if os.path.isfile(path) and not os.path.islink(path):
                h.update(path.encode() + open(path, "rb").read())
            elif os.path.islink(path):
                h.update(path.encode() + os.readlink(path).encode())
    return h.hexdigest()


def journal_since(since, unit="fcgiwrap.service"):
    """The unit's journal entries from since (journal_mark()) on, as dicts."""
    p = sh("journalctl", "-u", unit, "-o", "json", "--no-pager", "--since", since)
    return [json.loads(line) for line in p.stdout.splitlines() if line.strip()]


def journal_mark():
    """Now, as journalctl --since takes it (to the microsecond)."""
    return "@%.6f" % time.time()


def set_daemon_opts(opts):
    """/etc/default/fcgiwrap as an admin writes it; None removes it."""
    if opts is None:
        if os.path.exists("/etc/default/fcgiwrap"):
            os.unlink("/etc/default/fcgiwrap")
    else:
        with open("/etc/default/fcgiwrap", "w") as f:
            f.write('DAEMON_OPTS="%s"\n' % opts)
    sh("systemctl", "restart", "fcgiwrap.service")
    assert wait_for(lambda: active("fcgiwrap.service")), "fcgiwrap.service did not come back"


def hello_ok():
    status, body = get("/cgi-bin/hello.sh")
    assert status == 200 and body == b"hello from nginx/1.22.1\n", (status, body)


# ---- the checks, in order ----

def check_debian_1_1_0_serves(log):
    """Debian's fcgiwrap 1.1.0 and nginx including its example serve a
    cgi-bin script (the starting point of the upgrade)."""
    version = sh("dpkg-query", "-W", "-f=${Version}", "fcgiwrap").stdout
    assert version.startswith("1.1.0-"), version
    hello_ok()
    assert os.readlink("/proc/%d/exe" % main_pid()) == "/usr/sbin/fcgiwrap"
    log("Debian's %s served /cgi-bin/hello.sh" % version)


def check_upgrade_from_1_1_0(log):
    """apt install of the package built from the tree replaces 1.1.0 in
    place: the same request works, nothing of nginx or the units touched
    by hand, the init script and its links gone, the service restarted
    once onto the new binary."""
    deb = glob.glob(os.path.join(CHECKS, "debs", "fcgiwrap_2*.deb"))[0]
    nginx_before = tree_hash("/etc/nginx")
    hello_ok()  # 1.1.0 running, started by its socket
    old = main_pid()
    assert old
    p = sh("apt-get", "install", "-y", deb)
    log(p.stdout[-1500:])
    version = sh("dpkg-query", "-W", "-f=${Version}", "fcgiwrap").stdout
    assert version.startswith("2."), version
    assert wait_for(lambda: active("fcgiwrap.service") and main_pid() not in (0, old)), \
        "not restarted: MainPID %d, was %d" % (main_pid(), old)
    assert "fcgiwrap 2." in sh("/usr/sbin/fcgiwrap", "--version").stdout
    hello_ok()
    assert tree_hash("/etc/nginx") == nginx_before
    assert not os.path.exists("/etc/init.d/fcgiwrap")
    links = glob.glob("/etc/rc?.d/*fcgiwrap")
    assert not links, links
    log("%s installed over 1.1.0; MainPID %d -> %d" % (version, old, main_pid()))


def check_socket_activation(log):
    """With the service stopped, a request through the socket starts it;
    systemctl status shows the daemon's STATUS line; warnings reach the
    journal at their priority."""
    sh("systemctl", "stop", "fcgiwrap.service")
    assert wait_for(lambda: prop("fcgiwrap.service", "ActiveState") == "inactive")
    assert active("fcgiwrap.socket")
    cursor = journal_mark()
    hello_ok()
    assert active("fcgiwrap.service")
    status = sh("systemctl", "status", "--no-pager", "fcgiwrap.service", check=False).stdout
    assert wait_for(lambda: "requests" in prop("fcgiwrap.service", "StatusText")), status
    status = sh("systemctl", "status", "--no-pager", "fcgiwrap.service", check=False).stdout
    assert "Status: \"" in status, status
    with open(os.path.join(CGI_BIN, "noexec.sh"), "w") as f:
        f.write("#!/bin/sh\necho no\n")
    os.chmod(os.path.join(CGI_BIN, "noexec.sh"), 0o644)
    assert get("/cgi-bin/noexec.sh")[0] == 403

    def entries():
        return [(e.get("PRIORITY"), e.get("MESSAGE", "")) for e in journal_since(cursor)]
    assert wait_for(lambda: any("noexec.sh" in m for _, m in entries()), 20), entries()
    refused = [p for p, m in entries() if "noexec.sh" in m]
    serving = [p for p, m in entries() if m.startswith("serving ")]
    assert refused == ["4"], entries()
    assert serving == ["6"], entries()
    log([line for line in status.splitlines() if "Status:" in line][0].strip())


class Load:
    """A steady load through nginx while it runs: short requests, 3-second
    requests and a slow upload, each checked; and the service's state,
    sampled."""

    def __init__(self):
        self.stop = threading.Event()
        self.failures, self.states, self.lock = [], [], threading.Lock()
        self.counts = {"short": 0, "long": 0, "upload": 0}
        self.threads = [threading.Thread(target=t) for t in (self.short, self.short, self.long, self.long,
                                                              self.upload, self.watch)]

    def note(self, kind, ok, what):
        with self.lock:
            self.counts[kind] += 1
            if not ok:
                self.failures.append((kind, what))

    def fetch(self, kind, path, want):
        try:
            status, body = get(path)
            self.note(kind, status == 200 and body == want, (status, body[:100]))
        except OSError as e:
            self.note(kind, False, repr(e))

    def short(self):
        while not self.stop.is_set():
            self.fetch("short", "/cgi-bin/hello.sh", b"hello from nginx/1.22.1\n")

    def long(self):
        while not self.stop.is_set():
            self.fetch("long", "/cgi-bin/sleep3.sh", b"slept\n")

    def upload(self):
        size = 600 * 1024
        while not self.stop.is_set():
            p = subprocess.run(["curl", "-sS", "--limit-rate", "100k", "--data-binary", "@-",
                                "http://127.0.0.1/cgi-bin/sink.sh"], input=b"u" * size, capture_output=True,
                               timeout=120)
            self.note("upload", p.returncode == 0 and p.stdout == b"%d\n" % size,
                      (p.returncode, p.stdout[:100], p.stderr[:200]))

    def watch(self):
        while not self.stop.is_set():
            self.states.append(prop("fcgiwrap.service", "ActiveState"))
            time.sleep(0.2)

    def __enter__(self):
        for t in self.threads:
            t.start()
        time.sleep(3)
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join(180)

    def verdict(self):
        assert not self.failures, self.failures[:10]
        assert "failed" not in self.states
        assert prop("fcgiwrap.service", "Result") == "success"
        return "requests %s; states seen %s" % (self.counts, sorted(set(self.states)))


def check_reload_under_load(log):
    """systemctl reload five times under a steady load of short requests,
    3-second requests and a slow upload: no request fails, the main PID
    moves to each new copy, the service never fails."""
    pids = [main_pid()]
    with Load() as load:
        for _ in range(5):
            sh("systemctl", "reload", "fcgiwrap.service")
            assert wait_for(lambda: main_pid() not in pids and active("fcgiwrap.service")), \
                "MainPID stayed %d" % main_pid()
            pids.append(main_pid())
            time.sleep(2)
        time.sleep(4)  # the last copy serves the load too
    log("MainPIDs %s; %s" % (pids, load.verdict()))
    assert load.counts["short"] > 20 and load.counts["long"] >= 4 and load.counts["upload"] >= 1, load.counts


def check_upgrade_from_itself_reloads(log):
    """An upgrade from this package (here: the same one again) reloads the
    running service, never restarts it: under load, no request fails."""
    deb = glob.glob(os.path.join(CHECKS, "debs", "fcgiwrap_2*.deb"))[0]
    hello_ok()
    old = main_pid()
    cursor = journal_mark()
    with Load() as load:
        sh("apt-get", "install", "-y", "--reinstall", deb)
        assert wait_for(lambda: main_pid() not in (0, old) and active("fcgiwrap.service")), \
            "MainPID stayed %d" % main_pid()
        time.sleep(4)
    log("MainPID %d -> %d; %s" % (old, main_pid(), load.verdict()))
    said = [e.get("MESSAGE", "") for e in journal_since(cursor)]
    assert any(m.startswith("Reloaded ") for m in said), said
    assert not any(m.startswith("Stopping ") for m in said), said


# The cpu limit slows everything a script does (under software
# emulation, forks most): only its own check and those after it have it.
LIMITS = "-f --script-memory-max=50M --script-pids-max=40 -t 15"


def limits_on(extra=""):
    """The daemon under the shipped unit, with the limits of LIMITS (and
    extra)."""
    try:
        with open("/etc/default/fcgiwrap") as f:
            if (LIMITS + extra) in f.read() and active("fcgiwrap.service"):
                return
    except OSError:
        pass
    set_daemon_opts(LIMITS + extra)


def check_memory_limit(log):
    """--script-memory-max under the shipped unit (Delegate=yes): a script
    past it gets 502 and only it is killed, with a log line naming the
    limit; a request beside it is unharmed."""
    limits_on()
    pid = main_pid()
    cursor = journal_mark()
    beside = {}
    t = threading.Thread(target=lambda: beside.update(r=get("/cgi-bin/sleep3.sh")))
    t.start()
    status, body = get("/cgi-bin/hog.sh")
    t.join()
    assert status == 502, (status, body)
    assert beside["r"] == (200, b"slept\n"), beside
    assert wait_for(lambda: any("over --script-memory-max" in e.get("MESSAGE", "")
                                for e in journal_since(cursor)), 20)
    assert main_pid() == pid
    hello_ok()
    log([e["MESSAGE"] for e in journal_since(cursor) if "OOM" in e.get("MESSAGE", "")][0])


def check_pids_limit(log):
    """A fork bomb under --script-pids-max is held to it, with a log line
    naming the limit; the daemon keeps serving."""
    limits_on()
    pid = main_pid()
    cursor = journal_mark()
    status, body = get("/cgi-bin/bomb.sh")
    assert status == 200, (status, body)
    # Held to the limit: 39 beside it at most.
    forked = int(body.split()[-1])
    assert 0 < forked < 40, body
    assert wait_for(lambda: any("--script-pids-max (40) reached" in str(e.get("MESSAGE", ""))
                                for e in journal_since(cursor)), 20), \
        [e.get("MESSAGE") for e in journal_since(cursor)]
    assert main_pid() == pid
    hello_ok()
    log("%d of its 100 forks ran, the rest refused and logged" % forked)


def check_cpu_limit(log):
    """A script spinning 3 s under --script-cpu-max=20 gets about 20% of a
    CPU (600 ms)."""
    limits_on(" --script-cpu-max=20")
    status, body = get("/cgi-bin/spin.sh")
    assert status == 200, (status, body)
    ms = int(body)
    log("spun 3 s, had %d ms of CPU" % ms)
    assert 300 <= ms <= 1000, ms


def check_timeout_ends_setsid_child(log):
    """A script's setsid child is gone with its request's timeout (-t)."""
    limits_on()
    answer = {}
    t = threading.Thread(target=lambda: answer.update(r=get("/cgi-bin/escape.sh")))
    t.start()
    seen = wait_for(lambda: running(["sleep", "1001"]), 15)
    t.join()
    assert seen, "the setsid child never ran"
    status, body = answer["r"]
    assert status == 504, (status, body)
    assert wait_for(lambda: not running(["sleep", "1001"]), 15), "the setsid child outlived the request"
    log("504, and the setsid child is gone")


def check_stop_leaves_nothing(log):
    """systemctl stop leaves no process of the service, kept leftovers
    included."""
    limits_on()
    assert get("/cgi-bin/leftover.sh") == (200, b"left one\n")
    # It may still be starting (the script had 20% of a CPU).
    assert wait_for(lambda: running(["sleep", "1002"]), 15), "no leftover to see"
    cgroup = prop("fcgiwrap.service", "ControlGroup")
    sh("systemctl", "stop", "fcgiwrap.service")
    assert wait_for(lambda: prop("fcgiwrap.service", "ActiveState") == "inactive", 120)
    assert wait_for(lambda: not running(["sleep", "1002"]) and not daemons(), 10), (daemons(), running(["sleep", "1002"]))
    procs = os.path.join("/sys/fs/cgroup", cgroup.lstrip("/"), "cgroup.procs")
    assert not os.path.exists(procs) or not open(procs).read().strip()
    set_daemon_opts(None)
    log("stopped with a kept leftover: nothing left in %s" % cgroup)


def check_template_instance(log):
    """fcgiwrap@NAME.socket runs as user NAME, leaves after --idle-exit, and
    the next connection starts it again and is answered."""
    sh("useradd", "--system", "--no-create-home", "alice", check=False)
    with open("/etc/default/fcgiwrap@alice", "w") as f:
        f.write('DAEMON_OPTS="--idle-exit=3"\n')
    sh("systemctl", "start", "fcgiwrap@alice.socket")
    params = {"GATEWAY_INTERFACE": "CGI/1.1", "REQUEST_METHOD": "GET",
              "SCRIPT_FILENAME": os.path.join(CGI_BIN, "whoami.sh"), "SCRIPT_NAME": "/whoami.sh"}
    r = fcgi_client.request("/run/fcgiwrap/alice.sock", params, timeout=60)
    assert r.body == b"alice\n", r.stdout
    pid = main_pid("fcgiwrap@alice.service")
    with open("/proc/%d/status" % pid) as f:
        uid = next(line for line in f if line.startswith("Uid:")).split()[1]
    assert int(uid) == int(sh("id", "-u", "alice").stdout)
    assert wait_for(lambda: prop("fcgiwrap@alice.service", "ActiveState") == "inactive", 60), \
        "still running after --idle-exit"
    r = fcgi_client.request("/run/fcgiwrap/alice.sock", params, timeout=60)
    assert r.body == b"alice\n", r.stdout
    assert active("fcgiwrap@alice.service")
    sh("systemctl", "stop", "fcgiwrap@alice.socket", "fcgiwrap@alice.service")
    log("answered as alice (uid %s), left when idle, started again" % uid)


def check_watchdog(log):
    """With WatchdogSec= the service stays up; stopped by SIGSTOP, systemd
    restarts it."""
    os.makedirs("/etc/systemd/system/fcgiwrap.service.d", exist_ok=True)
    dropin = "/etc/systemd/system/fcgiwrap.service.d/watchdog.conf"
    with open(dropin, "w") as f:
        f.write("[Service]\nWatchdogSec=3\n")
    try:
        sh("systemctl", "daemon-reload")
        sh("systemctl", "restart", "fcgiwrap.service")
        pid = main_pid()
        restarts = int(prop("fcgiwrap.service", "NRestarts"))
        time.sleep(10)
        assert main_pid() == pid and active("fcgiwrap.service"), "the watchdog ended a healthy daemon"
        hello_ok()
        os.kill(pid, 19)  # SIGSTOP
        assert wait_for(lambda: main_pid() not in (0, pid) and active("fcgiwrap.service"), 120), \
            "not restarted: %s" % sh("systemctl", "status", "--no-pager", "fcgiwrap.service", check=False).stdout
        assert int(prop("fcgiwrap.service", "NRestarts")) == restarts + 1
        hello_ok()
        log("up 10 s under WatchdogSec=3; after SIGSTOP restarted, MainPID %d -> %d" % (pid, main_pid()))
    finally:
        os.unlink(dropin)
        sh("systemctl", "daemon-reload")
        sh("systemctl", "restart", "fcgiwrap.service")


def check_tree_cgroup_tests(log):
    """The tree's containment tests that skip where cgroup v2 offers no
    memory, pids or cpu controller run here, and pass."""
    tree = os.path.join(CHECKS, "tree")
    env = {"FCGIWRAP": os.path.join(tree, "fcgiwrap"), "HELLO_CGI": os.path.join(tree, "tests", "cgi", "hello"),
           "HELLO_STATIC": os.path.join(tree, "tests", "cgi", "hello-static"),
           "FAULT_MMAP": os.path.join(tree, "tests", "fault_mmap.so"), "TOP_SRCDIR": tree,
           "PYTHONDONTWRITEBYTECODE": "1"}
    p = subprocess.run(["python3", "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rs", "test_containment.py"],
                       cwd=os.path.join(tree, "tests"), capture_output=True, text=True, timeout=900,
                       env=dict(os.environ, **env))
    out = p.stdout + p.stderr
    log(out[-3000:])
    assert p.returncode == 0, out[-3000:]
    assert "controller is not available" not in out, out[-3000:]
    assert "SKIPPED" not in out, out[-3000:]


def check_remove_and_reinstall_1_1_0(log):
    """apt remove stops the service and leaves no process; Debian's 1.1.0
    installs again and serves."""
    sh("apt-get", "remove", "-y", "fcgiwrap")
    assert prop("fcgiwrap.service", "ActiveState") in ("inactive", ""), prop("fcgiwrap.service", "ActiveState")
    assert prop("fcgiwrap.socket", "ActiveState") in ("inactive", ""), prop("fcgiwrap.socket", "ActiveState")
    assert wait_for(lambda: not daemons(), 30), daemons()
    old = glob.glob(os.path.join(CHECKS, "debs", "fcgiwrap_1.1.0*.deb"))[0]
    sh("apt-get", "install", "-y", old)
    assert sh("dpkg-query", "-W", "-f=${Version}", "fcgiwrap").stdout.startswith("1.1.0-")
    hello_ok()
    log("removed: nothing left; 1.1.0 installed again and serving")


ORDER = [check_debian_1_1_0_serves, check_upgrade_from_1_1_0, check_socket_activation, check_reload_under_load,
         check_upgrade_from_itself_reloads, check_memory_limit, check_pids_limit, check_cpu_limit,
         check_timeout_ends_setsid_child, check_stop_leaves_nothing, check_template_instance, check_watchdog,
         check_tree_cgroup_tests, check_remove_and_reinstall_1_1_0]


def main():
    out = sys.argv[1]
    wanted = sys.argv[2:]
    for name, text in SCRIPTS.items():
        path = os.path.join(CGI_BIN, name)
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, 0o755)
    results = {}
    for check in ORDER:
        name = check.__name__[len("check_"):]
        if wanted and name not in wanted:
            continue
        lines = []
        start = time.monotonic()
        print("guest: %s ..." % name, flush=True)
        try:
            check(lambda what: lines.append(str(what)))
            ok, error = True, ""
        except Exception:
            ok, error = False, traceback.format_exc()
            journal = sh("journalctl", "--no-pager", "-n", "60", "-u", "fcgiwrap*", "-u", "nginx.service", check=False)
            error += "\nthe journal's end:\n" + journal.stdout + journal.stderr
        results[name] = {"ok": ok, "seconds": round(time.monotonic() - start, 1), "log": "\n".join(lines),
                         "error": error}
        print("guest: %s %s (%.1f s)" % (name, "passed" if ok else "FAILED", results[name]["seconds"]), flush=True)
        if error:
            print(error, flush=True)
        with open(out, "w") as f:
            json.dump(results, f, indent=1)
            f.flush()
            os.fsync(f.fileno())


if __name__ == "__main__":
    main()
