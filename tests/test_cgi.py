"""CGI/1.1 (RFC 3875): what a script is given (its environment, PATH_INFO,
its directory) and what comes back (headers, status, stderr, the exit
status, the errors fcgiwrap answers itself); the body and the output
relayed both ways at once; then the same rules as a client sees them
through each web server (NPH, redirects, HEAD, scripts in several
languages, large bodies)."""

import hashlib
import http.client
import os
import socket
import time

import fcgi_client as fc
from conftest import CGI_DIR, cgi_params, children_of, curl, env_of, wait_for

MiB = 1024 * 1024


def test_hello(daemon):
    r = fc.request(daemon.address, cgi_params(query="hello"))
    assert r.protocol_status == 0 and r.app_status == 0
    assert r.status == 200
    assert r.header("Content-Type") == "text/plain"
    assert r.body == b"hello\n"


def test_lf_headers_become_crlf(daemon):
    r = fc.request(daemon.address, cgi_params(query="pwd"))
    assert r.stdout.startswith(b"Content-Type: text/plain\r\n\r\n")


def test_status_and_location_pass_through(daemon):
    r = fc.request(daemon.address, cgi_params(query="status"))
    assert r.header("Status") == "418 I am a teapot"
    r = fc.request(daemon.address, cgi_params(query="location"))
    assert r.header("Location") == "http://example.com/elsewhere"


def test_environment(start_daemon):
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "FROM_DAEMON": "yes",
           "HTTP_FROM_DAEMON": "no", "QUERY_STRING": "daemon", "OVERRIDDEN": "daemon"}
    d = start_daemon(env=env)
    r = fc.request(d.address, cgi_params(query="env", HTTP_HOST="example.org", OVERRIDDEN="param"))
    e = env_of(r)
    assert e["HTTP_HOST"] == "example.org"
    assert e["FROM_DAEMON"] == "yes"          # inherited
    assert "HTTP_FROM_DAEMON" not in e         # HTTP* never inherited
    assert e["QUERY_STRING"] == "env"          # CGI variables come from params only
    assert e["OVERRIDDEN"] == "param"
    assert e["GATEWAY_INTERFACE"] == "CGI/1.1"


def test_path_info_from_document_root(daemon):
    params = cgi_params("echo.sh", SCRIPT_FILENAME="", DOCUMENT_ROOT=CGI_DIR,
                        SCRIPT_NAME="/echo.sh/extra/path")
    e = env_of(fc.request(daemon.address, params))
    assert e["SCRIPT_NAME"] == "/echo.sh"
    assert e["PATH_INFO"] == "/extra/path"


def test_path_info_kept_when_script_name_is_exact(daemon):
    params = cgi_params("echo.sh", SCRIPT_FILENAME="", DOCUMENT_ROOT=CGI_DIR,
                        SCRIPT_NAME="/echo.sh", PATH_INFO="/from/server")
    e = env_of(fc.request(daemon.address, params))
    assert e["SCRIPT_NAME"] == "/echo.sh"
    assert e["PATH_INFO"] == "/from/server"


def test_fcgi_chdir(tmp_path, daemon):
    assert fc.request(daemon.address, cgi_params(query="pwd")).body.strip() == CGI_DIR.encode()
    r = fc.request(daemon.address, cgi_params(query="pwd", FCGI_CHDIR=str(tmp_path)))
    assert r.body.strip() == str(tmp_path).encode()
    r = fc.request(daemon.address, cgi_params(query="pwd", FCGI_CHDIR="-"))
    assert r.body.strip() == os.getcwd().encode()
    r = fc.request(daemon.address, cgi_params(query="pwd", FCGI_CHDIR=str(tmp_path / "nope")))
    assert r.status == 403


def test_no_buffering_param_accepted(daemon):
    r = fc.request(daemon.address, cgi_params(query="hello", NO_BUFFERING="1"))
    assert r.body == b"hello\n"


def test_missing_script_is_404(daemon):
    r = fc.request(daemon.address, cgi_params("no-such-script"))
    assert r.status == 404
    assert b"404 Not Found" in r.body
    r = fc.request(daemon.address, cgi_params(SCRIPT_FILENAME="", DOCUMENT_ROOT=CGI_DIR,
                                              SCRIPT_NAME="/missing.cgi/x"))
    assert r.status == 404
    assert wait_for(lambda: "no-such-script: script not found" in daemon.log())


