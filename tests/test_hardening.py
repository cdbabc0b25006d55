"""What a security review found: each defect reproduced through a real
socket or a real nginx, and fixed."""

import os
import pathlib
import pwd
import resource
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time

import fcgi_client as fc
import pytest
from conftest import (CGI_DIR, Daemon, FCGIWRAP, HELLO_STATIC, can_connect, cgi_params, curl, env_of, nginx_with,
                      start_script, status_json, stop_nginx, wait_for)


def test_no_log_line_forged_through_the_uri(tmp_path, start_daemon):
    # nginx decodes %0A into SCRIPT_NAME and SCRIPT_FILENAME: without
    # escaping, the daemon's log gets a line of the client's making, with
    # a journal priority of its choosing, and so does the access log.
    access = tmp_path / "access.log"
    d = start_daemon(["--access-log", str(access)], env=dict(os.environ, JOURNAL_STREAM="8:1234"))
    # The usual cgi-bin location: $fastcgi_script_name is the decoded URI.
    site = """
        location /cgi-bin/ {
            include fastcgi_params;
            fastcgi_param SCRIPT_FILENAME %s$fastcgi_script_name;
            fastcgi_pass unix:%s;
        }""" % (CGI_DIR, d.address)
    p, port, _ = nginx_with(tmp_path, site, "inject")
    try:
        code, _ = curl("http://127.0.0.1:%d/cgi-bin/x%%0A%%3C0%%3Eforged%%5Cline%%0D%%1B%%7F" % port)
    finally:
        stop_nginx(p)
    assert code == 404
    assert wait_for(lambda: "script not found" in d.log())
    lines = d.log().splitlines()
    assert not any(line.startswith("<0>") or line.startswith("forged") for line in lines), lines
    assert any(line.startswith("<4>") and "/cgi-bin/x\\x0a<0>forged\\x5cline\\x0d\\x1b\\x7f: script not found"
               in line for line in lines), lines
    assert wait_for(lambda: access.exists() and access.read_text().count("\n") == 1)
    entry = access.read_text()
    assert "/x\\x0a<0>forged\\x5cline\\x0d\\x1b\\x7f" in entry, entry


def test_code_loading_variables_never_reach_a_script(daemon):
    unsafe = {"http_proxy": "http://evil:1", "LUA_INIT": "os.execute('id')", "PYTHONWARNINGS": "ignore::evil.X",
              "GIT_CONFIG_PARAMETERS": "'core.pager=id'", "GIT_CONFIG_COUNT": "1", "BASH_FUNC_x%%": "() { id; }",
              "PERLIO": ":via(Evil)", "NODE_OPTIONS": "--require /tmp/evil.js", "OPENSSL_CONF": "/tmp/evil.cnf"}
    r = fc.request(daemon.address, cgi_params(query="env", GIT_PROJECT_ROOT="/srv/git", **unsafe))
    env = env_of(r)
    assert not set(unsafe) & set(env), set(unsafe) & set(env)
    assert env["GIT_PROJECT_ROOT"] == "/srv/git"


def test_dotdot_refused_before_any_lookup(daemon):
    # 403 whether the file outside exists or not: the answer tells nothing.
    for name in ("/../tests/cgi/echo.sh", "/../no/such/file"):
        r = fc.request(daemon.address, cgi_params(SCRIPT_FILENAME="", DOCUMENT_ROOT=CGI_DIR, SCRIPT_NAME=name))
        assert r.status == 403, name
    assert "the path has a '..' segment" in daemon.log()


@pytest.mark.parametrize("args", [[], ["--allow-symlinks-out"]])
def test_script_name_needs_its_leading_slash(tmp_path, start_daemon, args):
    # DOCUMENT_ROOT + "2.cgi" would be DOCUMENT_ROOT's sibling "...root2.cgi".
    root = tmp_path / "root"
    root.mkdir()
    sibling = tmp_path / "root2.cgi"
    shutil.copy(os.path.join(CGI_DIR, "echo.sh"), sibling)
    os.chmod(sibling, 0o755)
    d = start_daemon(args)
    r = fc.request(d.address, cgi_params(SCRIPT_FILENAME="", DOCUMENT_ROOT=str(root), SCRIPT_NAME="2.cgi"))
    assert r.status == 403
    assert wait_for(lambda: "SCRIPT_NAME does not start with '/'" in d.log())


