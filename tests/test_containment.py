"""Every process a script starts is contained (a cgroup per script) and
accounted for (CPU and memory per request), and can be sandboxed
(Landlock)."""

import json
import os
import re
import signal
import time

import fcgi_client as fc
import pytest
from conftest import (CGI_DIR, Daemon, all_gone, cgi_params, cgroup2_mount, pid_alive, start_refused, start_script,
                      status, status_json, wait_for)


def controllers(path):
    with open(os.path.join(path, "cgroup.controllers")) as f:
        return f.read().split()


@pytest.mark.parametrize("end", ["timeout", "close", "abort", "stop"])
def test_a_script_that_left_its_group_is_ended_with_it(tmp_path, start_daemon, cgroup_dir, end):
    # The script starts `setsid sleep 60` (a session of its own: no
    # process group reaches it) and hangs.  Whatever ends the request,
    # both are gone within a second.
    d = start_daemon(["--cgroup", cgroup_dir, "-t", "3" if end == "timeout" else "0",
                      "--shutdown-timeout", "0.5", "--kill-grace", "30"])
    c, pids = start_script(d, tmp_path, "setsid-hang")
    assert all(pid_alive(p) for p in pids)
    if end == "close":
        c.close()
    elif end == "abort":
        c.send(fc.record(fc.ABORT_REQUEST, 1))
    elif end == "stop":
        d.proc.send_signal(signal.SIGTERM)
    if end == "timeout":
        r = c.read_response()
        assert r.status == 504
    start = time.monotonic()
    assert all_gone(pids, 10), "left running"
    assert time.monotonic() - start < 1.5
    c.close()
    if end == "stop":
        assert d.proc.wait(10) == 0


def test_without_a_cgroup_the_same_script_escapes(tmp_path, start_daemon):
    # The process group alone cannot reach a process that left it: what
    # the cgroup adds.
    d = start_daemon(["-t", "2", "--kill-grace", "0.5", "--cgroup", "none"])
    c, (script, escaped) = start_script(d, tmp_path, "setsid-hang")
    try:
        with c:
            assert c.read_response().status == 504
        assert wait_for(lambda: not pid_alive(script), 5)
        assert pid_alive(escaped)
    finally:
        os.kill(escaped, signal.SIGKILL)
    assert "containment: process groups" in d.log()


def test_leftovers_kept_by_default_and_their_cgroup_removed(tmp_path, start_daemon, cgroup_dir):
    d = start_daemon(["--cgroup", cgroup_dir, "--status-path", "/status"])
    c, (script, left) = start_script(d, tmp_path, "leave-behind")
    with c:
        assert c.read_response().body == b"done\n"
    # It stays, counted, in the cgroup the script had.
    assert pid_alive(left)
    with open("/proc/%d/cgroup" % left) as f:
        cgroup = next(line for line in f if line.startswith("0::")).strip()[3:]
    figures = status_json(d)
    assert figures["leftover processes"] == 1 and figures["leftover cgroups"] == 1
    assert figures["containment"] == "cgroup " + cgroup_dir
    assert wait_for(lambda: "1 process(es) left running in the script's cgroup" in d.log())
    # Once it is gone, the daemon removes its cgroup.
    os.kill(left, signal.SIGKILL)
    leftover_dir = cgroup2_mount() + cgroup
    assert wait_for(lambda: not os.path.exists(leftover_dir), 10), leftover_dir
    assert status_json(d)["leftover cgroups"] == 0


def test_leftovers_killed_when_asked(tmp_path, start_daemon, cgroup_dir):
    d = start_daemon(["--cgroup", cgroup_dir, "--leftovers", "kill"])
    c, (script, left) = start_script(d, tmp_path, "leave-behind")
    with c:
        assert c.read_response().body == b"done\n"
    assert wait_for(lambda: not pid_alive(left), 5)


def test_limits_need_their_controllers(tmp_path, cgroup_dir):
    # A limit whose controller the subtree lacks stops the start, saying
    # which and how to get it; one it has is set on each script's cgroup.
    have = controllers(cgroup_dir)
    for option, value, controller in [("--script-memory-max", "64M", "memory"), ("--script-pids-max", "20", "pids"),
                                      ("--script-cpu-max", "50", "cpu")]:
        args, name = ["--cgroup", cgroup_dir, option, value], "limit-" + controller
        if controller in have:
            d = Daemon(tmp_path, args, name=name).start(wait=False)
            assert wait_for(lambda: "serving " in d.log(), 10), d.log()
            d.stop()
        else:
            log = start_refused(tmp_path, args, name=name)
            assert "%s needs the %s controller in %s" % (option, controller, cgroup_dir) in log
            assert "Delegate=%s" % controller in log


def test_limits_without_any_cgroup_refused(tmp_path):
    log = start_refused(tmp_path, ["--cgroup", "none", "--script-pids-max", "20"])
    assert "need one" in log


def needs(cgroup_dir, controller):
    if controller not in controllers(cgroup_dir):
        pytest.skip("the %s controller is not available in this machine's cgroup v2 hierarchy (%s offers: %s)"
                    % (controller, cgroup2_mount(), " ".join(controllers(cgroup_dir)) or "none"))


def test_memory_hog_is_502(start_daemon, cgroup_dir):
    needs(cgroup_dir, "memory")
    d = start_daemon(["--cgroup", cgroup_dir, "--script-memory-max", "64M"])
    r = fc.request(d.address, cgi_params(query="memory-hog"))
    assert r.status == 502
    assert wait_for(lambda: "killed by the OOM killer" in d.log())


