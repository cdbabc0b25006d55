"""FastCGI as a web server speaks it, or a broken or hostile one: management
records at any moment, records of other request ids, padding, roles, kept
connections, hostile lengths, malformed input.  Each is read by the
daemon's own record reader; after each, the daemon is the same process,
still serving."""

import os
import shutil
import socket
import struct
import subprocess
import time

import fcgi_client as fc
import pytest
from conftest import CGI_DIR, HELLO_CGI, assert_still_serving, cgi_params, env_of, read_until_end, wait_for

CANT_MPX_CONN, UNKNOWN_ROLE = 1, 3


def decode_pairs(content):
    out, pos = [], 0
    while pos < len(content):
        lens = []
        for _ in range(2):
            if content[pos] & 0x80:
                lens.append(struct.unpack(">I", content[pos:pos + 4])[0] & 0x7fffffff)
                pos += 4
            else:
                lens.append(content[pos])
                pos += 1
        out.append((content[pos:pos + lens[0]].decode(), content[pos + lens[0]:pos + sum(lens)].decode()))
        pos += sum(lens)
    return out


def test_get_values_with_a_repeated_name(start_daemon):
    # libfcgi's handler overflows a 64-byte stack buffer here and the
    # whole daemon dies ("stack smashing detected").
    d = start_daemon(["--max-connections", "7"])
    with fc.Client(d.address) as c:
        c.send(fc.get_values(*["FCGI_MPXS_CONNS"] * 8))
        rtype, rid, content = c.read_record()
        assert (rtype, rid) == (fc.GET_VALUES_RESULT, 0)
        assert decode_pairs(content) == [("FCGI_MPXS_CONNS", "0")]
        c.send(fc.get_values("FCGI_MAX_CONNS", "NOT_A_VARIABLE", "FCGI_MAX_REQS", "FCGI_MAX_CONNS"))
        rtype, rid, content = c.read_record()
        assert decode_pairs(content) == [("FCGI_MAX_CONNS", "7"), ("FCGI_MAX_REQS", "7")]
        # The same connection then serves a request.
        r = c.request(cgi_params(query="hello"))
        assert r.body == b"hello\n"
    assert_still_serving(d)


def test_management_records_during_the_body(daemon):
    body1, body2 = os.urandom(100000), os.urandom(50000)
    params = cgi_params(query="echo", method="POST", CONTENT_LENGTH=str(len(body1) + len(body2)))
    with fc.Client(daemon.address) as c:
        c.send(fc.request_head(params))
        c.send_stdin(body1, end=False)
        c.send(fc.get_values(*["FCGI_MPXS_CONNS"] * 8) + fc.record(42, 0, b"junk that is not body", 3))
        # Answered at once, while the response is still held back.
        rtype, _, content = c.read_record()
        assert rtype == fc.GET_VALUES_RESULT and decode_pairs(content) == [("FCGI_MPXS_CONNS", "0")]
        rtype, _, content = c.read_record()
        assert rtype == fc.UNKNOWN_TYPE and content[0] == 42
        c.send_stdin(body2)
        r, others = read_until_end(c)
    assert others == []
    # Nothing of the management records reached the script's stdin.
    assert r.body == body1 + body2


def test_begin_request_with_id_0_is_a_management_record(daemon):
    with fc.Client(daemon.address) as c:
        c.send(fc.begin_record(request_id=0))
        rtype, rid, content = c.read_record()
        assert (rtype, rid, content[0]) == (fc.UNKNOWN_TYPE, 0, fc.BEGIN_REQUEST)
        assert c.request(cgi_params(query="hello")).body == b"hello\n"


def test_second_request_on_a_connection_is_refused(daemon):
    with fc.Client(daemon.address) as c:
        c.send(fc.begin_record(1) + fc.begin_record(2)
               + fc.stream_records(fc.PARAMS, 1, fc.encode_params(cgi_params(query="hello"))))
        c.send(fc.record(fc.STDIN, 1))
        r, others = read_until_end(c)
    assert r.body == b"hello\n"
    assert [(t, rid, struct.unpack(">IB3x", content)[1]) for t, rid, content in others] == \
        [(fc.END_REQUEST, 2, CANT_MPX_CONN)]


def test_records_of_other_ids_are_ignored(daemon):
    # An empty record of another id made libfcgi drop the next record of
    # the request; records before BEGIN_REQUEST are ignored too
    # (specification 3.3: records of an inactive id are ignored).
    body = b"abc" * 1000
    params = cgi_params(query="echo", method="POST", CONTENT_LENGTH=str(len(body) + 3))
    with fc.Client(daemon.address) as c:
        c.send(fc.record(fc.STDIN, 1, b"before") + fc.record(fc.ABORT_REQUEST, 5) + fc.request_head(params))
        c.send(fc.record(fc.STDIN, 2) + fc.record(fc.STDIN, 1, body) + fc.record(fc.PARAMS, 3, b"zzz", 5)
               + fc.record(fc.STDIN, 3, b"not this") + fc.record(fc.STDIN, 1, b"end") + fc.record(fc.STDIN, 1))
        r, others = read_until_end(c)
    assert r.body == body + b"end"
    assert others == []
    assert wait_for(lambda: "ignoring records of request 1, which is not active" in daemon.log())


