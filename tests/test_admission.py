"""Admission: --start-limit takes CPU-bound starts in turn without holding
back scripts that wait, and a burst of connections is served by a bounded
number of threads, in arrival order, none failed."""

import os
import threading
import time

import fcgi_client as fc
from conftest import HELLO_CGI, cgi_params, wait_for

# Writes a line (its start, in ns) when it starts, then, before its first
# output, spins on the CPU ("spin": well past --start-limit's 50 ms
# window) or sleeps QUERY_STRING seconds (waiting, as scripts on I/O do).
STAMPING = """#!/bin/sh
date +%%s%%N >> %s
if [ "$QUERY_STRING" = spin ]; then
    i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done
else
    sleep "${QUERY_STRING:-1}"
fi
printf 'Content-Type: text/plain\\n\\nok\\n'
"""


def stamping_script(tmp_path):
    log = tmp_path / "starts"
    script = tmp_path / "stamp.sh"
    script.write_text(STAMPING % log)
    script.chmod(0o755)
    return script, log


def fetch_all(d, params_list, timeout=60):
    """Sends the requests at once, each on its own connection; their
    statuses, in order."""
    results = [None] * len(params_list)

    def one(i):
        try:
            results[i] = fc.request(d.address, params_list[i], timeout=timeout).status
        except OSError as e:
            results[i] = repr(e)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(params_list))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout + 10)
    return results


def test_start_limit_takes_starts_in_turn(tmp_path, start_daemon):
    # One place: each script, on the CPU and silent, holds it for the
    # 50 ms window, so the next starts no sooner.  Without the limit the
    # three start within milliseconds of each other.
    script, log = stamping_script(tmp_path)
    d = start_daemon(["--start-limit", "1"])
    params = cgi_params(SCRIPT_FILENAME=str(script), SCRIPT_NAME="/stamp.sh", query="spin")
    assert fetch_all(d, [params] * 3) == [200] * 3
    starts = sorted(int(x) for x in log.read_text().split())
    gaps_ms = [(b - a) / 1e6 for a, b in zip(starts, starts[1:])]
    assert len(starts) == 3 and min(gaps_ms) >= 40, gaps_ms


def test_start_limit_never_holds_back_waiting_scripts(tmp_path, start_daemon):
    # Eight scripts that sleep 3 s give their place back once seen
    # waiting: they all start within a moment, and a fast request beside
    # them is answered at once, with one place for all.
    script, _ = stamping_script(tmp_path)
    d = start_daemon(["--start-limit", "1"])
    slow = cgi_params(SCRIPT_FILENAME=str(script), SCRIPT_NAME="/stamp.sh", query="3")
    done = []
    t = threading.Thread(target=lambda: done.append(fetch_all(d, [slow] * 8)))
    t.start()
    assert wait_for(lambda: (tmp_path / "starts").exists() and len((tmp_path / "starts").read_text().split()) == 8,
                    20)
    start = time.monotonic()
    r = fc.request(d.address, cgi_params(SCRIPT_FILENAME=HELLO_CGI, SCRIPT_NAME="/hello"))
    took = time.monotonic() - start
    t.join(60)
    assert r.status == 200 and took < 2, took
    assert done == [[200] * 8]


def thread_count(pid):
    return len(os.listdir("/proc/%d/task" % pid))


def test_burst_of_connections_waits_for_threads(tmp_path, start_daemon):
    # -c 4: at most 4 + 64 threads serve 120 connections at once; the rest
    # wait as accepted sockets, and every request is answered.
    script, _ = stamping_script(tmp_path)
    d = start_daemon(["-c", "4", "--queue-timeout", "120"])
    params = cgi_params(SCRIPT_FILENAME=str(script), SCRIPT_NAME="/stamp.sh", query="0.2")
    peak = []
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            peak.append(thread_count(d.proc.pid))
            time.sleep(0.02)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        results = fetch_all(d, [params] * 120, timeout=120)
    finally:
        stop.set()
        sampler.join()
    assert results == [200] * 120
    # The main thread and the workers (a few more may be the daemon's
    # own helpers), never one a connection.
    assert 4 < max(peak) <= 4 + 64 + 4, max(peak)
