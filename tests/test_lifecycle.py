"""Lifecycle and fair share: --script-limit classes, upgrade on SIGUSR2,
--idle-exit, and the systemd units checked offline."""

import json
import os
import threading
import time

import fcgi_client as fc
from conftest import HELLO_CGI, cgi_params, wait_for

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


def status(d, query=""):
    return fc.request(d.address, {"SCRIPT_NAME": "/status", "QUERY_STRING": query, "REQUEST_METHOD": "GET"})


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
    assert order[2:] == list(range(2, 8)) and sorted(order[:2]) == [0, 1]


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


def test_script_limit_refuses_bad_values(tmp_path, start_daemon):
    import subprocess
    from conftest import FCGIWRAP
    for bad in ("/bin=0", "/bin", "=3", "/bin=x", "/nonexistent/dir=2"):
        p = subprocess.run([FCGIWRAP, "-s", "unix:%s/s" % tmp_path, "--allow-root", "--script-limit", bad],
                           capture_output=True, text=True, timeout=30)
        assert p.returncode != 0 and "--script-limit" in p.stderr, (bad, p.stderr)
