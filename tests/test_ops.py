"""Operations: systemd notify, access log, slow log, status and ping
pages, SIGHUP, and several instances behind one nginx."""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time

import fcgi_client as fc
from conftest import (CGI_DIR, Daemon, FCGIWRAP, TOP_SRCDIR, can_connect, cgi_params, curl, free_port, nginx_with,
                      status, stop_nginx, wait_for)


def test_notify_under_socket_activation(tmp_path):
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify"))
    notify.settimeout(5)
    a, b = str(tmp_path / "a.sock"), str(tmp_path / "b.sock")
    # systemd-socket-activate passes on only the variables given with -E,
    # and starts the daemon at the first connection.
    p = subprocess.Popen(["systemd-socket-activate", "-l", a, "-l", b,
                          "-E", "NOTIFY_SOCKET=%s" % (tmp_path / "notify"), "-E", "WATCHDOG_USEC=400000",
                          FCGIWRAP, "--allow-root"], stderr=subprocess.DEVNULL)
    messages = []

    def receive_until(text):
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                messages.append(notify.recv(4096).decode())
            except socket.timeout:
                break
            if any(text in m for m in messages):
                return True
        return False

    try:
        assert wait_for(lambda: can_connect(a))
        assert receive_until("READY=1")
        for path in (a, b):
            assert fc.request(path, cgi_params(query="hello")).status == 200
        assert receive_until("2 requests")
        assert receive_until("WATCHDOG=1")
        p.send_signal(signal.SIGTERM)
        assert receive_until("STOPPING=1")
        assert p.wait(10) == 0
    finally:
        if p.poll() is None:
            p.kill()
    statuses = [m for m in messages if m.startswith("STATUS=")]
    assert statuses and "connections" in statuses[0]


def test_access_log(tmp_path, start_daemon):
    log = tmp_path / "access.log"
    d = start_daemon(["--access-log", str(log), "-t", "2"])
    fc.request(d.address, cgi_params(query="hello", REQUEST_URI="/cgi-bin/behave.sh?hello"))
    fc.request(d.address, cgi_params("missing.sh", REQUEST_URI="/cgi-bin/missing.sh"))
    fc.request(d.address, cgi_params(query="sleep=5", REQUEST_URI="/slow"))
    fc.request(d.address, cgi_params(query="exit=3", method="POST", CONTENT_LENGTH="5"), b"12345")
    assert wait_for(lambda: len(log.read_text().splitlines()) == 4)
    # A line is written once its response is complete: lines of requests
    # answered close together may come in either order.
    lines = log.read_text().splitlines()

    def line(text):
        return next(l for l in lines if text in l)
    ok, missing, timed_out, failed = line("?hello"), line("missing.sh"), line("/slow"), line("POST")
    assert '"GET /cgi-bin/behave.sh?hello" 200 0 ' in ok
    assert os.path.join(CGI_DIR, "behave.sh") + " exit=0 pid=" in ok
    assert ok.startswith("127.0.0.1 [")
    assert '"GET /cgi-bin/missing.sh" 404 ' in missing and "exit=- pid=-" in missing
    assert '"GET /slow" 504 ' in timed_out and "exit=sig15" in timed_out
    # Bytes in: the body; out: what the script sent (headers and body).
    assert ' 200 5 32 ' in failed and "exit=3" in failed


def test_access_format(tmp_path, start_daemon):
    log = tmp_path / "access.log"
    d = start_daemon(["--access-log", str(log), "--access-format", "%S %m %x %% %q"])
    fc.request(d.address, cgi_params(query="hello"))
    assert wait_for(lambda: log.exists() and log.read_text() == "200 GET 0 % %q\n")


