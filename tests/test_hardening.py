"""What a security review found: each defect reproduced through a real
socket or a real nginx, and fixed."""

import os

from conftest import CGI_DIR, curl, nginx_with, stop_nginx, wait_for


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
    p, port, _ = nginx_with(tmp_path, site, "inject")
    try:
        code, _ = curl("http://127.0.0.1:%d/cgi-bin/x%%0A%%3C0%%3Eforged%%5Cline%%0D%%1B%%7F" % port)
    finally:
        stop_nginx(p)
    assert code == 404
    assert wait_for(lambda: "script not found" in d.log())
    lines = d.log().splitlines()
    assert not any(line.startswith("<0>") or line.startswith("forged") for line in lines), lines
    assert any(line.startswith("<4>") and "/cgi-bin/x\\x0a<0>forged\\x5cline\\x0d\\x1b\\x7f: script not found"
               in line for line in lines), lines
    assert wait_for(lambda: access.exists() and access.read_text().count("\n") == 1)
    entry = access.read_text()
    assert "/x\\x0a<0>forged\\x5cline\\x0d\\x1b\\x7f" in entry, entry
