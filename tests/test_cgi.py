"""CGI/1.1 (RFC 3875) through a real nginx: NPH, redirects, HEAD, scripts
in several languages, failing scripts, large bodies both ways."""

import hashlib
import http.client
import os
import socket

import fcgi_client as fc
from conftest import cgi_params, curl, wait_for

MiB = 1024 * 1024


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


def test_content_length_mismatch_logged(daemon):
    r = fc.request(daemon.address, cgi_params(query="count", method="POST", CONTENT_LENGTH="10"), b"12345")
    assert r.body.strip() == b"5"
    assert wait_for(lambda: "CONTENT_LENGTH is 10 but the body had 5 bytes" in daemon.log())