def test_padded_records(daemon):
    # libfcgi lost every parameter of a padded BEGIN_REQUEST.
    params = fc.encode_params(cgi_params(query="env", method="POST", CONTENT_LENGTH="2", PADDED="yes"))
    with fc.Client(daemon.address) as c:
        c.send(fc.begin_record(padding=7) + fc.record(fc.PARAMS, 1, params, 255) + fc.record(fc.PARAMS, 1, b"", 3)
               + fc.record(fc.STDIN, 1, b"hi", 6) + fc.record(fc.STDIN, 1, b"", 255))
        r = c.read_response()
    assert r.status == 200 and "PADDED=yes" in r.body.decode()


def test_duplicate_param_first_wins(daemon):
    params = fc.encode_params(cgi_params(query="env")) + fc.encode_params({"DUP": "first"}) \
        + fc.encode_params({"DUP": "second"})
    with fc.Client(daemon.address) as c:
        c.send(fc.begin_record() + fc.stream_records(fc.PARAMS, 1, params) + fc.record(fc.STDIN, 1))
        r = c.read_response()
    assert env_of(r)["DUP"] == "first"


def test_huge_param_lengths(daemon):
    # A name and a value claiming 2 GiB each: libfcgi allocates 4 GiB.
    claim = struct.pack(">II", 0xffffffff, 0xffffffff) + b"x" * 16
    with fc.Client(daemon.address) as c:
        c.send(fc.begin_record() + fc.record(fc.PARAMS, 1, claim) + fc.record(fc.PARAMS, 1))
        assert fc.is_closed(c.sock, 5)
    assert wait_for(lambda: "malformed PARAMS: a name or value runs past the end of the stream" in daemon.log())
    assert_still_serving(daemon)


def test_other_roles_refused_by_protocol_status(daemon):
    for role in (2, 3, 9):
        with fc.Client(daemon.address) as c:
            c.send(fc.request_head(cgi_params(query="hello"), role=role))
            r = c.read_response()
            assert r.protocol_status == UNKNOWN_ROLE and r.stdout == b""
            assert fc.is_closed(c.sock, 5)
    assert wait_for(lambda: "FastCGI role 9 refused" in daemon.log())
    assert_still_serving(daemon)


def test_keep_conn(daemon):
    with fc.Client(daemon.address) as c:
        for i in range(3):
            r = c.request(cgi_params(query="hello"), request_id=i + 1, keep_conn=True)
            assert r.body == b"hello\n"
            assert r.app_status == 0
        r = c.request(cgi_params(query="exit=4"), request_id=9, keep_conn=True)
        assert r.app_status == 4
        # Without FCGI_KEEP_CONN the daemon closes after the response.
        r = c.request(cgi_params(query="hello"), request_id=10, keep_conn=False)
        assert r.body == b"hello\n"
        assert fc.is_closed(c.sock, 10)


def test_connection_closed_without_keep_conn(daemon):
    with fc.Client(daemon.address) as c:
        c.request(cgi_params(query="hello"))
        assert fc.is_closed(c.sock, 10)


def test_small_response_is_one_record(daemon):
    # The CGI header block and the body bytes read with it leave in one
    # STDOUT record (one sendmsg), not one for the header and one for the
    # body.
    r = fc.request(daemon.address, {"SCRIPT_FILENAME": HELLO_CGI, "REQUEST_METHOD": "GET"})
    assert r.body == b"Hello, world!\n"
    stdout = [content for _, rtype, content in r.events if rtype == fc.STDOUT and content]
    assert len(stdout) == 1 and stdout[0].endswith(b"\r\n\r\nHello, world!\n")


# Malformed input, each on a connection of its own.
BEGIN = fc.begin_record()
PARAMS = fc.stream_records(fc.PARAMS, 1, fc.encode_params(cgi_params(query="hello")))

