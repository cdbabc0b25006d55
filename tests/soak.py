#!/usr/bin/env python3
"""Soak test (make soak; not part of make check): many mixed requests
against one daemon -- normal, slow, aborted, timed out, malformed -- then
checks that every answer was right, that the daemon's fds and RSS did not
grow from the first 10% of the run to the end (the largest value sampled in
each stretch) and its threads stayed within what the load can cause, that
no process was left behind, and that once idle the daemon gives its threads
back.
Usage: soak.py [--requests N] [--clients N]"""

import argparse
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fcgi_client as fc  # noqa: E402
from testlib import processes  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
BEHAVE = os.path.join(HERE, "cgi", "behave.sh")

# (weight, kind): the mix of requests.
MIX = [(880, "hello"), (50, "shell"), (20, "slow"), (25, "post"), (15, "aborted"), (8, "malformed"),
       (2, "timeout")]


def params(script, query=""):
    return {"REQUEST_METHOD": "GET", "SCRIPT_FILENAME": script, "QUERY_STRING": query,
            "SCRIPT_NAME": "/x", "GATEWAY_INTERFACE": "CGI/1.1"}


def one(kind, address, hello):
    """Runs one request; returns None if the answer was right, else why."""
    if kind == "hello":
        r = fc.request(address, params(hello))
        return None if r.status == 200 and r.body == b"Hello, world!\n" and r.app_status == 0 else "hello"
    if kind == "shell":
        r = fc.request(address, params(BEHAVE, "hello"))
        return None if r.body == b"hello\n" else "shell"
    if kind == "slow":
        r = fc.request(address, params(BEHAVE, "sleep=0.3"))
        return None if r.body == b"slept\n" else "slow"
    if kind == "post":
        body = os.urandom(random.randint(0, 300000))
        p = params(BEHAVE, "count")
        p.update(REQUEST_METHOD="POST", CONTENT_LENGTH=str(len(body)))
        r = fc.request(address, p, body)
        return None if r.body.strip() == str(len(body)).encode() else "post"
    if kind == "aborted":
        c = fc.Client(address)
        c.begin(params(BEHAVE, "tick"))
        c.send_stdin(b"")
        c.read_record()
        c.close()
        return None
    if kind == "malformed":
        s = socket.socket(socket.AF_UNIX)
        s.connect(address)
        s.sendall(random.choice([b"\x07" * 32, b"GET / HTTP/1.0\r\n\r\n",
                                 fc.record(fc.BEGIN_REQUEST, 1, b"abc")]))
        ok = fc.is_closed(s, 10)
        s.close()
        return None if ok else "malformed"
    if kind == "timeout":
        r = fc.request(address, params(BEHAVE, "sleep=5"))
        return None if r.status == 504 else "timeout"
    raise ValueError(kind)


def snapshot(pid):
    fds = len(os.listdir("/proc/%d/fd" % pid))
    status = dict(line.split(":", 1) for line in open("/proc/%d/status" % pid))
    return fds, int(status["Threads"]), int(status["VmRSS"].split()[0])


def sleepers():
    return [pid for pid, _, argv in processes() if argv in (["sleep", "300"], ["sleep", "5"])]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=200000)
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--fcgiwrap", default=os.environ.get("FCGIWRAP", "./fcgiwrap"))
    ap.add_argument("--hello", default=os.environ.get("HELLO_CGI", "tests/cgi/hello"))
    args = ap.parse_args()
    hello = os.path.abspath(args.hello)

    tmp = tempfile.mkdtemp(prefix="fcgiwrap-soak.")
    address = os.path.join(tmp, "sock")
    log = open(os.path.join(tmp, "log"), "wb")
    daemon = subprocess.Popen([args.fcgiwrap, "-s", "unix:" + address, "--allow-root", "-t", "1", "--kill-grace", "1",
                               "--log-level", "warning"], stdout=log, stderr=subprocess.STDOUT)
    while not os.path.exists(address):
        time.sleep(0.01)
    kinds = [k for w, k in MIX for _ in range(w)]
    lock = threading.Lock()
    counts = {"done": 0, "wrong": 0}
    wrong = {}
    samples = []  # (requests done, fds, threads, rss)
    running = [True]
    start = time.monotonic()

    def sampler():
        while running[0]:
            samples.append((counts["done"],) + snapshot(daemon.pid))
            time.sleep(0.25)

    sampling = threading.Thread(target=sampler)
    sampling.start()

    def worker(n):
        for _ in range(n):
            kind = random.choice(kinds)
            try:
                why = one(kind, address, hello)
            except Exception as e:  # a wrong answer, whatever its form
                why = "%s: %r" % (kind, e)
            with lock:
                counts["done"] += 1
                if why:
                    counts["wrong"] += 1
                    wrong[why] = wrong.get(why, 0) + 1

    per = args.requests // args.clients
    threads = [threading.Thread(target=worker, args=(per,)) for _ in range(args.clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - start
    running[0] = False
    sampling.join()
    total = counts["done"]
    first = [x[1:] for x in samples if x[0] <= total // 10]
    last = [x[1:] for x in samples if x[0] >= total - total // 10]
    e = tuple(max(v[i] for v in first) for i in range(3))
    end = tuple(max(v[i] for v in last) for i in range(3))
    time.sleep(12)  # idle: ended scripts are gone, idle workers exit
    idle = snapshot(daemon.pid)
    left = sleepers()
    alive = daemon.poll() is None
    daemon.send_signal(signal.SIGTERM)
    rc = daemon.wait(30)
    print("requests: %d in %.0f s (%.0f/s), %d clients; wrong answers: %d %s"
          % (total, elapsed, total / elapsed, args.clients, counts["wrong"], wrong or ""))
    print("daemon, largest sampled in the first 10%%: %d fds, %d threads, %d KiB RSS; "
          "in the last 10%%: %d fds, %d threads, %d KiB RSS" % (e + end))
    print("daemon idle afterwards: %d fds, %d threads, %d KiB RSS" % idle)
    print("processes left behind: %d; daemon alive at the end: %s; exit status after SIGTERM: %d"
          % (len(left), alive, rc))
    # fds must not grow at all.  Threads follow the number of connections
    # open at once, whose peaks are random: they must stay within what the
    # clients can cause (a connection ending while the next one opens:
    # two per client), and go back to one when idle, which shows none is
    # kept.  RSS may move within 10% (allocator noise), and also drops back
    # when idle.
    ok = (counts["wrong"] == 0 and not left and alive and rc == 0 and end[0] <= e[0]
          and end[1] <= max(e[1], 2 * args.clients) and end[2] <= e[2] * 1.1 and idle[1] == 1
          and idle[0] <= e[0])
    print("soak: %s" % ("passed" if ok else "FAILED"))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
