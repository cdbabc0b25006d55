"""What the machine gives: --rlimit for scripts, and the daemon short of
file descriptors, threads (RLIMIT_NPROC), memory for a worker's buffers,
or room to hold output (--spool-limit, a full disk).  It says so once per
episode, fails only the requests it must, and serves again by itself."""

import os
import resource
import socket
import subprocess
import threading
import time

import fcgi_client as fc
import pytest
from conftest import FAULT_MMAP, Daemon, can_connect, cgi_params, children_of, proc_stat, run_fcgiwrap, wait_for


def cpu_seconds(pid):
    fields = proc_stat(pid)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_fd_exhaustion_recovers(tmp_path):
    def low_nofile():
        resource.setrlimit(resource.RLIMIT_NOFILE, (40, 40))

    d = Daemon(tmp_path, ["--peer-timeout", "60"]).start(wait=False, preexec_fn=low_nofile)
    # Stopped whatever fails: a daemon left behind would hold its fds.
    try:
        assert wait_for(lambda: "serving " in d.log())
        held = []
        try:
            # Idle connections use up the daemon's fds.
            for _ in range(40):
                s = socket.socket(socket.AF_UNIX)
                s.connect(d.address)
                held.append(s)
            assert wait_for(lambda: "cannot accept connections for now" in d.log())
            cpu0 = cpu_seconds(d.proc.pid)
            time.sleep(1)
            assert cpu_seconds(d.proc.pid) - cpu0 < 0.2, "spinning while out of fds"
            # A request on one of the accepted connections cannot get pipes: 503.
            statuses = set()
            for s in held[:30]:
                s.settimeout(0.2)
                try:
                    s.sendall(fc.request_head(cgi_params(query="hello")) + fc.record(fc.STDIN, 1))
                except OSError:
                    pass
            for s in held[:30]:
                c = fc.Client.__new__(fc.Client)
                c.sock, c.buf = s, b""
                s.settimeout(5)
                try:
                    statuses.add(c.read_response().status)
                except (OSError, ConnectionError, ValueError):
                    pass
            assert 503 in statuses, statuses
            # No fd left to open the script with is a shortage, not a missing
            # script (it was once answered 404).
            assert 404 not in statuses, statuses
            # One line per episode of shortage, not one per refused request.
            log = d.log()
            assert log.count("cannot start scripts") <= log.count("scripts can be started again") + 1
        finally:
            for s in held:
                s.close()
        # Resources are back: it serves again, by itself.
        def serves():
            try:
                return fc.request(d.address, cgi_params(query="hello")).status == 200
            except OSError:
                return False
        assert wait_for(serves, 10)
        assert "accepting connections again" in d.log()
        assert "scripts can be started again" in d.log()
        assert d.proc.poll() is None
    finally:
        d.stop()


def test_thread_shortage_is_logged_once(tmp_path, own_user):
    # As a user of its own with at most 3 tasks: the main thread and two
    # workers.  (RLIMIT_NPROC counts every process of the user: as nobody,
    # whatever else ran as nobody took the threads.)  A third connection
    # cannot get a thread: one log line for the episode, and the
    # connection is served once a worker frees.
    def few_tasks():
        resource.setrlimit(resource.RLIMIT_NPROC, (3, 3))

    d = Daemon(tmp_path, ["--user", own_user.pw_name, "--socket-mode", "0666", "--peer-timeout", "30"])
    d.start(wait=False, preexec_fn=few_tasks)
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
            c.send(fc.request_head(cgi_params(SCRIPT_FILENAME="/nonexistent.cgi")) + fc.record(fc.STDIN, 1))
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