def test_inherited_signal_dispositions_are_reset(tmp_path):
    # Started with SIGCHLD and SIGTERM ignored (a parent may leave them
    # so): exit statuses are still seen, and SIGTERM still stops it.
    def ignore():
        signal.signal(signal.SIGCHLD, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR2})

    d = Daemon(tmp_path)
    d.log_file = open(d.log_path, "ab")
    d.proc = subprocess.Popen([FCGIWRAP, "-s", d.url, "--allow-root"], stdout=d.log_file, stderr=subprocess.STDOUT,
                              preexec_fn=ignore)
    assert wait_for(lambda: can_connect(d.address))
    r = fc.request(d.address, cgi_params(query="exit=3"))
    assert r.app_status == 3
    assert wait_for(lambda: "exited with status 3" in d.log())
    assert d.stop() == 0


def test_chroot_with_user_needs_no_passwd_inside(tmp_path, start_daemon):
    jail = tmp_path / "jail"
    jail.mkdir()
    os.chmod(tmp_path, 0o755)
    os.chmod(jail, 0o755)
    shutil.copy(HELLO_STATIC, jail / "hello")
    os.chmod(jail / "hello", 0o755)
    d = start_daemon(["--chroot", str(jail), "--user", "nobody"])
    r = fc.request(d.address, cgi_params(SCRIPT_FILENAME="/hello"))
    assert r.status == 200 and r.body == b"Hello, world!\n"


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


def test_access_log_belongs_to_the_user_and_reopens(nobodys_dir, start_daemon):
    nobody = pwd.getpwnam("nobody")
    logs = nobodys_dir
    access = logs / "access.log"
    d = start_daemon(["--user", "nobody", "--access-log", str(access)])
    assert os.stat(access).st_uid == nobody.pw_uid
    fc.request(d.address, cgi_params("missing.cgi"))
    assert wait_for(lambda: access.read_text().count("\n") == 1)
    # Reopened as nobody, in place, and after a rotation.
    d.proc.send_signal(signal.SIGHUP)
    assert wait_for(lambda: "access log reopened" in d.log())
    os.rename(access, logs / "access.log.1")
    d.proc.send_signal(signal.SIGHUP)
    assert wait_for(lambda: d.log().count("access log reopened") == 2)
    fc.request(d.address, cgi_params("missing.cgi"))
    assert wait_for(lambda: access.exists() and access.read_text().count("\n") == 1)
    assert (logs / "access.log.1").read_text().count("\n") == 1
    assert "cannot reopen" not in d.log()


def test_access_log_is_never_opened_through_a_symlink(nobodys_dir, tmp_path):
    # Started as root for --user nobody, the log's directory is nobody's:
    # what nobody puts there must not make root append to, or create, any
    # other file (nginx's CVE-2016-1247), nor hang the start (a FIFO).
    target = tmp_path / "ld.so.preload"
    target.write_text("precious\n")
    created = tmp_path / "created-by-root"
    cases = [("link", lambda p: os.symlink(target, p), "a symbolic link"),
             ("dangling", lambda p: os.symlink(created, p), "a symbolic link"),
             ("hardlink", lambda p: os.link(target, p), "has other hard links"),
             ("fifo", os.mkfifo, "not a regular file"),
             ("dir", os.mkdir, "not a regular file")]
    for name, make, why in cases:
        path = nobodys_dir / name
        make(path)
        d = Daemon(tmp_path, ["--user", "nobody", "--access-log", str(path)], name=name).start(wait=False)
        try:
            assert d.proc.wait(10) == 1
        finally:
            d.stop()
        assert "--access-log %s: %s" % (path, why) in d.log(), d.log()
    assert target.read_text() == "precious\n"
    assert not created.exists()


def test_sighup_never_reopens_the_access_log_through_a_symlink(tmp_path, start_daemon):
    target = tmp_path / "target"
    target.write_text("precious\n")
    access = tmp_path / "access.log"
    d = start_daemon(["--access-log", str(access)])
    os.rename(access, tmp_path / "access.log.1")
    os.symlink(target, access)
    d.proc.send_signal(signal.SIGHUP)
    assert wait_for(lambda: "cannot reopen the access log %s: a symbolic link" % access in d.log()), d.log()
    # Still written to the file it had.
    fc.request(d.address, cgi_params("missing.cgi"))
    assert wait_for(lambda: (tmp_path / "access.log.1").read_text().count("\n") == 1)
    assert target.read_text() == "precious\n"