def test_not_executable_is_403(daemon):
    r = fc.request(daemon.address, cgi_params("not-executable.sh"))
    assert r.status == 403
    r = fc.request(daemon.address, cgi_params(SCRIPT_FILENAME=CGI_DIR))
    assert r.status == 403
    assert wait_for(lambda: "not-executable.sh: script refused: not executable" in daemon.log())


def test_no_params_is_404(daemon):
    r = fc.request(daemon.address, {"REQUEST_METHOD": "GET"})
    assert r.status == 404


def test_bad_headers_are_502(daemon):
    for query, reason in [("no-headers", "header line without a field name"),
                          ("blank-first", "blank first line"),
                          ("no-output", "script produced no output")]:
        r = fc.request(daemon.address, cgi_params(query=query))
        assert r.status == 502, query
        assert b"502 Bad Gateway" in r.body
        assert wait_for(lambda: reason in daemon.log()), reason


def test_header_block_limit(daemon):
    # Up to 64 KiB of headers pass whole (a web server may have a lower
    # limit of its own: nginx's fastcgi_buffer_size); more is a 502.
    r = fc.request(daemon.address, cgi_params(query="big-headers=%d" % (60 * 1024)))
    assert r.status == 200 and len(r.header("X-Big")) == 60 * 1024 and r.body == b"body\n"
    r = fc.request(daemon.address, cgi_params(query="big-headers=%d" % (70 * 1024)))
    assert r.status == 502
    assert wait_for(lambda: "header block longer than 65536 bytes" in daemon.log())


def test_exec_failure_is_502(tmp_path, daemon):
    script = tmp_path / "bad-interpreter.cgi"
    script.write_text("#!/nonexistent/interpreter\n")
    script.chmod(0o755)
    r = fc.request(daemon.address, cgi_params(SCRIPT_FILENAME=str(script)))
    assert r.status == 502
    assert wait_for(lambda: "bad-interpreter.cgi: cannot execute script: No such file or directory"
                    in daemon.log())


def test_exit_status_is_app_status(daemon):
    r = fc.request(daemon.address, cgi_params(query="exit=3"))
    assert r.body == b"bye\n"
    assert r.app_status == 3
    assert wait_for(lambda: "exited with status 3" in daemon.log())
    r = fc.request(daemon.address, cgi_params(query="kill-self"))
    assert r.app_status == 128 + 9
    assert wait_for(lambda: "killed by signal 9" in daemon.log())


def test_stderr_goes_to_log(daemon):
    r = fc.request(daemon.address, cgi_params(query="stderr"))
    assert r.body == b"ok\n" and r.stderr == b""
    script = os.path.join(CGI_DIR, "behave.sh")
    assert wait_for(lambda: script + ": line one\n" in daemon.log())
    assert script + ": line two\n" in daemon.log()


def test_stderr_kept_when_output_is_bad(daemon):
    r = fc.request(daemon.address, cgi_params(query="stderr-then-close"))
    assert r.status == 502
    assert wait_for(lambda: "behave.sh: cannot continue" in daemon.log())


def test_stderr_to_fastcgi(start_daemon):
    d = start_daemon(["-f"])
    r = fc.request(d.address, cgi_params(query="stderr"))
    assert r.stderr == b"line one\nline two\n"
    assert r.body == b"ok\n"
    assert "line one" not in d.log()


# ---- the body and the output, both ways at once ----


def test_body_delivered_exactly(daemon):
    body = os.urandom(3 * 1024 * 1024 + 7)
    r = fc.request(daemon.address, cgi_params(query="echo", method="POST",
                                              CONTENT_LENGTH=str(len(body))), body)
    assert r.body == body


