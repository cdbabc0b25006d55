"""Secure by default: each rule attacked from outside."""

import os

import fcgi_client as fc
from conftest import cgi_params, curl


def env_of(response):
    return dict(line.split("=", 1) for line in response.body.decode().splitlines() if "=" in line)


def test_loader_and_shell_variables_dropped(daemon):
    r = fc.request(daemon.address, cgi_params(query="env", LD_PRELOAD="/tmp/evil.so",
                                              LD_LIBRARY_PATH="/tmp", BASH_ENV="/tmp/evil.sh",
                                              GCONV_PATH="/tmp", PERL5OPT="-Mevil", HTTP_PROXY="http://evil:1",
                                              HTTP_X_OK="kept"))
    e = env_of(r)
    for name in ("LD_PRELOAD", "LD_LIBRARY_PATH", "BASH_ENV", "GCONV_PATH", "PERL5OPT", "HTTP_PROXY"):
        assert name not in e, name
    assert e["HTTP_X_OK"] == "kept"


def test_httpoxy_through_nginx(nginx):
    code, body = curl("-H", "Proxy: http://evil.example:8080", nginx.url + "/cgi-bin/behave.sh?env")
    assert code == 200
    assert b"HTTP_PROXY" not in body
    assert b"HTTP_HOST=127.0.0.1" in body


def test_env_options(start_daemon):
    d = start_daemon(["--env", "APP_MODE=production", "--env", "LD_LIBRARY_PATH=/opt/lib",
                      "--pass-env", "HTTPS"],
                     env={"PATH": "/usr/bin:/bin", "HTTPS": "daemon", "OTHER": "x"})
    e = env_of(fc.request(d.address, cgi_params(query="env", APP_MODE="from-param")))
    assert e["APP_MODE"] == "production"        # --env wins over a param
    assert e["LD_LIBRARY_PATH"] == "/opt/lib"   # the operator may set what a peer may not
    assert e["HTTPS"] == "daemon"               # --pass-env passes a filtered name
    assert e["OTHER"] == "x"


def test_clear_env_and_default_path(start_daemon):
    d = start_daemon(["--clear-env", "--pass-env", "KEEP"],
                     env={"PATH": "/custom/bin:/usr/bin:/bin", "KEEP": "1", "DROP": "1"})
    e = env_of(fc.request(d.address, cgi_params(query="env")))
    assert e["KEEP"] == "1"
    assert "DROP" not in e
    assert e["PATH"] == "/usr/local/bin:/usr/bin:/bin"
    # The web server's PATH param wins over the default.
    e = env_of(fc.request(d.address, cgi_params(query="env", PATH="/usr/bin:/bin")))
    assert e["PATH"] == "/usr/bin:/bin"
