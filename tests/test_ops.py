"""Operations: the access log (its format, reopened on SIGHUP, owned by the
--user, never opened through a link), the daemon's log (escaped, so a
client cannot forge a line), the slow log, the status and ping pages, and
several instances behind one nginx."""

import json
import os
import pwd
import re
import signal

import fcgi_client as fc
from conftest import (CGI_DIR, Daemon, TOP_SRCDIR, cgi_params, curl, free_port, nginx_with, start_refused, status,
                      status_json, wait_for)


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
        log = start_refused(tmp_path, ["--user", "nobody", "--access-log", str(path)], name=name)
        assert "--access-log %s: %s" % (path, why) in log, log
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
    ngx = nginx_with(tmp_path, site, "inject")
    try:
        code, _ = curl(ngx.url + "/cgi-bin/x%0A%3C0%3Eforged%5Cline%0D%1B%7F")
    finally:
        ngx.stop()
    assert code == 404
    assert wait_for(lambda: "script not found" in d.log())
    lines = d.log().splitlines()
    assert not any(line.startswith("<0>") or line.startswith("forged") for line in lines), lines
    assert any(line.startswith("<4>") and "/cgi-bin/x\\x0a<0>forged\\x5cline\\x0d\\x1b\\x7f: script not found"
               in line for line in lines), lines
    assert wait_for(lambda: access.exists() and access.read_text().count("\n") == 1)
    entry = access.read_text()
    assert "/x\\x0a<0>forged\\x5cline\\x0d\\x1b\\x7f" in entry, entry


def test_slow_log(start_daemon):
    d = start_daemon(["--slow-log", "2"])
    fc.request(d.address, cgi_params(query="sleep=3"))
    # With the CPU time used so far (the script sleeps: next to none).
    assert wait_for(lambda: re.search(r"behave\.sh: slow request: running for \d+ s \(pid \d+, \d+ ms of CPU\)",
                                      d.log()))
    fc.request(d.address, cgi_params(query="hello"))
    assert d.log().count("slow request") == 1


# ---- the status and ping pages ----


def test_status_page(start_daemon):
    d = start_daemon(["--status-path", "/status", "--ping-path", "/ping", "-c", "7"])
    before = status_json(d)
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
    assert wait_for(lambda: status_json(d)["aborts"] == 1)
    figures = status_json(d)
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


# ---- several instances ----


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
    ngx = nginx_with(tmp_path, site, "upstream", http_extra=conf)
    try:
        url = ngx.url + "/cgi-bin/x?hello"
        for _ in range(6):
            assert curl(url) == (200, b"hello\n")
        # nginx spread the requests over both instances.
        assert wait_for(lambda: all(log.exists() and log.read_text() for log in logs))
        daemons[0].stop()
        for _ in range(6):
            assert curl(url) == (200, b"hello\n")
    finally:
        ngx.stop()
        for d in daemons:
            d.stop()
    # The stopped instance took none of the later requests.
    assert len(logs[1].read_text().splitlines()) >= 6