def test_stdin_without_a_body_is_dev_null(daemon):
    # A request whose body has ended empty when its script starts (a GET,
    # the head and the empty FCGI_STDIN in one write, as nginx sends it)
    # gives the script /dev/null: end of file at once, as an empty pipe
    # would, without a pipe.  A body, or an end not there yet, is a pipe.
    def stdin_of(r):
        assert r.status == 200
        what, count = r.body.decode().split()
        return what, int(count)

    for _ in range(3):
        assert stdin_of(fc.request(daemon.address, cgi_params(query="stdin"))) == ("/dev/null", 0)
    # Each script's /dev/null is an open file of its own: a lock taken on
    # it goes with the script, and no other script ever meets it.
    assert fc.request(daemon.address, cgi_params(query="lock-devnull")).body == b"free\n"
    assert fc.request(daemon.address, cgi_params(query="lock-stdin")).body == b"locked\n"
    assert fc.request(daemon.address, cgi_params(query="lock-devnull")).body == b"free\n"
    assert stdin_of(fc.request(daemon.address, cgi_params(query="stdin", method="POST", CONTENT_LENGTH="0"))) \
        == ("/dev/null", 0)
    what, count = stdin_of(fc.request(daemon.address, cgi_params(query="stdin", method="POST",
                                                                 CONTENT_LENGTH="3"), b"abc"))
    assert what.startswith("pipe:") and count == 3
    # The end of an empty body sent after the head: not known at the start.
    with fc.Client(daemon.address) as c:
        c.begin(cgi_params(query="stdin"))
        assert wait_for(lambda: "behave.sh" in " ".join(descendant_names(daemon.proc.pid)), 10)
        c.send_stdin(b"")
        what, count = stdin_of(c.read_response())
    assert what.startswith("pipe:") and count == 0


def test_content_length_mismatch_logged(daemon):
    r = fc.request(daemon.address, cgi_params(query="count", method="POST", CONTENT_LENGTH="10"), b"12345")
    assert r.body.strip() == b"5"
    assert wait_for(lambda: "CONTENT_LENGTH is 10 but the body had 5 bytes" in daemon.log())


def test_answer_before_reading_large_body(daemon):
    # The script writes its headers and 1 MiB before reading a 32 MiB body:
    # fcgiwrap 1.1.0 deadlocks here.
    body = b"y" * (32 * MiB)
    r = fc.request(daemon.address, cgi_params(query="answer-first", method="POST",
                                              CONTENT_LENGTH=str(len(body))), body, timeout=60)
    assert r.status == 200
    lines = r.body.split(b"\n")
    assert lines[0] == b"x" * MiB
    assert lines[1] == str(len(body)).encode()


def test_echo_while_reading(daemon):
    # cat writes as it reads: the relay must read output while feeding input.
    body = os.urandom(16 * MiB)
    r = fc.request(daemon.address, cgi_params(query="echo", method="POST",
                                              CONTENT_LENGTH=str(len(body))), body, timeout=60)
    assert r.body == body


def descendant_names(pid):
    """The command names of pid's descendants."""
    names, todo = [], [pid]
    while todo:
        for child, _ in children_of(todo.pop()):
            todo.append(child)
            try:
                with open("/proc/%d/comm" % child) as f:
                    names.append(f.read().strip())
            except OSError:
                pass
    return names


def test_no_output_before_body_ends(daemon):
    # Output the script writes early is held until FCGI_STDIN has ended.
    # 256 KiB of body without its end: more than the pipe holds, so the
    # relay is left reading the script's output, not waiting for the body.
    first = b"a" * (256 * 1024)
    with fc.Client(daemon.address) as c:
        c.begin(cgi_params(query="answer-first", method="POST", CONTENT_LENGTH=str(len(first) + 2)))
        c.send_stdin(first, end=False)
        # wc runs once the script's megabyte of output is written: from
        # then on, only the body's end may release it.
        assert wait_for(lambda: "wc" in descendant_names(daemon.proc.pid), 10)
        c.sock.settimeout(1.0)
        try:
            data = c.sock.recv(1)
        except socket.timeout:
            data = None
        assert data is None, "response bytes arrived before the body ended"
        c.sock.settimeout(20)
        c.send_stdin(b"cd")
        r = c.read_response()
    assert r.body.endswith(b"\n%d\n" % (len(first) + 2))


def test_bad_header_block_answered_before_the_body_ends(start_daemon):
    # The script's output is wrong and it has exited: 502 at once, not
    # after the rest of a body the web server may take long to send.
    d = start_daemon(["--inactivity-timeout", "60", "--peer-timeout", "60"])
    with fc.Client(d.address, timeout=10) as c:
        start = time.monotonic()
        c.send(fc.request_head(cgi_params(query="no-headers", method="POST", CONTENT_LENGTH="100000")))
        c.send_stdin(b"x" * 1000, end=False)
        r = c.read_response()
        assert r.status == 502
        assert time.monotonic() - start < 5
        # The body was not read to its end: the connection is closed.
        assert fc.is_closed(c.sock, 5)
    assert "bad CGI response" in d.log()


