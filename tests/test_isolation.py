"""A script, whatever it does, ends with its request (its process group
ended by a close, an abort, a timeout, a stop; a pid never signalled once
it may be another's), inherits nothing of the daemon's but its stdio, and
cannot reach the daemon or another request's script."""

import os
import pathlib
import signal
import subprocess
import time

import fcgi_client as fc
import pytest
from conftest import (CGI_DIR, all_gone, assert_still_serving, cgi_params, children_of, free_port, pid_alive,
                      proc_state, read_until_end, start_refused, start_script, wait_for)


def attempts(body):
    """isolation.py's report: {attempt: "ok" or "refused ERRNO"}."""
    return dict(line.split(" ", 1) for line in body.decode().splitlines())


def signals_scoped(d):
    return "signals scoped" in d.log()


@pytest.fixture
def killed_after(request):
    """Pids SIGKILLed after the test, whatever it asserted."""
    pids = []
    yield pids
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


# ---- ended with its request, whatever ends it ----


def test_client_gone_kills_process_group(tmp_path, start_daemon):
    # A grace of 30 s: gone well before it means SIGTERM came at once.
    d = start_daemon(["--kill-grace", "30"])
    c, (script, background) = start_script(d, tmp_path, "group")
    rtype, _, content = c.read_record()
    assert rtype == fc.STDOUT
    assert pid_alive(script) and pid_alive(background)
    c.close()
    start = time.monotonic()
    assert all_gone([script, background], 10)
    assert time.monotonic() - start < 10
    assert wait_for(lambda: children_of(d.proc.pid) == [], 5)
    assert fc.request(d.address, cgi_params(query="hello")).status == 200


def test_sigkill_after_grace(tmp_path, daemon):
    # The script ignores SIGTERM: SIGKILL after the grace (3 s), not before.
    c, (pid,) = start_script(daemon, tmp_path, "ignore-term")
    start = time.monotonic()
    c.close()
    assert all_gone([pid], 10)
    assert 2.9 <= time.monotonic() - start < 10


def test_abort_request_record(tmp_path, start_daemon):
    d = start_daemon(["--kill-grace", "30"])
    c, (script, background) = start_script(d, tmp_path, "group")
    with c:
        c.send(fc.record(fc.ABORT_REQUEST, 1))
        assert all_gone([script, background], 10)
    assert fc.request(d.address, cgi_params(query="hello")).status == 200


@pytest.mark.parametrize("behind", [0, 150 * 1024])
def test_abort_during_the_body(tmp_path, start_daemon, behind):
    # FCGI_ABORT_REQUEST while the body streams: the script's group is
    # ended at once, even when the abort comes behind body bytes the
    # script has not taken (150 KiB: more than its pipe and the daemon's
    # body buffer hold, so the abort is found by looking ahead in the
    # bytes read from the socket).
    # A grace of 30 s: gone well before it means SIGTERM came at once.
    daemon = start_daemon(["--kill-grace", "30"])
    c, pids = start_script(daemon, tmp_path, "group", method="POST", body=b"x" * behind, end=False)
    with c:
        start = time.monotonic()
        c.send(fc.record(fc.ABORT_REQUEST, 1))
        assert all_gone(pids, 10)
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
    c, pids = start_script(daemon, tmp_path, "group", method="POST", body=b"y" * (160 * 1024), end=False)
    start = time.monotonic()
    c.close()
    assert all_gone(pids, 10)
    assert time.monotonic() - start < 10
    assert_still_serving(daemon)


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


def test_no_zombies(daemon):
    for q in ["hello", "exit=1", "kill-self", "no-output", "hello"]:
        fc.request(daemon.address, cgi_params(query=q))
    assert wait_for(lambda: children_of(daemon.proc.pid) == [], 5), children_of(daemon.proc.pid)


def containment_args(request, cgroup):
    if cgroup == "cgroup":
        return ["--cgroup", request.getfixturevalue("cgroup_dir"), "--no-isolation"], "immune-cgroup"
    return ["--cgroup", "none"], "immune"