def test_fork_bomb_is_502(start_daemon, cgroup_dir):
    needs(cgroup_dir, "pids")
    d = start_daemon(["--cgroup", cgroup_dir, "--script-pids-max", "20"])
    r = fc.request(d.address, cgi_params(query="fork-bomb"), timeout=60)
    assert r.status == 502
    assert wait_for(lambda: "--script-pids-max (20) reached" in d.log())


def test_cpu_max_throttles(tmp_path, start_daemon, cgroup_dir):
    # 10% of one CPU over 2 s of spinning is about 200 ms; unthrottled, even
    # a busy 2-core machine gives the spinner far more than 600.
    needs(cgroup_dir, "cpu")
    log = tmp_path / "access.log"
    d = start_daemon(["--cgroup", cgroup_dir, "--script-cpu-max", "10", "--access-log", str(log),
                      "--access-format", "%C"])
    r = fc.request(d.address, cgi_params(query="spin"), timeout=30)
    assert r.status == 200
    assert int(r.body) < 600, r.body
    assert wait_for(lambda: log.exists() and log.read_text().endswith("\n"))
    assert 100 <= int(log.read_text()) < 600, log.read_text()


@pytest.mark.parametrize("contained", [True, False])
def test_cpu_and_memory_in_the_access_log(tmp_path, start_daemon, cgroup_dir, contained):
    # About 200 ms of CPU and 50 MiB: from the cgroup, or from the exit's
    # rusage without one.
    log = tmp_path / "access.log"
    d = start_daemon(["--access-log", str(log), "--access-format", "%C %M", "--status-path", "/status",
                      "--cgroup", cgroup_dir if contained else "none"])
    r = fc.request(d.address, cgi_params(query="burn"))
    assert r.body == b"burnt\n"
    assert wait_for(lambda: log.exists() and log.read_text().endswith("\n"))
    cpu_ms, mem_kib = log.read_text().split()
    assert 180 <= int(cpu_ms) < 5000, cpu_ms
    if mem_kib != "-":
        assert 50 * 1024 <= int(mem_kib) < 400 * 1024, mem_kib
    else:
        assert contained  # only a cgroup without its memory controller may not know
    om = status(d, "openmetrics").body.decode()
    assert re.search(r'fcgiwrap_script_cpu_seconds_total\{script=".*behave\.sh"\} 0\.[1-9]', om) or \
        re.search(r'fcgiwrap_script_cpu_seconds_total\{script=".*behave\.sh"\} [1-9]', om), om
    assert 'fcgiwrap_script_duration_seconds_count{script="%s"} 1' % os.path.join(CGI_DIR, "behave.sh") in om
    assert om.endswith("# EOF\n")


def test_status_full_lists_running_scripts(tmp_path, start_daemon):
    d = start_daemon(["--status-path", "/status"])
    c, (script, child) = start_script(d, tmp_path, "group", REQUEST_URI="/cgi-bin/behave.sh?group")
    with c:
        page = json.loads(status(d, "json&full").body)
        running = [p for p in page["processes"] if p["pid"] == script]
        assert len(running) == 1, page["processes"]
        p = running[0]
        assert p["script"] == os.path.join(CGI_DIR, "behave.sh")
        assert (p["client"], p["method"], p["uri"]) == ("127.0.0.1", "GET", "/cgi-bin/behave.sh?group")
        assert p["state"] == "sending" and p["bytes out"] > 0 and p["elapsed ms"] >= 0
        text = status(d, "full").body.decode()
        assert "pid %d, sending, %s, 127.0.0.1 GET /cgi-bin/behave.sh?group" % (script, p["script"]) in text
    # Gone once it has ended.
    assert wait_for(lambda: not [p for p in json.loads(status(d, "json&full").body)["processes"]
                                 if p["pid"] == script])


@pytest.fixture
def sandbox_dirs(tmp_path):
    allowed, other = tmp_path / "allowed", tmp_path / "other"
    allowed.mkdir()
    other.mkdir()
    (other / "secret").write_text("secret\n")
    return allowed, other


def test_script_write_confines_writes(start_daemon, sandbox_dirs):
    allowed, other = sandbox_dirs
    d = start_daemon(["--script-write", str(allowed)])
    assert fc.request(d.address, cgi_params(query="write=%s/f" % allowed)).body == b"ok\n"
    assert (allowed / "f").read_text() == "written\n"
    assert fc.request(d.address, cgi_params(query="write=%s/f" % other)).body == b"refused\n"
    assert not (other / "f").exists()
    # Reads are not limited by --script-write alone.
    assert fc.request(d.address, cgi_params(query="read=%s/secret" % other)).body == b"secret\n"
    assert "sandbox: Landlock ABI" in d.log()


def test_script_read_confines_reads(start_daemon, sandbox_dirs):
    allowed, other = sandbox_dirs
    (allowed / "public").write_text("public\n")
    d = start_daemon(["--script-read", CGI_DIR, "--script-read", str(allowed)])
    assert fc.request(d.address, cgi_params(query="read=%s/public" % allowed)).body == b"public\n"
    assert fc.request(d.address, cgi_params(query="read=/etc/hostname")).status == 200
    assert fc.request(d.address, cgi_params(query="read=%s/secret" % other)).body == b"refused\n"


def test_no_landlock_no_start(tmp_path, sandbox_dirs):
    # Never unconfined when told to confine: a directory that cannot be
    # opened stops the start too.
    log = start_refused(tmp_path, ["--script-write", str(tmp_path / "missing")])
    assert "missing: No such file or directory" in log