def test_sighup_reopens_access_log(tmp_path, start_daemon):
    log = tmp_path / "access.log"
    d = start_daemon(["--access-log", str(log)])
    fc.request(d.address, cgi_params(query="hello", REQUEST_URI="/first"))
    assert wait_for(lambda: log.exists() and "/first" in log.read_text())
    os.rename(log, tmp_path / "access.log.1")
    d.proc.send_signal(signal.SIGHUP)
    assert wait_for(lambda: log.exists())
    fc.request(d.address, cgi_params(query="hello", REQUEST_URI="/second"))
    assert wait_for(lambda: "/second" in log.read_text())
    assert "/second" not in (tmp_path / "access.log.1").read_text()
    assert "access log reopened" in d.log()


def test_slow_log(start_daemon):
    d = start_daemon(["--slow-log", "2"])
    fc.request(d.address, cgi_params(query="sleep=3"))
    # With the CPU time used so far (the script sleeps: next to none).
    assert wait_for(lambda: re.search(r"behave\.sh: slow request: running for \d+ s \(pid \d+, \d+ ms of CPU\)",
                                      d.log()))
    fc.request(d.address, cgi_params(query="hello"))
    assert d.log().count("slow request") == 1


def test_status_page(start_daemon):
    d = start_daemon(["--status-path", "/status", "--ping-path", "/ping", "-c", "7"])
    before = json.loads(status(d, "json").body)
    for _ in range(3):
        fc.request(d.address, cgi_params(query="hello"))
    fc.request(d.address, cgi_params("missing.sh"))
    fc.request(d.address, cgi_params(query="exit=2"))
    r = status(d, "json")
    assert r.header("Content-Type") == "application/json"
    after = json.loads(r.body)
    assert after["responses"]["200"] - before["responses"]["200"] == 5  # 4 scripts, the first status page
    assert after["responses"]["404"] == before["responses"]["404"] + 1
    assert after["exit zero"] == before["exit zero"] + 3
    assert after["exit nonzero"] == before["exit nonzero"] + 1
    assert after["script slots"] == 7
    assert after["accepted connections"] >= 6
    text = status(d).body.decode()
    assert "requests:" in text and "responses 404:" in text
    # The query is keys, each whole: "nojson" is none of them.
    assert status(d, "nojson").header("Content-Type").startswith("text/plain")
    assert status(d, "json=1&full").header("Content-Type") == "application/json"
    om = status(d, "openmetrics")
    assert om.header("Content-Type").startswith("application/openmetrics-text")
    assert "fcgiwrap_responses_total{status=\"404\"} 1" in om.body.decode()
    assert om.body.endswith(b"# EOF\n")
    ping = fc.request(d.address, {"SCRIPT_NAME": "/ping", "REQUEST_METHOD": "GET"})
    assert ping.body == b"pong\n"


def test_status_counts_timeouts_and_aborts(start_daemon):
    d = start_daemon(["--status-path", "/status", "-t", "2"])
    fc.request(d.address, cgi_params(query="sleep=5"))
    c = fc.Client(d.address)
    c.begin(cgi_params(query="tick"))
    c.send_stdin(b"")
    c.read_record()
    c.close()
    assert wait_for(lambda: json.loads(status(d, "json").body)["aborts"] == 1)
    figures = json.loads(status(d, "json").body)
    assert figures["timeouts"] == 1
    assert figures["responses"]["504"] == 1


def test_status_json_is_utf8_whatever_the_uri(start_daemon):
    # nginx passes $request_uri's bytes as the client sent them: while
    # such a request runs, ?json&full must still be JSON (UTF-8).
    d = start_daemon(["--status-path", "/status"])
    uri = b"/x\xff\xc3/\xc3\xa9?\xc0\xaf\xed\xa0\x80\xf4\x90\x80\x80"

    def listed():
        page = json.loads(status(d, "json&full").body.decode("utf-8"))
        return [p for p in page["processes"] if p["uri"].startswith("/x")]

    with fc.Client(d.address) as c:
        c.begin(cgi_params(query="sleep=30", REQUEST_URI=uri, REQUEST_METHOD="G\xe9T".encode("latin-1")))
        c.send_stdin(b"")
        assert wait_for(listed)
        p = listed()[0]
    assert p["uri"] == "/x\ufffd\ufffd/\u00e9?" + "\ufffd" * 9
    assert p["method"] == "G\ufffdT"