@pytest.mark.parametrize("cgroup", ["process-group", "cgroup"])
def test_a_script_that_ignores_term_and_escapes_is_killed_at_its_timeout(request, tmp_path, start_daemon,
                                                                         killed_after, cgroup):
    # It ignores SIGTERM and moves to the daemon's process group (and
    # cgroup, which --no-isolation lets it): neither the group nor the
    # cgroup reaches it, its own pid does.  -t 2 and a grace of 1 s: the
    # 504 within 2 + 1 + 1 s, the slot (-c 1) free for the next request.
    args, query = containment_args(request, cgroup)
    d = start_daemon(args + ["-c", "1", "-t", "2", "--kill-grace", "1"])
    start = time.monotonic()
    c, (pid, *escape) = start_script(d, tmp_path, query, "isolation.py")
    killed_after.append(pid)
    if cgroup == "cgroup":
        assert escape == ["leave-cgroup:ok"]
    with c:
        assert c.read_response().status == 504
    assert time.monotonic() - start < 8
    assert all_gone([pid], 5)
    assert fc.request(d.address, cgi_params(query="hello")).body == b"hello\n"


@pytest.mark.parametrize("cgroup", ["process-group", "cgroup"])
def test_a_script_that_ignores_term_and_escapes_does_not_hold_the_stop(request, tmp_path, start_daemon,
                                                                       killed_after, cgroup):
    # Stopped with such a script running, the daemon is gone within
    # --shutdown-timeout + --kill-grace + 1 s (and the script with it).
    args, query = containment_args(request, cgroup)
    d = start_daemon(args + ["-t", "0", "--shutdown-timeout", "0.5", "--kill-grace", "1"])
    c, (pid, *_) = start_script(d, tmp_path, query, "isolation.py")
    killed_after.append(pid)
    start = time.monotonic()
    d.proc.send_signal(signal.SIGTERM)
    assert d.proc.wait(15) == 0
    assert time.monotonic() - start < 6
    assert all_gone([pid], 5)
    c.close()


def test_the_answer_ends_when_the_script_closes_its_output(tmp_path, start_daemon):
    # `exec >&- 2>&-; work`: the request ends at that EOF, as with 1.1.0,
    # and the work goes on to its end (5 s later), a leftover meanwhile.
    d = start_daemon(["--cgroup", "none"])
    done = tmp_path / "done"
    start = time.monotonic()
    r = fc.request(d.address, cgi_params(query="detach", PIDFILE=str(done)))
    assert r.body == b"answered\n"
    assert time.monotonic() - start < 3.5
    assert not done.exists()
    assert "runs on after its output ended" in d.log()
    assert wait_for(lambda: done.exists(), 15)


def test_no_cgroup_no_script(tmp_path, start_daemon, cgroup_dir):
    # A script whose cgroup cannot be made is not run uncontained: 503.
    d = start_daemon(["--cgroup", cgroup_dir])
    with open(os.path.join(cgroup_dir, "cgroup.max.descendants"), "w") as f:
        f.write("0")
    r = fc.request(d.address, cgi_params(query="hello"))
    assert r.status == 503
    assert wait_for(lambda: "not run uncontained" in d.log())
    with open(os.path.join(cgroup_dir, "cgroup.max.descendants"), "w") as f:
        f.write("max")
    assert fc.request(d.address, cgi_params(query="hello")).body == b"hello\n"


# ---- what it inherits, and what it can reach ----


def test_script_inherits_only_stdio(tmp_path, daemon):
    # Read until it holds: the background child may still be a shell
    # before its exec, or in ld.so with a library open as fd 3; an fd it
    # inherited would stay for good.
    c, (script, background) = start_script(daemon, tmp_path, "group")
    fds = "/proc/%d/fd" % background
    with c:
        assert wait_for(lambda: sorted(os.listdir(fds)) == ["0", "1", "2"], 5), os.listdir(fds)