MALFORMED = [
    ("bad version", b"\x02" + BEGIN[1:] + PARAMS, "unsupported FastCGI version"),
    ("http request", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "unsupported FastCGI version"),
    ("short BEGIN", fc.record(fc.BEGIN_REQUEST, 1, b"\0\1\0"), "malformed BEGIN_REQUEST"),
    ("BEGIN for the active request", BEGIN + BEGIN, "BEGIN_REQUEST for request 1, which is active already"),
    ("STDIN inside PARAMS", BEGIN + fc.record(fc.PARAMS, 1, b"\x01\x01ab") + fc.record(fc.STDIN, 1, b"x"),
     "other than PARAMS"),
    ("unknown type inside PARAMS", BEGIN + fc.record(42, 1, b"x"), "other than PARAMS"),
    ("huge PARAMS", BEGIN + fc.stream_records(fc.PARAMS, 1, fc.encode_params({"BIG": "x" * 200000})),
     "larger than 131072"),
    ("huge record length", BEGIN + struct.pack(">BBHHBB", 1, fc.PARAMS, 1, 65535, 255, 0) + b"\0" * 70000,
     None),
    ("truncated then closed", BEGIN[:5], "closed before a complete request"),
    ("params truncated then closed", BEGIN + PARAMS[:20], "closed before a complete request"),
    ("bad name length", BEGIN + fc.record(fc.PARAMS, 1, b"\x80\x00\x00\x10ab") + fc.record(fc.PARAMS, 1), None),
]


@pytest.mark.parametrize("name,data,log", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_input_fails_only_its_connection(start_daemon, name, data, log):
    d = start_daemon(["--peer-timeout", "2"])
    s = socket.socket(socket.AF_UNIX)
    s.connect(d.address)
    try:
        s.sendall(data)
    except OSError:
        pass
    if "closed" in name:
        s.shutdown(socket.SHUT_WR)
    assert fc.is_closed(s, 4), name
    s.close()
    if log:
        assert wait_for(lambda: log in d.log()), d.log()
    r = fc.request(d.address, cgi_params(query="hello"))
    assert r.status == 200 and r.body == b"hello\n"
    assert d.proc.poll() is None


def test_endless_params(start_daemon):
    # The daemon reads the PARAMS stream as it comes, so it outgrows the
    # head limit long before --peer-timeout.
    d = start_daemon(["--peer-timeout", "20"])
    s = socket.socket(socket.AF_UNIX)
    s.connect(d.address)
    s.sendall(BEGIN)
    sent = 0
    s.settimeout(3)
    try:
        while sent < 4 * 1024 * 1024:
            s.sendall(fc.record(fc.PARAMS, 1, fc.encode_params({"N%d" % sent: "v" * 8000})))
            sent += 8000
    except OSError:
        pass
    assert fc.is_closed(s, 5)
    assert wait_for(lambda: "request head (PARAMS) larger than 131072 bytes" in d.log())
    assert fc.request(d.address, cgi_params(query="hello")).status == 200


def test_bad_record_in_body_aborts_request(start_daemon):
    d = start_daemon()
    with fc.Client(d.address) as c:
        c.begin(cgi_params(query="count", method="POST", CONTENT_LENGTH="10"))
        c.send(fc.record(fc.STDIN, 1, b"12345") + b"\x09" + fc.record(fc.STDIN, 1, b"12345")[1:])
        assert fc.is_closed(c.sock, 5)
    assert wait_for(lambda: "unsupported FastCGI version 9" in d.log())
    assert fc.request(d.address, cgi_params(query="hello")).status == 200


def test_garbage_fails_only_that_connection(daemon):
    for junk in [b"\x00" * 16, b"GET / HTTP/1.0\r\n\r\n",
                 fc.record(fc.BEGIN_REQUEST, 1, b"short")]:
        s = socket.socket(socket.AF_UNIX)
        s.connect(daemon.address)
        s.sendall(junk)
        assert fc.is_closed(s, 5), junk
        s.close()
    assert fc.request(daemon.address, cgi_params(query="hello")).status == 200


def test_refused_connection_is_closed_while_bytes_keep_coming(daemon):
    # libfcgi went on reading a refused connection for as long as bytes
    # came less than 100 ms apart.
    s = socket.socket(socket.AF_UNIX)
    s.connect(daemon.address)
    s.sendall(b"\x07" + fc.begin_record()[1:])
    start = time.monotonic()
    closed_at = None
    try:
        while time.monotonic() - start < 15:
            s.send(b"x")
            time.sleep(0.05)
    except OSError:
        closed_at = time.monotonic()
    s.close()
    assert closed_at is not None and closed_at - start < 5
    assert "unsupported FastCGI version 7" in daemon.log()
    assert_still_serving(daemon)


def test_cgi_fcgi_client(daemon):
    # libfcgi's own client, as a second, independent implementation.
    cgi_fcgi = shutil.which("cgi-fcgi")
    if not cgi_fcgi:
        pytest.fail("cgi-fcgi is required (apt-get install libfcgi-bin)")
    body = os.urandom(300000)
    env = {"SCRIPT_FILENAME": os.path.join(CGI_DIR, "behave.sh"), "QUERY_STRING": "echo",
           "REQUEST_METHOD": "POST", "CONTENT_LENGTH": str(len(body))}
    out = subprocess.run([cgi_fcgi, "-bind", "-connect", daemon.address], input=body, env=env,
                         capture_output=True, timeout=30)
    assert out.returncode == 0, out.stderr
    headers, _, got = out.stdout.partition(b"\r\n\r\n")
    assert headers == b"Content-Type: application/octet-stream"
    assert got == body
