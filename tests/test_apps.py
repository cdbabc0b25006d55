"""Real CGI programs through a real nginx: git-http-backend, cgit, one
instance per user."""

import hashlib
import os
import pwd
import shutil
import subprocess
import tempfile

import pytest
from conftest import CGI_DIR, TOP_SRCDIR, curl, example_daemon_opts, nginx_with

MiB = 1024 * 1024
GIT_HTTP_BACKEND = "/usr/lib/git-core/git-http-backend"


def git(*args, cwd=None, env=None):
    full_env = dict(os.environ, GIT_TERMINAL_PROMPT="0", GIT_CONFIG_NOSYSTEM="1", HOME=str(cwd or "/tmp"))
    full_env.update(env or {})
    return subprocess.run(["git"] + list(args), cwd=cwd, env=full_env, capture_output=True, text=True,
                          timeout=300, check=True)


def sandbox_example(tmp_path, srv):
    """The options of examples/fcgiwrap-git.default, but for their paths."""
    cache = tmp_path / "cgit-cache"
    cache.mkdir(exist_ok=True)
    opts = example_daemon_opts("fcgiwrap-git.default")
    return [o.replace("/srv/git", str(srv)).replace("/var/cache/cgit", str(cache)) for o in opts]


@pytest.mark.parametrize("sandboxed", [False, True])
def test_git_http_backend_clone_push_fetch(tmp_path, start_daemon, sandboxed):
    # The example as it is, but for its paths; basic auth for pushes.  And
    # the same under the sandbox of examples/fcgiwrap-git.default: git
    # writes only to the repositories.
    srv = tmp_path / "srv-git"
    srv.mkdir()
    git("init", "-q", "--bare", "-b", "main", str(srv / "repo.git"))
    git("config", "http.receivepack", "true", cwd=srv / "repo.git")
    htpasswd = tmp_path / "htpasswd"
    pw_hash = subprocess.run(["openssl", "passwd", "-apr1", "secret"], capture_output=True, text=True,
                             check=True).stdout.strip()
    htpasswd.write_text("alice:%s\n" % pw_hash)
    d = start_daemon(["--access-log", str(tmp_path / "access.log")]
                     + (sandbox_example(tmp_path, srv) if sandboxed else []))
    if sandboxed:
        assert "sandbox: Landlock ABI" in d.log()
    conf = open(os.path.join(TOP_SRCDIR, "examples", "nginx-git-http-backend.conf")).read() \
        .replace("/srv/git", str(srv)).replace("/etc/nginx/git.htpasswd", str(htpasswd)) \
        .replace("unix:/run/fcgiwrap.socket", "unix:" + d.address)
    ngx = nginx_with(tmp_path, conf, "git")
    try:
        url = ngx.url + "/git/repo.git"
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
        authed = "http://alice:secret@127.0.0.1:%d/git/repo.git" % ngx.port
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
        ngx.stop()
    log = (tmp_path / "access.log").read_text()
    assert "git-receive-pack" in log
    assert " 200 " in log


@pytest.mark.parametrize("sandboxed", [False, True])
def test_cgit(tmp_path, start_daemon, sandboxed):
    srv = tmp_path / "srv-git"
    srv.mkdir()
    work = tmp_path / "work"
    git("init", "-q", "-b", "main", str(work))
    (work / "README").write_text("hello cgit\n")
    git("add", "README", cwd=work)
    git("-c", "user.name=T", "-c", "user.email=t@example.org", "commit", "-q", "-m", "First commit for cgit",
        cwd=work)
    git("clone", "-q", "--bare", str(work), str(srv / "demo.git"))
    # Beside the repositories, where the sandbox lets cgit read it (the
    # real one is /etc/cgitrc, under /etc).
    cgitrc = srv / "cgitrc"
    cgitrc.write_text("virtual-root=/cgit/\ncss=/cgit-static/cgit.css\nlogo=/cgit-static/cgit.png\n"
                      "cache-size=0\nscan-path=%s\n" % srv)
    d = start_daemon(sandbox_example(tmp_path, srv) if sandboxed else [])
    conf = open(os.path.join(TOP_SRCDIR, "examples", "nginx-cgit.conf")).read() \
        .replace("/etc/cgitrc", str(cgitrc)).replace("unix:/run/fcgiwrap.socket", "unix:" + d.address)
    ngx = nginx_with(tmp_path, conf, "cgit")
    try:
        base = ngx.url
        code, body = curl(base + "/cgit/")
        assert code == 200 and b"demo.git" in body
        code, body = curl(base + "/cgit/demo.git/log/")
        assert code == 200 and b"First commit for cgit" in body
        code, body = curl(base + "/cgit/demo.git/plain/README")
        assert code == 200 and body == b"hello cgit\n"
        assert curl(base + "/cgit-static/cgit.css")[0] == 200
    finally:
        ngx.stop()


def test_per_user_instance(tmp_path, start_daemon):
    # examples/nginx-per-user.conf, with a home and a run directory of the
    # test's own: the user nobody's instance runs nobody's script as nobody.
    base = tempfile.mkdtemp(prefix="fcgiwrap-home.")
    try:
        os.chmod(base, 0o755)
        cgi_bin = os.path.join(base, "home", "nobody", "public_html", "cgi-bin")
        os.makedirs(cgi_bin)
        for dirpath in (os.path.join(base, "home"), os.path.join(base, "home", "nobody"),
                        os.path.dirname(cgi_bin), cgi_bin):
            os.chmod(dirpath, 0o755)
        shutil.copy(os.path.join(CGI_DIR, "behave.sh"), os.path.join(cgi_bin, "app.cgi"))
        os.chmod(os.path.join(cgi_bin, "app.cgi"), 0o755)
        run = tmp_path / "run" / "fcgiwrap"
        run.mkdir(parents=True)
        start_daemon(["--user", "nobody"], socket_url="unix:%s/nobody.sock" % run)
        conf = open(os.path.join(TOP_SRCDIR, "examples", "nginx-per-user.conf")).read() \
            .replace("/home/", base + "/home/").replace("unix:/run/fcgiwrap/", "unix:%s/" % run)
        ngx = nginx_with(tmp_path, conf, "per-user")
        try:
            code, body = curl(ngx.url + "/~nobody/cgi-bin/app.cgi/extra?id")
            assert code == 200
            assert body.startswith(b"uid=%d " % pwd.getpwnam("nobody").pw_uid)
            code, body = curl(ngx.url + "/~nobody/cgi-bin/app.cgi/extra?env")
            assert b"PATH_INFO=/extra\n" in body and b"SCRIPT_NAME=/~nobody/cgi-bin/app.cgi\n" in body
        finally:
            ngx.stop()
    finally:
        shutil.rmtree(base)