def test_nproc_limit_warns_at_start(start_daemon):
    d = start_daemon(["--rlimit", "nproc=20", "--max-connections", "64"])
    assert wait_for(lambda: "--rlimit nproc=20 counts all processes and threads" in d.log())
    quiet = start_daemon(["--rlimit", "nproc=200", "--max-connections", "64"])
    assert "counts all processes" not in quiet.log()
    # The threads are bounded by -c as well (-c + 64 workers, and the main
    # thread), however many connections may wait.
    bounded = start_daemon(["--rlimit", "nproc=200", "-c", "4", "--max-connections", "1024"])
    assert wait_for(lambda: "serving" in bounded.log())
    assert "counts all processes" not in bounded.log()
    tight = start_daemon(["--rlimit", "nproc=69", "-c", "4", "--max-connections", "1024"])
    assert wait_for(lambda: "(up to 69)" in tight.log())


def test_rlimits_apply_to_scripts(start_daemon):
    d = start_daemon(["--rlimit", "nofile=64", "--rlimit", "cpu=7"])
    r = fc.request(d.address, cgi_params(query="limits"))
    assert r.body == b"nofile=64 cpu=7\n"


@pytest.mark.parametrize("spec", ["nofile", "bogus=1", "cpu=-1", "as=12Q", "cpu=10M"])
def test_bad_rlimit_spec(spec):
    r = run_fcgiwrap("--allow-root", "--rlimit", spec, "-s", "unix:/nonexistent/x", timeout=None)
    assert r.returncode == 1
    assert "invalid --rlimit" in r.stderr


def buffer_rss_kib(pid):
    """Resident KiB of each worker's buffer mapping: one read-write
    anonymous mapping of 64 KiB (output) + 64 KiB (body) + 128 KiB (request
    head) + 64 KiB (input), 80 pages, kept apart from its neighbours by a
    page with no access on each side (src/worker_buffers.c)."""
    out, size = [], None
    with open("/proc/%d/smaps" % pid) as f:
        for line in f:
            fields = line.split()
            if "-" in fields[0] and ":" not in fields[0]:
                lo, hi = (int(x, 16) for x in fields[0].split("-"))
                size = hi - lo if fields[1] == "rw-p" and len(fields) == 5 else None
            elif fields[0] == "Rss:" and size == 80 * 4096:
                out.append(int(fields[1]))
    return out


def test_buffers_given_back_after_large_request(daemon):
    # A worker that served a 1 MiB upload gives its buffers' pages back:
    # otherwise every worker that ever saw one would keep them.
    body = os.urandom(1024 * 1024)
    with fc.Client(daemon.address) as c:
        r = c.request(cgi_params(query="count", method="POST", CONTENT_LENGTH=str(len(body))), body)
        # The buffers are trimmed before the connection is closed.
        assert fc.is_closed(c.sock, 10)
    assert r.body.strip() == str(len(body)).encode()
    rss = buffer_rss_kib(daemon.proc.pid)
    assert rss and max(rss) <= 8, rss


def test_waiting_request_keeps_only_its_head(daemon):
    # A script that waits (here sleeps) before any output: once seen
    # waiting, its worker gives back its input page, read and emptied,
    # and keeps the request head's page, which the parameters point into.
    # (The idle worker waiting for the next connection has nothing
    # resident.)
    t = threading.Thread(target=fc.request, args=(daemon.address, cgi_params(query="sleep=3")))
    t.start()
    assert wait_for(lambda: children_of(daemon.proc.pid), 10)

    def resident():
        return [k for k in buffer_rss_kib(daemon.proc.pid) if k]

    assert wait_for(lambda: resident() == [4], 5), buffer_rss_kib(daemon.proc.pid)
    t.join()


