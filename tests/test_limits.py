"""How many at once: script slots (-c) and the wait for one
(--queue-timeout), --script-limit classes that keep other scripts served,
--start-limit, which takes CPU-bound starts in turn, and --max-connections
with its bounded threads.  Slow requests never hold up fast ones."""

import os
import socket
import threading
import time

import fcgi_client as fc
import pytest
from conftest import HELLO_CGI, cgi_params, children_of, run_fcgiwrap, status, status_json, timed_request, wait_for


def running_in_background(d, query):
    """A request for behave.sh?query in a thread of its own; returns the
    thread once the script runs."""
    t = threading.Thread(target=fc.request, args=(d.address, cgi_params(query=query)))
    t.start()
    assert wait_for(lambda: children_of(d.proc.pid), 10)
    return t


def test_slow_requests_do_not_block_fast_ones(daemon):
    results = []

    def slow():
        results.append(fc.request(daemon.address, cgi_params(query="sleep=10")).body)

    threads = [threading.Thread(target=slow) for _ in range(6)]
    for t in threads:
        t.start()
    assert wait_for(lambda: len(children_of(daemon.proc.pid)) == 6, 10)
    for _ in range(10):
        r, took = timed_request(daemon.address, cgi_params(query="hello"))
        assert r.body == b"hello\n"
        assert took < 5
    for t in threads:
        t.join()
    assert results == [b"slept\n"] * 6


def test_concurrency_limit(start_daemon):
    d = start_daemon(["-c", "2"])
    done = []

    def slow():
        fc.request(d.address, cgi_params(query="sleep=3"))
        done.append(time.monotonic())

    start = time.monotonic()
    threads = [threading.Thread(target=slow) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = sorted(t - start for t in done)
    assert elapsed[1] < 5, elapsed
    assert elapsed[2] >= 5.9, "the third request did not wait for a slot: %r" % elapsed


def test_overload_503_after_queue_timeout(start_daemon):
    d = start_daemon(["-c", "1", "--queue-timeout", "0.5"])
    # The slow script runs: it holds the only slot.
    slow = running_in_background(d, "sleep=5")
    start = time.monotonic()
    r = fc.request(d.address, cgi_params(query="hello"))
    assert r.status == 503
    assert 0.4 <= time.monotonic() - start < 3
    slow.join()
    assert fc.request(d.address, cgi_params(query="hello")).status == 200
    log = d.log()
    assert log.count("stayed busy for --queue-timeout") == 1
    assert "script slots are available again" in log


def test_overload_waits_within_queue_timeout(start_daemon):
    d = start_daemon(["-c", "1", "--queue-timeout", "20"])
    slow = running_in_background(d, "sleep=3")
    start = time.monotonic()
    assert fc.request(d.address, cgi_params(query="hello")).status == 200
    assert time.monotonic() - start >= 1.0
    slow.join()


def test_overload_503_waits_for_a_late_body(start_daemon):
    # The body of a request that waited its --queue-timeout may come after
    # that: the 503 waits for it as long as bytes keep coming within
    # --peer-timeout.  (With both at their default 30 s, the head's
    # deadline had passed when the queue gave up, and the request was
    # reset instead: nginx showed 502.)
    d = start_daemon(["-c", "1", "--queue-timeout", "2", "--peer-timeout", "2", "--status-path", "/status"])
    slow = running_in_background(d, "sleep=8")
    with fc.Client(d.address, timeout=30) as c:
        start = time.monotonic()
        c.begin(cgi_params(query="count", method="POST", CONTENT_LENGTH="4"))
        assert wait_for(lambda: status_json(d)["queued requests"] == 1, 10)
        # Past the queue's end (2 s) and the head's --peer-timeout (2 s),
        # within --peer-timeout of the queue's end.
        time.sleep(max(0, start + 3 - time.monotonic()))
        c.send_stdin(b"body")
        r = c.read_response()
    assert r.status == 503
    slow.join()
    assert "sent no body bytes" not in d.log()


# ---- --script-limit ----


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


# A script outside the class.
HELLO = cgi_params(SCRIPT_FILENAME=HELLO_CGI, SCRIPT_NAME="/hello")


def class_figures(d):
    return status_json(d)["classes"][0]


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
        r, took = timed_request(d.address, HELLO)
        assert r.status == 200
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
    assert fc.request(d.address, HELLO).status == 200
    held.join()
    assert wait_for(lambda: "all 1 slots of --script-limit %s stayed busy" % script in d.log())
    assert fc.request(d.address, dict(params, QUERY_STRING="3", SLEEP="0")).status == 200
    assert wait_for(lambda: "%s slots are available again" % script in d.log())


def test_script_limit_refuses_bad_values(tmp_path):
    for bad, why in (("/bin=0", "PATH=N with N from 1"), ("/bin", "PATH=N, not"), ("=3", "PATH=N, not"),
                     ("/bin=x", "PATH=N with N from 1"), ("/nonexistent/dir=2", "cannot resolve the path")):
        p = run_fcgiwrap("-s", "unix:%s/s" % tmp_path, "--allow-root", "--script-limit", bad, timeout=30)
        assert p.returncode != 0 and why in p.stderr, (bad, p.stderr)


# ---- connections ----


def test_max_connections_one_under_many_clients(start_daemon):
    # --max-connections 1 while 16 clients connect at once, again and
    # again: workers and the main loop both accept, and each takes its
    # place before it accepts, so the one place is never taken twice
    # (which once let a queued connection be overwritten: one client hung,
    # another was served twice).
    d = start_daemon(["--max-connections", "1"])
    bodies, errors = [], []

    def client():
        for _ in range(5):
            try:
                bodies.append(fc.request(d.address, cgi_params(query="hello"), timeout=20).body)
            except Exception as e:  # noqa: BLE001 - counted below
                errors.append(repr(e))

    threads = [threading.Thread(target=client) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors[:3]
    assert bodies == [b"hello\n"] * 80


def test_max_connections_then_next_is_taken(start_daemon):
    # --max-connections 2: two silent connections hold both workers, a
    # third waits (in the listen backlog) unanswered; once one of the two
    # closes, the worker it held takes the waiting one at once.
    d = start_daemon(["--max-connections", "2", "--peer-timeout", "20"])
    idle = []
    for _ in range(2):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(d.address)
        idle.append(s)
    # Both taken: the main thread and two workers.
    assert wait_for(lambda: len(os.listdir("/proc/%d/task" % d.proc.pid)) == 3, 10)
    with fc.Client(d.address, timeout=10) as c:
        c.begin(cgi_params(query="hello"))
        c.send_stdin(b"")
        c.sock.settimeout(1)
        with pytest.raises(socket.timeout):
            c.sock.recv(1)
        idle[0].close()
        c.sock.settimeout(10)
        start = time.monotonic()
        assert c.read_response().body == b"hello\n"
        assert time.monotonic() - start < 5
    idle[1].close()


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