def test_streaming_latency(daemon):
    with fc.Client(daemon.address) as c:
        start = time.monotonic()
        c.begin(cgi_params(query="stream"))
        c.send_stdin(b"")
        r = c.read_response()
    first = next(t for t, rtype, content in r.events if rtype == fc.STDOUT and b"first" in content)
    second = next(t for t, rtype, content in r.events if rtype == fc.STDOUT and b"second" in content)
    # The script sleeps 2 s between its lines: held output would arrive
    # all at once.
    assert second - first >= 1.0, "the first line waited for the second"
    assert first - start < 5, "first line took %.2fs" % (first - start)


# ---- through each web server ----


def test_nph_script(web):
    code, body = curl("-D", "-", web.url + "/cgi-bin/nph-status.sh")
    assert code == 201
    assert b"X-NPH: yes" in body and body.endswith(b"nph body\n")


def test_client_redirect_is_302(web):
    out = curl("-D", "-", web.url + "/cgi-bin/behave.sh?location")
    assert out[0] == 302
    assert b"Location: http://example.com/elsewhere" in out[1]


def test_local_redirect_is_302(web):
    out = curl("-D", "-", web.url + "/cgi-bin/behave.sh?local-redirect")
    assert out[0] == 302
    # Passed on as the script wrote it, by all three servers.
    assert b"\r\nLocation: /elsewhere\r\n" in out[1]


def test_redirect_with_status_and_document(web):
    code, body = curl("-D", "-", web.url + "/cgi-bin/behave.sh?moved")
    assert code == 301
    assert b"Location: http://example.com/new" in body and body.endswith(b"moved\n")


def test_head(web):
    # Read as it comes, to the close: curl -I would not read a body.
    s = socket.create_connection(("127.0.0.1", web.port), timeout=10)
    s.sendall(b"HEAD /cgi-bin/behave.sh?hello HTTP/1.0\r\nHost: localhost\r\n\r\n")
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    head, sep, rest = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.") and b" 200 " in head.split(b"\r\n")[0]
    assert b"Content-Type: text/plain" in head
    assert sep and rest == b"", rest


def test_python_script(web):
    assert curl(web.url + "/cgi-bin/hello.py?abc") == (200, b"python says abc\n")


def test_perl_cgi_pm_form_and_upload(web, tmp_path):
    assert curl("-d", "name=Ada+Lovelace", web.url + "/cgi-bin/form.pl") == (200, b"name=Ada Lovelace\n")
    upload = tmp_path / "upload.bin"
    data = os.urandom(20 * MiB)
    upload.write_bytes(data)
    code, body = curl("-F", "name=file test", "-F", "file=@%s" % upload, web.url + "/cgi-bin/form.pl")
    assert code == 200
    assert body == b"name=file test\nsize=%d md5=%s\n" % (len(data), hashlib.md5(data).hexdigest().encode())


def test_script_writing_only_to_stderr(web):
    code, _ = curl(web.url + "/cgi-bin/behave.sh?stderr-only")
    assert code == 502
    assert wait_for(lambda: "behave.sh: only to stderr" in web.daemon.log())
    assert "script produced no output" in web.daemon.log()


def test_nonzero_exit_after_valid_response(web):
    assert curl(web.url + "/cgi-bin/behave.sh?exit=3") == (200, b"bye\n")
    assert wait_for(lambda: "exited with status 3" in web.daemon.log())


def test_gigabyte_download(web):
    conn = http.client.HTTPConnection("127.0.0.1", web.port, timeout=120)
    conn.request("GET", "/cgi-bin/behave.sh?gigabyte")
    resp = conn.getresponse()
    assert resp.status == 200
    got, size = hashlib.sha256(), 0
    while True:
        chunk = resp.read(1 << 20)
        if not chunk:
            break
        got.update(chunk)
        size += len(chunk)
    conn.close()
    want = hashlib.sha256()
    zeros = bytes(1 << 20)
    for _ in range(1024):
        want.update(zeros)
    assert size == 1 << 30
    assert got.digest() == want.digest()