def test_nproc_limit_warns_at_start(start_daemon):
    d = start_daemon(["--rlimit", "nproc=20", "--max-connections", "64"])
    assert wait_for(lambda: "--rlimit nproc=20 counts all processes and threads" in d.log())
    quiet = start_daemon(["--rlimit", "nproc=200", "--max-connections", "64"])
    assert "counts all processes" not in quiet.log()


def test_thread_shortage_is_logged_once(tmp_path, own_user):
    # As a user of its own with at most 3 tasks: the main thread and two
    # workers.  (RLIMIT_NPROC counts every process of the user: as nobody,
    # whatever else ran as nobody took the threads.)  A third connection
    # cannot get a thread: one log line for the episode, and the
    # connection is served once a worker frees.
    def few_tasks():
        resource.setrlimit(resource.RLIMIT_NPROC, (3, 3))

    d = Daemon(tmp_path, ["--user", own_user.pw_name])
    d.log_file = open(d.log_path, "ab")
    d.proc = subprocess.Popen([FCGIWRAP, "-s", d.url, "--user", own_user.pw_name, "--socket-mode", "0666",
                               "--peer-timeout", "30"], stdout=d.log_file, stderr=subprocess.STDOUT,
                              preexec_fn=few_tasks)
    held = []
    try:
        assert wait_for(lambda: can_connect(d.address))
        for _ in range(2):
            s = socket.socket(socket.AF_UNIX)
            s.connect(d.address)
            held.append(s)
        assert wait_for(lambda: len(os.listdir("/proc/%d/task" % d.proc.pid)) == 3)
        waiting = []
        for _ in range(2):
            c = fc.Client(d.address, timeout=10)
            c.send(head_of(cgi_params(SCRIPT_FILENAME="/nonexistent.cgi")) + fc.record(fc.STDIN, 1))
            waiting.append(c)
        assert wait_for(lambda: "cannot start a worker thread" in d.log())
        held.pop().close()
        for c in waiting:
            assert c.read_response().status == 404
            c.close()
        assert d.log().count("cannot start a worker thread") == 1
    finally:
        for s in held:
            s.close()
        d.stop()


def head_of(params):
    return fc.record(fc.BEGIN_REQUEST, 1, struct.pack(">HB5x", fc.RESPONDER, 0)) + \
        fc.stream_records(fc.PARAMS, 1, fc.encode_params(params))