def test_script_signals_are_clean(daemon):
    # The daemon ignores SIGPIPE and blocks the signals it reads with a
    # signalfd; a script must inherit neither.
    r = fc.request(daemon.address, cgi_params(query="signals"))
    fields = dict(line.split(":\t") for line in r.body.decode().splitlines())
    assert int(fields["SigBlk"], 16) == 0
    assert int(fields["SigIgn"], 16) == 0


def test_a_script_cannot_write_its_cgroup(tmp_path, start_daemon, cgroup_dir):
    # Scripts run as the user that owns the cgroups: only their Landlock
    # domain keeps them from leaving, unlimiting or freezing themselves.
    d = start_daemon(["--cgroup", cgroup_dir])
    body = fc.request(d.address, cgi_params("isolation.py", query="cgroup",
                                            PIDFILE=str(tmp_path / "written"))).body
    tried = attempts(body)
    assert tried.pop("write-tmp") == "ok"
    assert len(tried) >= 6 and all(v.startswith("refused") for v in tried.values()), tried
    # The same script, without the isolation, gets through: the test sees
    # what it should.
    d = start_daemon(["--cgroup", cgroup_dir, "--no-isolation"])
    tried = attempts(fc.request(d.address, cgi_params("isolation.py", query="cgroup",
                                                      PIDFILE=str(tmp_path / "written"))).body)
    assert tried["own-freeze"] == "ok"
    assert "not fully isolated: --no-isolation" in d.log()


def start_as(start_daemon, user, isolation):
    """The daemon started directly as user (as systemd's User= does), and
    isolation.py where that user can run it."""
    d = start_daemon(isolation, user=user.pw_name, socket_url="tcp:127.0.0.1:%d" % free_port())
    return d, d.public_path(os.path.join(CGI_DIR, "isolation.py"))


@pytest.mark.parametrize("isolation", ["default", "none"])
def test_a_script_cannot_reach_the_daemon(start_daemon, own_user, isolation):
    # Started as the user scripts run as, the daemon is not dumpable: its
    # fds, memory and environment are not the script's to take, with or
    # without the Landlock domain.
    d, script = start_as(start_daemon, own_user, ["--no-isolation"] if isolation == "none" else [])
    tried = attempts(fc.request(d.address, cgi_params(query="daemon", SCRIPT_FILENAME=script)).body)
    assert tried["getfd"].startswith("refused") and tried["environ"].startswith("refused"), tried
    if isolation == "default" and signals_scoped(d):
        assert tried["signal"] == "refused EPERM"


def test_scripts_cannot_reach_each_other(start_daemon, own_user, killed_after):
    # Two requests' scripts of one user (the daemon's): only their
    # Landlock domains part them.
    for isolation in ([], ["--no-isolation"]):
        d, script = start_as(start_daemon, own_user, isolation)
        shared = pathlib.Path(d.public) / "shared"
        shared.mkdir(mode=0o777)
        os.chmod(shared, 0o777)
        c, (peer,) = start_script(d, shared, "wait", "isolation.py", SCRIPT_FILENAME=script)
        killed_after.append(peer)
        tried = attempts(fc.request(d.address, cgi_params(query="peer=%d" % peer, SCRIPT_FILENAME=script)).body)
        c.close()
        if isolation:
            assert tried == {"getfd": "ok", "environ": "ok", "signal": "ok"}
            continue
        assert tried["getfd"].startswith("refused") and tried["environ"].startswith("refused"), tried
        if signals_scoped(d):
            assert tried["signal"] == "refused EPERM"


def test_no_isolation_with_a_sandbox_is_refused(tmp_path):
    # --script-read and --script-write are the domain: asked for with
    # --no-isolation, the start stops rather than guess which was meant.
    log = start_refused(tmp_path, ["--no-isolation", "--script-write", str(tmp_path)])
    assert "--no-isolation and --script-read or --script-write" in log