def test_worker_that_cannot_map_its_buffers(tmp_path, start_daemon):
    # While a new worker cannot map its buffers, its connections are
    # closed (not left waiting) with one log line; once memory is back,
    # every request is served: a worker that failed does not stay behind
    # to close connections, nor leave the pool's counts wrong.
    flag = tmp_path / "no-memory"
    flag.write_text("")
    # Mappings of 300,000 bytes or more fail: the buffers' (320 KiB and
    # its guard pages), not a thread's stack (256 KiB and its guard).
    env = dict(os.environ, LD_PRELOAD=FAULT_MMAP, FAULT_MMAP_FLAG=str(flag), FAULT_MMAP_MIN="300000",
               ASAN_OPTIONS="verify_asan_link_order=0:" + os.environ.get("ASAN_OPTIONS", ""))
    d = start_daemon(env=env)
    for _ in range(3):
        with fc.Client(d.address) as c:
            try:
                c.send(fc.request_head(cgi_params(query="hello")) + fc.record(fc.STDIN, 1))
            except OSError:
                pass  # closed already
            c.sock.settimeout(5)
            try:
                assert c.sock.recv(65536) == b"", "answered without buffers"
            except ConnectionResetError:
                pass
    assert wait_for(lambda: "cannot map a worker's buffers (Cannot allocate memory)" in d.log())
    flag.unlink()
    for _ in range(20):
        assert fc.request(d.address, cgi_params(query="hello"), timeout=5).body == b"hello\n"
    threads = [threading.Thread(target=fc.request, args=(d.address, cgi_params(query="sleep=1"))) for _ in range(5)]
    for t in threads:
        t.start()
    assert wait_for(lambda: len(children_of(d.proc.pid)) == 5, 10)
    assert fc.request(d.address, cgi_params(query="hello"), timeout=10).body == b"hello\n"
    for t in threads:
        t.join()
    assert "workers can map their buffers again" in d.log()


def stack_mappings(pid):
    """The thread stacks mapped in pid: read-write anonymous mappings of
    256 KiB right above a one-page guard."""
    n, below = 0, None
    with open("/proc/%d/maps" % pid) as f:
        for line in f:
            fields = line.split()
            start, end = (int(x, 16) for x in fields[0].split("-"))
            if (end - start == 256 * 1024 and fields[1] == "rw-p" and len(fields) == 5 and below and
                    below[1] == start and below[1] - below[0] == os.sysconf("SC_PAGESIZE") and below[2] == "---p"):
                n += 1
            below = (start, end, fields[1])
    return n


def test_threads_give_back_their_stacks_after_a_burst(daemon):
    # 40 connections at once, a worker each; once they have idled out
    # (10 s), their stacks are unmapped, not kept by glibc for threads to
    # come with their top pages resident (1.3 MiB after 300).  Counted
    # against the mappings of that kind before the burst.
    before = stack_mappings(daemon.proc.pid)
    threads = [threading.Thread(target=fc.request, args=(daemon.address, cgi_params(query="sleep=1")))
               for _ in range(40)]
    for t in threads:
        t.start()
    assert wait_for(lambda: len(os.listdir("/proc/%d/task" % daemon.proc.pid)) > 40, 10)
    for t in threads:
        t.join()
    assert stack_mappings(daemon.proc.pid) >= before + 40
    assert wait_for(lambda: len(os.listdir("/proc/%d/task" % daemon.proc.pid)) == 1, 40)
    assert stack_mappings(daemon.proc.pid) <= before + 1


def post_answer_first(d):
    """POSTs 2 MiB to answer-first, which writes 1 MiB before it reads its
    body: held until the body ends.  Returns the response."""
    body = b"y" * (2 * 1024 * 1024)

    def send_body():
        try:
            c.send_stdin(body)
        except OSError:
            pass  # answered and closed early

    with fc.Client(d.address, timeout=20) as c:
        c.send(fc.request_head(cgi_params(query="answer-first", method="POST", CONTENT_LENGTH=str(len(body)))))
        threading.Thread(target=send_body, daemon=True).start()
        return c.read_response()


def test_spool_limit(start_daemon):
    # The 1 MiB held until the body ends is more than --spool-limit.
    d = start_daemon(["--spool-limit", "256K"])
    r = post_answer_first(d)
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
        r = post_answer_first(d)
        assert r.status == 503
        assert wait_for(lambda: "cannot hold output until the request body ends (in %s): No space left on device"
                        % spool in d.log())
        assert "stopped taking the response" not in d.log()
    finally:
        subprocess.run(["umount", "-l", str(spool)])