def proc_state(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None


def test_timeout_never_signals_a_group_whose_leader_was_reaped(tmp_path, start_daemon):
    # The script exits; a child that left its group keeps its stdout, so
    # the request runs on until -t ends it.  The script's pid is its
    # group's id: were the script reaped, a new process could take that
    # pid as its own group's id, and the end of the request would kill
    # it.  The script's zombie is kept instead, so the pid cannot be taken.
    d = start_daemon(["-t", "3", "--kill-grace", "0.5"])
    c, (script, escaped) = start_script(d, tmp_path, "escape")
    victim = None
    try:
        assert wait_for(lambda: proc_state(script) in ("Z", None))
        assert proc_state(script) == "Z", "the script was reaped while its group could still be signalled"
        # Try to make a new group leader take the script's pid.
        for _ in range(50):
            try:
                with open("/proc/sys/kernel/ns_last_pid", "w") as f:
                    f.write(str(script - 1))
            except OSError:
                break  # cannot choose pids here: the zombie above is the proof
            victim = subprocess.Popen(["sleep", "300"], start_new_session=True)
            if victim.pid == script:
                break
            victim.kill()
            victim.wait()
            victim = None
        if victim is None:
            victim = subprocess.Popen(["sleep", "300"], start_new_session=True)
        with c:
            r = c.read_response()
        assert r.body == b"escaped\n"
        assert victim.poll() is None, "a process that took the script's pid was killed"
        assert wait_for(lambda: proc_state(script) is None)
    finally:
        if victim:
            victim.kill()
            victim.wait()
        os.kill(escaped, signal.SIGKILL)


def test_bad_header_block_answered_before_the_body_ends(start_daemon):
    # The script's output is wrong and it has exited: 502 at once, not
    # after the rest of a body the web server may take long to send.
    d = start_daemon(["--inactivity-timeout", "60", "--peer-timeout", "60"])
    with fc.Client(d.address, timeout=10) as c:
        start = time.monotonic()
        c.send(head_of(cgi_params(query="no-headers", method="POST", CONTENT_LENGTH="100000")))
        c.send_stdin(b"x" * 1000, end=False)
        r = c.read_response()
        assert r.status == 502
        assert time.monotonic() - start < 5
        # The body was not read to its end: the connection is closed.
        assert fc.is_closed(c.sock, 5)
    assert "bad CGI response" in d.log()


def post_in_background(c, body):
    def run():
        try:
            c.send_stdin(body)
        except OSError:
            pass  # answered and closed early
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def test_spool_limit(start_daemon):
    # answer-first writes 1 MiB before it reads its body: held until the
    # body ends, which is more than --spool-limit.
    d = start_daemon(["--spool-limit", "256K"])
    body = b"y" * (2 * 1024 * 1024)
    with fc.Client(d.address, timeout=20) as c:
        c.send(head_of(cgi_params(query="answer-first", method="POST", CONTENT_LENGTH=str(len(body)))))
        post_in_background(c, body)
        r = c.read_response()
    assert r.status == 502 and r.body == b"502 Bad Gateway\r\n"
    assert wait_for(lambda: "output held until the request body ends reached --spool-limit (262144 bytes)" in d.log())
    # Within the limit, all of it arrives.
    r = fc.request(d.address, cgi_params(query="answer-first", method="POST", CONTENT_LENGTH="10"), b"0123456789")
    assert r.status == 200 and r.body.endswith(b"\n10\n")


def test_spool_on_a_full_disk(tmp_path, start_daemon):
    spool = tmp_path / "spool"
    spool.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(spool)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root and mount rights)")
    try:
        d = start_daemon(["--spool-limit", "0"], env=dict(os.environ, TMPDIR=str(spool)))
        body = b"y" * (2 * 1024 * 1024)
        with fc.Client(d.address, timeout=20) as c:
            c.send(head_of(cgi_params(query="answer-first", method="POST", CONTENT_LENGTH=str(len(body)))))
            post_in_background(c, body)
            r = c.read_response()
        assert r.status == 503
        assert wait_for(lambda: "cannot hold output until the request body ends (in %s): No space left on device"
                        % spool in d.log())
        assert "stopped taking the response" not in d.log()
    finally:
        subprocess.run(["umount", "-l", str(spool)])


def test_script_checked_again_after_waiting_for_a_slot(tmp_path, start_daemon):
    # A symlink inside DOCUMENT_ROOT is swapped to a program outside it
    # while the request waits for a script slot: what would run is checked
    # again, and refused.
    root = tmp_path / "root"
    outside = tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    shutil.copy(os.path.join(CGI_DIR, "echo.sh"), root / "real.cgi")
    marker = tmp_path / "evil-ran"
    (outside / "evil.cgi").write_text("#!/bin/sh\ntouch %s\nprintf 'Content-Type: text/plain\\n\\nevil\\n'\n" % marker)
    for f in (root / "real.cgi", outside / "evil.cgi"):
        os.chmod(f, 0o755)
    os.symlink("real.cgi", root / "x.cgi")
    d = start_daemon(["-c", "1", "--queue-timeout", "20", "--status-path", "/status"])
    holder, _ = start_script(d, tmp_path, "group")
    waiting = fc.Client(d.address, timeout=30)
    waiting.send(head_of(cgi_params(SCRIPT_FILENAME="", DOCUMENT_ROOT=str(root), SCRIPT_NAME="/x.cgi"))
                 + fc.record(fc.STDIN, 1))
    assert wait_for(lambda: status_json(d)["queued requests"] == 1)
    os.symlink(str(outside / "evil.cgi"), root / "new-link")
    os.replace(root / "new-link", root / "x.cgi")
    holder.close()  # the slot frees
    r = waiting.read_response()
    waiting.close()
    assert r.status == 403
    assert not marker.exists()
    assert "resolves outside DOCUMENT_ROOT" in d.log()
