"""A script, whatever it does, ends with its request, stays inside its
cgroup, and cannot reach the daemon or another request's script."""

import os
import pathlib
import signal
import time

import fcgi_client as fc
import pytest
from conftest import CGI_DIR, Daemon, cgi_params, free_port, pid_alive, start_script, wait_for


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


def containment_args(request, cgroup):
    if cgroup == "cgroup":
        return ["--cgroup", request.getfixturevalue("cgroup_dir"), "--no-isolation"], "immune-cgroup"
    return ["--cgroup", "none"], "immune"


@pytest.mark.parametrize("cgroup", ["process-group", "cgroup"])
def test_a_script_that_ignores_term_and_escapes_is_killed_at_its_timeout(request, tmp_path, start_daemon,
                                                                         killed_after, cgroup):
    # It ignores SIGTERM and moves to the daemon's process group (and
    # cgroup, which --no-isolation lets it): neither the group nor the
    # cgroup reaches it, its pidfd does.  -t 2 and a grace of 1 s: the
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
    assert wait_for(lambda: not pid_alive(pid), 5)
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
    assert wait_for(lambda: not pid_alive(pid), 5)
    c.close()


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


def test_no_isolation_with_a_sandbox_is_refused(tmp_path):
    # --script-read and --script-write are the domain: asked for with
    # --no-isolation, the start stops rather than guess which was meant.
    d = Daemon(tmp_path, ["--no-isolation", "--script-write", str(tmp_path)]).start(wait=False)
    assert d.proc.wait(10) == 1
    d.log_file.close()
    assert "--no-isolation and --script-read or --script-write" in d.log()
