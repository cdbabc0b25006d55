"""Real CGI programs through a real nginx: git-http-backend."""

import hashlib
import os
import shutil
import signal
import subprocess

from conftest import NGINX, TOP_SRCDIR, can_connect, free_port, wait_for

MiB = 1024 * 1024
GIT_HTTP_BACKEND = "/usr/lib/git-core/git-http-backend"


def nginx_with(tmp_path, include, name):
    port = free_port()
    d = tmp_path / ("nginx-" + name)
    d.mkdir()
    (d / "site.conf").write_text(include)
    shutil.copy("/etc/nginx/fastcgi_params", d / "fastcgi_params")
    (d / "nginx.conf").write_text("""
daemon off; master_process off; user root; error_log %(d)s/error.log; pid %(d)s/nginx.pid;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path %(d)s/b; fastcgi_temp_path %(d)s/f; proxy_temp_path %(d)s/p;
    uwsgi_temp_path %(d)s/u; scgi_temp_path %(d)s/s;
    server {
        listen 127.0.0.1:%(port)d;
        include %(d)s/site.conf;
    }
}
""" % {"d": d, "port": port})
    p = subprocess.Popen([NGINX, "-p", str(d), "-c", str(d / "nginx.conf")])
    assert wait_for(lambda: can_connect(("127.0.0.1", port)))
    return p, port, d


def git(*args, cwd=None, env=None):
    full_env = dict(os.environ, GIT_TERMINAL_PROMPT="0", GIT_CONFIG_NOSYSTEM="1", HOME=str(cwd or "/tmp"))
    full_env.update(env or {})
    return subprocess.run(["git"] + list(args), cwd=cwd, env=full_env, capture_output=True, text=True,
                          timeout=300, check=True)


def test_git_http_backend_clone_push_fetch(tmp_path, start_daemon):
    # The example as it is, but for its paths; basic auth for pushes.
    srv = tmp_path / "srv-git"
    srv.mkdir()
    git("init", "-q", "--bare", "-b", "main", str(srv / "repo.git"))
    git("config", "http.receivepack", "true", cwd=srv / "repo.git")
    htpasswd = tmp_path / "htpasswd"
    pw_hash = subprocess.run(["openssl", "passwd", "-apr1", "secret"], capture_output=True, text=True,
                             check=True).stdout.strip()
    htpasswd.write_text("alice:%s\n" % pw_hash)
    d = start_daemon(["--access-log", str(tmp_path / "access.log")])
    conf = open(os.path.join(TOP_SRCDIR, "examples", "nginx-git-http-backend.conf")).read() \
        .replace("/srv/git", str(srv)).replace("/etc/nginx/git.htpasswd", str(htpasswd)) \
        .replace("unix:/run/fcgiwrap.socket", "unix:" + d.address)
    ngx, port, ngx_dir = nginx_with(tmp_path, conf, "git")
    try:
        url = "http://127.0.0.1:%d/git/repo.git" % port
        work = tmp_path / "work"
        git("clone", "-q", url, str(work))
        git("config", "user.email", "t@example.org", cwd=work)
        git("config", "user.name", "T", cwd=work)
        big = os.urandom(50 * MiB + 123)
        (work / "big.bin").write_bytes(big)
        git("add", "big.bin", cwd=work)
        git("commit", "-q", "-m", "big", cwd=work)
        # Without credentials nginx refuses the push.
        r = subprocess.run(["git", "push", "-q", url, "main"], cwd=work, capture_output=True, text=True,
                           env=dict(os.environ, GIT_TERMINAL_PROMPT="0"), timeout=300)
        assert r.returncode != 0
        authed = "http://alice:secret@127.0.0.1:%d/git/repo.git" % port
        git("push", "-q", authed, "main", cwd=work)
        # A second clone gets the 50 MiB file back intact.
        other = tmp_path / "other"
        git("clone", "-q", url, str(other))
        assert hashlib.sha256((other / "big.bin").read_bytes()).digest() == hashlib.sha256(big).digest()
        # And a fetch after one more push.
        (work / "small.txt").write_text("hello\n")
        git("add", "small.txt", cwd=work)
        git("commit", "-q", "-m", "small", cwd=work)
        git("push", "-q", authed, "main", cwd=work)
        git("fetch", "-q", "origin", cwd=other)
        git("merge", "-q", "--ff-only", "origin/main", cwd=other)
        assert (other / "small.txt").read_text() == "hello\n"
    finally:
        ngx.send_signal(signal.SIGQUIT)
        ngx.wait(10)
    log = (tmp_path / "access.log").read_text()
    assert "git-receive-pack" in log
    assert " 200 " in log
