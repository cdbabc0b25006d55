"""Requests over FastCGI straight to the daemon: what a script is given and
what comes back."""

import os
import socket
import struct

import fcgi_client as fc
from conftest import CGI_DIR, cgi_params, env_of, wait_for


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


def test_duplicate_param_first_wins(daemon):
    params = fc.encode_params(cgi_params(query="env")) + fc.encode_params({"DUP": "first"}) \
        + fc.encode_params({"DUP": "second"})
    with fc.Client(daemon.address) as c:
        c.send(fc.record(fc.BEGIN_REQUEST, 1, struct.pack(">HB5x", 1, 0))
               + fc.stream_records(fc.PARAMS, 1, params) + fc.record(fc.STDIN, 1))
        r = c.read_response()
    assert env_of(r)["DUP"] == "first"


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


def test_allow_program(start_daemon):
    allowed = os.path.join(CGI_DIR, "echo.sh")
    d = start_daemon(["-p", allowed])
    assert fc.request(d.address, cgi_params("echo.sh")).status == 200
    r = fc.request(d.address, cgi_params(query="hello"))
    assert r.status == 403
    assert wait_for(lambda: "script refused: not allowed by -p" in d.log())


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


def test_body_delivered_exactly(daemon):
    body = os.urandom(3 * 1024 * 1024 + 7)
    r = fc.request(daemon.address, cgi_params(query="echo", method="POST",
                                              CONTENT_LENGTH=str(len(body))), body)
    assert r.body == body


def test_garbage_fails_only_that_connection(daemon):
    for junk in [b"\x00" * 16, b"GET / HTTP/1.0\r\n\r\n",
                 fc.record(fc.BEGIN_REQUEST, 1, b"short")]:
        s = socket.socket(socket.AF_UNIX)
        s.connect(daemon.address)
        s.sendall(junk)
        assert fc.is_closed(s, 5), junk
        s.close()
    assert fc.request(daemon.address, cgi_params(query="hello")).status == 200
