"""End to end: curl -> a web server on 127.0.0.1 -> fcgiwrap -> CGI script.
Tests taking the web fixture run through nginx, lighttpd and Apache:
answers, streaming both ways, large and chunked uploads, an overloaded
POST; then examples/nginx-cgi-bin.conf as shipped."""

import http.client
import os
import shutil
import threading
import time

import pytest
from conftest import CGI_DIR, TOP_SRCDIR, Nginx, children_of, curl, nginx_with, wait_for

MiB = 1024 * 1024


@pytest.mark.parametrize("path,code,body", [
    ("/cgi-bin/behave.sh?hello", 200, b"hello\n"),
    ("/hello", 200, b"Hello, world!\n"),  # a compiled CGI
    ("/cgi-bin/nope.sh", 404, None),
    ("/cgi-bin/behave.sh?no-headers", 502, None),
    ("/cgi-bin/behave.sh?status", 418, b"teapot\n"),
], ids=["get", "compiled-cgi", "missing-script-404", "bad-headers-502", "status-header"])
def test_answer(web, path, code, body):
    got_code, got_body = curl(web.url + path)
    assert got_code == code
    if body is not None:
        assert got_body == body


def test_path_info_split(nginx):
    code, body = curl(nginx.url + "/docroot/a/b?q=1")
    assert code == 200
    assert b"SCRIPT_NAME=/echo.sh\n" in body
    assert b"PATH_INFO=/docroot/a/b\n" in body


def post_answer_first(web, path, tmp_path):
    body = tmp_path / "body"
    with open(body, "wb") as f:
        f.write(b"z" * (32 * MiB))
    code, out = curl("--data-binary", "@" + str(body), "-H", "Content-Type: application/octet-stream",
                     web.url + path, timeout=120)
    assert code == 200, web.error_log()[-2000:]
    lines = out.split(b"\n")
    assert lines[0] == b"x" * MiB
    assert lines[1] == str(32 * MiB).encode()


def test_large_post_to_script_that_answers_first(web, tmp_path):
    # git-http-backend's pattern: headers and output before the body is
    # read.  Fails if any response byte reaches nginx before the body ends.
    post_answer_first(web, "/cgi-bin/behave.sh?answer-first", tmp_path)


def test_large_post_unbuffered(web, tmp_path):
    post_answer_first(web, web.unbuffered_path("answer-first"), tmp_path)


def test_chunked_upload_unbuffered(web, tmp_path):
    if web.name == "lighttpd":
        pytest.skip("lighttpd 1.4 answers 411 to a chunked body it would pass to FastCGI")
    body = tmp_path / "body"
    body.write_bytes(os.urandom(5 * MiB))
    code, out = curl("-H", "Transfer-Encoding: chunked", "--data-binary", "@" + str(body),
                     web.url + web.unbuffered_path("count"), timeout=60)
    assert code == 200
    assert out.strip() == str(5 * MiB).encode()


def test_streaming(web):
    conn = http.client.HTTPConnection("127.0.0.1", web.port, timeout=10)
    start = time.monotonic()
    conn.request("GET", web.stream_path("stream"))
    resp = conn.getresponse()
    assert resp.status == 200
    first = resp.readline()
    t_first = time.monotonic() - start
    rest = resp.read()
    t_all = time.monotonic() - start
    conn.close()
    assert b"first" in first
    assert b"second" in rest
    # The script sleeps 2 s between its lines: buffered output would
    # arrive all at once.
    assert t_all - t_first >= 1.0, "the first line came with the second"
    assert t_first < 5, "first line after %.2fs" % t_first


def test_overloaded_post_gets_its_503(tmp_path, start_daemon):
    # nginx sends the body of a POST as fast as fcgiwrap reads it, and
    # fcgiwrap stops reading while the request waits for a slot: the rest
    # is read after the wait, with --peer-timeout between bytes from then
    # on.  (It used to be cut at once when the wait had lasted past the
    # head's --peer-timeout: a 502.)
    d = start_daemon(["-c", "1", "--queue-timeout", "1", "--peer-timeout", "1"])
    server = Nginx(tmp_path, "unix:" + d.address)
    try:
        slow = threading.Thread(target=curl, args=(server.url + "/cgi-bin/behave.sh?sleep=6",))
        slow.start()
        assert wait_for(lambda: children_of(d.proc.pid), 10)
        body = tmp_path / "body"
        body.write_bytes(b"z" * (16 * MiB))
        code, _ = curl("--data-binary", "@" + str(body), server.url + "/cgi-bin/behave.sh?count")
        assert code == 503, server.error_log()[-2000:]
        slow.join()
    finally:
        server.stop()
    assert "sent no body bytes" not in d.log()


def test_cgi_bin_example(tmp_path, start_daemon):
    # examples/nginx-cgi-bin.conf as it is, but for its two paths.
    root = tmp_path / "usr-lib"
    (root / "cgi-bin").mkdir(parents=True)
    shutil.copy(os.path.join(CGI_DIR, "echo.sh"), root / "cgi-bin" / "echo.sh")
    os.chmod(root / "cgi-bin" / "echo.sh", 0o755)
    d = start_daemon()
    location = open(os.path.join(TOP_SRCDIR, "examples", "nginx-cgi-bin.conf")).read() \
        .replace("/usr/lib", str(root)).replace("unix:/run/fcgiwrap.socket", "unix:" + d.address)
    ngx = nginx_with(tmp_path, location, "cgi-bin")
    try:
        code, body = curl("--data-binary", "abc", ngx.url + "/cgi-bin/echo.sh/extra?q=1")
        assert code == 200
        assert b"SCRIPT_NAME=/cgi-bin/echo.sh\n" in body
        assert b"PATH_INFO=/extra\n" in body
        assert b"QUERY_STRING=q=1\n" in body
        assert b"BODY=abc\n" in body
    finally:
        ngx.stop()