def test_status_and_ping_off_by_default(daemon):
    r = status(daemon)
    assert r.status == 404


UPSTREAM_EXAMPLE = os.path.join(TOP_SRCDIR, "examples", "nginx-upstream.conf")


def test_scale_out_example(tmp_path):
    # Two instances on two loopback addresses, as examples/nginx-upstream.conf
    # has them (ports made free ones); one stops, requests keep succeeding.
    ports = [free_port(), free_port()]
    logs = [tmp_path / ("access%d.log" % i) for i in range(2)]
    daemons = [Daemon(tmp_path, ["--allow-from", "127.0.0.0/8", "--access-log", str(logs[i])],
                      socket_url="tcp:127.0.0.%d:%d" % (i + 1, port), name="instance%d" % i).start()
               for i, port in enumerate(ports)]
    conf = open(UPSTREAM_EXAMPLE).read().replace("127.0.0.1:9001", "127.0.0.1:%d" % ports[0]) \
        .replace("127.0.0.2:9001", "127.0.0.2:%d" % ports[1])
    site = """
        location /cgi-bin/ {
            fastcgi_param SCRIPT_FILENAME %s/behave.sh;
            include fastcgi_params;
            fastcgi_pass fcgiwrap_pool;
        }
""" % CGI_DIR
    ngx, http_port, _ = nginx_with(tmp_path, site, "upstream", http_extra=conf)
    try:
        url = "http://127.0.0.1:%d/cgi-bin/x?hello" % http_port
        for _ in range(6):
            assert curl(url) == (200, b"hello\n")
        # nginx spread the requests over both instances.
        assert wait_for(lambda: all(log.exists() and log.read_text() for log in logs))
        daemons[0].stop()
        for _ in range(6):
            assert curl(url) == (200, b"hello\n")
    finally:
        stop_nginx(ngx)
        for d in daemons:
            d.stop()
    # The stopped instance took none of the later requests.
    assert len(logs[1].read_text().splitlines()) >= 6


def test_journal_priorities(start_daemon):
    # Under systemd (JOURNAL_STREAM set), each line starts with its syslog
    # priority, so the journal keeps the levels.
    d = start_daemon(env=dict(os.environ, JOURNAL_STREAM="8:1234"))
    fc.request(d.address, cgi_params("missing.sh"))
    assert wait_for(lambda: "<4>" in d.log())
    lines = d.log().splitlines()
    assert lines[0].startswith("<6>serving ")
    assert any(line.startswith("<4>") and "script not found" in line for line in lines)
    plain = start_daemon()
    assert plain.log().startswith("serving ")


def test_cgi_bin_example(tmp_path, start_daemon):
    # examples/nginx-cgi-bin.conf as it is, but for its two paths.
    root = tmp_path / "usr-lib"
    (root / "cgi-bin").mkdir(parents=True)
    shutil.copy(os.path.join(CGI_DIR, "echo.sh"), root / "cgi-bin" / "echo.sh")
    os.chmod(root / "cgi-bin" / "echo.sh", 0o755)
    d = start_daemon()
    location = open(os.path.join(TOP_SRCDIR, "examples", "nginx-cgi-bin.conf")).read() \
        .replace("/usr/lib", str(root)).replace("unix:/run/fcgiwrap.socket", "unix:" + d.address)
    ngx, http_port, _ = nginx_with(tmp_path, location, "cgi-bin")
    try:
        code, body = curl("--data-binary", "abc", "http://127.0.0.1:%d/cgi-bin/echo.sh/extra?q=1" % http_port)
        assert code == 200
        assert b"SCRIPT_NAME=/cgi-bin/echo.sh\n" in body
        assert b"PATH_INFO=/extra\n" in body
        assert b"QUERY_STRING=q=1\n" in body
        assert b"BODY=abc\n" in body
    finally:
        stop_nginx(ngx)
