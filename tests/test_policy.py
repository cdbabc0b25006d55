"""Secure by default, each rule attacked from outside: which scripts may
run (-p, --root, DOCUMENT_ROOT, '..', symlinks, writable files, checked
again after a wait), what reaches them of the environment, as whom they
run (--user, --group, --chroot), and who may connect (the socket's mode
and owner, --allow-from)."""

import grp
import os
import pwd
import shutil
import stat
import tempfile

import fcgi_client as fc
import pytest
from conftest import (CGI_DIR, FAULT_SWAP, HELLO_STATIC, PERL, Daemon, cgi_params, curl, env_of, free_port, need,
                      run_fcgiwrap, start_refused, start_script, status_json, wait_for)


def make_script(path, mode=0o755):
    path.write_text("#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\nran %s\\n' \"$0\"\n")
    path.chmod(mode)
    return path


# ---- which scripts may run ----


def test_allow_program(start_daemon):
    allowed = os.path.join(CGI_DIR, "echo.sh")
    d = start_daemon(["-p", allowed])
    assert fc.request(d.address, cgi_params("echo.sh")).status == 200
    r = fc.request(d.address, cgi_params(query="hello"))
    assert r.status == 403
    assert wait_for(lambda: "script refused: not allowed by -p" in d.log())


def test_allow_program_directory(tmp_path, start_daemon):
    outside = make_script(tmp_path / "outside.cgi")
    d = start_daemon(["-p", CGI_DIR + "/"])
    assert fc.request(d.address, cgi_params(query="hello")).status == 200
    assert fc.request(d.address, cgi_params(SCRIPT_FILENAME=str(outside))).status == 403


def test_root_confines_every_script(tmp_path, start_daemon):
    outside = make_script(tmp_path / "outside.cgi")
    d = start_daemon(["--root", CGI_DIR])
    assert fc.request(d.address, cgi_params(query="hello")).status == 200
    assert fc.request(d.address, cgi_params(SCRIPT_FILENAME=str(outside))).status == 403
    assert "outside every --root" in d.log()


def test_dotdot_out_of_document_root(daemon):
    # Without the rule, the walk would find /bin/sh and run it.
    r = fc.request(daemon.address, cgi_params(SCRIPT_FILENAME="", DOCUMENT_ROOT=CGI_DIR,
                                              SCRIPT_NAME="/../../../../../../bin/sh"))
    assert r.status == 403
    assert "script refused: the path has a '..' segment" in daemon.log()


def test_dotdot_in_script_filename(daemon):
    r = fc.request(daemon.address, cgi_params(SCRIPT_FILENAME=CGI_DIR + "/../cgi/echo.sh"))
    assert r.status == 403


def test_dotdot_refused_before_any_lookup(daemon):
    # 403 whether the file outside exists or not: the answer tells nothing.
    for name in ("/../tests/cgi/echo.sh", "/../no/such/file"):
        r = fc.request(daemon.address, cgi_params(SCRIPT_FILENAME="", DOCUMENT_ROOT=CGI_DIR, SCRIPT_NAME=name))
        assert r.status == 403, name
    assert "the path has a '..' segment" in daemon.log()


@pytest.mark.parametrize("args", [[], ["--allow-symlinks-out"]])
def test_script_name_needs_its_leading_slash(tmp_path, start_daemon, args):
    # DOCUMENT_ROOT + "2.cgi" would be DOCUMENT_ROOT's sibling "...root2.cgi".
    root = tmp_path / "root"
    root.mkdir()
    sibling = tmp_path / "root2.cgi"
    shutil.copy(os.path.join(CGI_DIR, "echo.sh"), sibling)
    os.chmod(sibling, 0o755)
    d = start_daemon(args)
    r = fc.request(d.address, cgi_params(SCRIPT_FILENAME="", DOCUMENT_ROOT=str(root), SCRIPT_NAME="2.cgi"))
    assert r.status == 403
    assert wait_for(lambda: "SCRIPT_NAME does not start with '/'" in d.log())


def test_symlink_out_of_document_root(tmp_path, start_daemon):
    outside = make_script(tmp_path / "outside.cgi")
    docroot = tmp_path / "docroot"
    docroot.mkdir()
    (docroot / "evil.cgi").symlink_to(outside)
    make_script(docroot / "real.cgi")
    (docroot / "alias.cgi").symlink_to(docroot / "real.cgi")
    params = dict(SCRIPT_FILENAME="", DOCUMENT_ROOT=str(docroot))
    d = start_daemon()
    assert fc.request(d.address, cgi_params(SCRIPT_NAME="/evil.cgi", **params)).status == 403
    assert "resolves outside DOCUMENT_ROOT" in d.log()
    # A symlink that stays inside is fine.
    assert fc.request(d.address, cgi_params(SCRIPT_NAME="/alias.cgi", **params)).status == 200
    # SCRIPT_FILENAME is the web server's own choice: honoured as given.
    assert fc.request(d.address, cgi_params(SCRIPT_FILENAME=str(docroot / "evil.cgi"))).status == 200
    relaxed = start_daemon(["--allow-symlinks-out"])
    assert fc.request(relaxed.address, cgi_params(SCRIPT_NAME="/evil.cgi", **params)).status == 200


def test_writable_script_refused(tmp_path, start_daemon):
    script = make_script(tmp_path / "shared.cgi", 0o775)
    d = start_daemon()
    assert fc.request(d.address, cgi_params(SCRIPT_FILENAME=str(script))).status == 403
    assert "writable by group or others" in d.log()
    script.chmod(0o757)
    assert fc.request(d.address, cgi_params(SCRIPT_FILENAME=str(script))).status == 403
    relaxed = start_daemon(["--allow-writable"])
    assert fc.request(relaxed.address, cgi_params(SCRIPT_FILENAME=str(script))).status == 200


@pytest.mark.parametrize("kind", ["program", "mapped"])
def test_script_checked_again_after_waiting_for_a_slot(tmp_path, start_daemon, kind):
    # A symlink inside DOCUMENT_ROOT is swapped to a file outside it while
    # the request waits for a script slot: what would run is checked
    # again, and refused, be it a program or a file run through an
    # --interpreter.
    root = tmp_path / "root"
    outside = tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    marker = tmp_path / "evil-ran"
    args = ["-c", "1", "--queue-timeout", "20", "--status-path", "/status"]
    if kind == "program":
        real, evil, link = root / "real.cgi", outside / "evil.cgi", root / "x.cgi"
        shutil.copy(os.path.join(CGI_DIR, "echo.sh"), real)
        evil.write_text("#!/bin/sh\ntouch %s\nprintf 'Content-Type: text/plain\\n\\nevil\\n'\n" % marker)
        for f in (real, evil):
            os.chmod(f, 0o755)
        params = dict(SCRIPT_FILENAME="", DOCUMENT_ROOT=str(root), SCRIPT_NAME="/x.cgi")
    else:
        need(PERL)
        real, evil, link = root / "real.pl", outside / "evil.pl", root / "x.pl"
        real.write_text('print "Content-Type: text/plain\\n\\nreal\\n";')
        os.chmod(real, 0o644)
        evil.write_text("open(F, '>%s'); print \"Content-Type: text/plain\\n\\nevil\\n\";" % marker)
        args += ["--interpreter", ".pl=" + PERL]
        params = dict(SCRIPT_FILENAME=str(link), DOCUMENT_ROOT=str(root))
    os.symlink(real.name, link)
    d = start_daemon(args)
    holder, _ = start_script(d, tmp_path, "group")
    waiting = fc.Client(d.address, timeout=30)
    waiting.begin(cgi_params(**params))
    waiting.send_stdin(b"")
    assert wait_for(lambda: status_json(d)["queued requests"] == 1)
    os.symlink(str(evil), root / "new-link")
    os.replace(root / "new-link", link)
    holder.close()  # the slot frees
    r = waiting.read_response()
    waiting.close()
    assert r.status == 403
    assert not marker.exists()
    assert "resolves outside DOCUMENT_ROOT" in d.log()


def test_canonical_path_is_the_opened_files(tmp_path, start_daemon):
    # A directory in DOCUMENT_ROOT is a symlink out of it, but a plain
    # directory for the length of each realpath() call (tests/fault_swap.c:
    # the race an attacker who owns it would run).  realpath() and a stat()
    # after it would agree on the file outside; the path that counts is
    # the file opened's own, and it lies outside: refused.
    need(PERL)
    root, outside, aside = tmp_path / "root", tmp_path / "outside", tmp_path / "aside"
    for d in (root, outside, aside):
        d.mkdir()
        os.chmod(d, 0o755)
    marker = tmp_path / "evil-ran"
    (outside / "x.pl").write_text("open(F, '>%s'); print \"Content-Type: text/plain\\n\\nevil\\n\";" % marker)
    (aside / "x.pl").write_text('print "Content-Type: text/plain\\n\\nbenign\\n";')
    for f in (outside / "x.pl", aside / "x.pl"):
        os.chmod(f, 0o644)
    link = root / "up"
    os.symlink(str(outside), link)
    env = dict(os.environ, LD_PRELOAD=FAULT_SWAP, FAULT_SWAP_A=str(link), FAULT_SWAP_B=str(aside),
               ASAN_OPTIONS="verify_asan_link_order=0:" + os.environ.get("ASAN_OPTIONS", ""))
    d = start_daemon(["--interpreter", ".pl=" + PERL], env=env)
    r = fc.request(d.address, cgi_params(SCRIPT_FILENAME=str(link / "x.pl"), DOCUMENT_ROOT=str(root)))
    assert r.status == 403
    assert not marker.exists()
    assert "resolves outside DOCUMENT_ROOT" in d.log()


# ---- what reaches them of the environment ----


def test_loader_and_shell_variables_dropped(daemon):
    r = fc.request(daemon.address, cgi_params(query="env", LD_PRELOAD="/tmp/evil.so",
                                              LD_LIBRARY_PATH="/tmp", BASH_ENV="/tmp/evil.sh",
                                              GCONV_PATH="/tmp", PERL5OPT="-Mevil", HTTP_PROXY="http://evil:1",
                                              HTTP_X_OK="kept"))
    e = env_of(r)
    for name in ("LD_PRELOAD", "LD_LIBRARY_PATH", "BASH_ENV", "GCONV_PATH", "PERL5OPT", "HTTP_PROXY"):
        assert name not in e, name
    assert e["HTTP_X_OK"] == "kept"


def test_code_loading_variables_never_reach_a_script(daemon):
    unsafe = {"http_proxy": "http://evil:1", "LUA_INIT": "os.execute('id')", "PYTHONWARNINGS": "ignore::evil.X",
              "GIT_CONFIG_PARAMETERS": "'core.pager=id'", "GIT_CONFIG_COUNT": "1", "BASH_FUNC_x%%": "() { id; }",
              "PERLIO": ":via(Evil)", "NODE_OPTIONS": "--require /tmp/evil.js", "OPENSSL_CONF": "/tmp/evil.cnf"}
    r = fc.request(daemon.address, cgi_params(query="env", GIT_PROJECT_ROOT="/srv/git", **unsafe))
    env = env_of(r)
    assert not set(unsafe) & set(env), set(unsafe) & set(env)
    assert env["GIT_PROJECT_ROOT"] == "/srv/git"


def test_httpoxy_through_nginx(nginx):
    code, body = curl("-H", "Proxy: http://evil.example:8080", nginx.url + "/cgi-bin/behave.sh?env")
    assert code == 200
    assert b"HTTP_PROXY" not in body
    assert b"HTTP_HOST=127.0.0.1" in body


def test_redirect_status_header_through_nginx(nginx):
    # php-cgi before CVE-2024-8927's fix took HTTP_REDIRECT_STATUS for the
    # web server's REDIRECT_STATUS (which Debian's fastcgi_params sets).
    code, body = curl("-H", "Redirect-Status: 200", nginx.url + "/cgi-bin/behave.sh?env")
    assert code == 200
    assert b"HTTP_REDIRECT_STATUS" not in body
    assert b"\nREDIRECT_STATUS=200\n" in body


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


# ---- as whom ----


def test_root_without_user_refused(tmp_path):
    sock = tmp_path / "s.sock"
    r = run_fcgiwrap("-s", "unix:%s" % sock)
    assert r.returncode == 1
    assert "refusing to run scripts as root" in r.stderr
    assert not sock.exists()


@pytest.fixture
def public_script():
    """behave.sh in a directory any user can read (the checkout may not be)."""
    d = tempfile.mkdtemp(prefix="fcgiwrap-test.")
    os.chmod(d, 0o755)
    path = os.path.join(d, "behave.sh")
    shutil.copy(os.path.join(CGI_DIR, "behave.sh"), path)
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(d)


def test_user_drops_privileges(start_daemon, public_script):
    d = start_daemon(["--user", "nobody"])
    r = fc.request(d.address, cgi_params(query="id", SCRIPT_FILENAME=public_script))
    nobody = pwd.getpwnam("nobody")
    fields = dict(f.split("=", 1) for f in r.body.decode().split(" ", 2))
    assert fields["uid"] == str(nobody.pw_uid)
    assert fields["gid"] == str(nobody.pw_gid)
    assert "0" not in fields["groups"].split()
    # The daemon itself runs as nobody too.
    with open("/proc/%d/status" % d.proc.pid) as f:
        uids = next(line for line in f if line.startswith("Uid:")).split()[1:]
    assert uids == [str(nobody.pw_uid)] * 4


def test_group_option(start_daemon, public_script):
    d = start_daemon(["--user", "nobody", "--group", "daemon"])
    r = fc.request(d.address, cgi_params(query="id", SCRIPT_FILENAME=public_script))
    assert ("gid=%d " % grp.getgrnam("daemon").gr_gid).encode() in r.body


def test_chroot(tmp_path, start_daemon):
    jail = tmp_path / "jail"
    jail.mkdir()
    shutil.copy(HELLO_STATIC, jail / "hello")
    os.chmod(jail / "hello", 0o755)
    d = start_daemon(["--chroot", str(jail)])
    r = fc.request(d.address, cgi_params(SCRIPT_FILENAME="/hello"))
    assert r.status == 200 and r.body == b"Hello, world!\n"
    # Outside the jail nothing is found.
    assert fc.request(d.address, cgi_params(query="hello")).status == 404


def test_chroot_with_user_needs_no_passwd_inside(tmp_path, start_daemon):
    jail = tmp_path / "jail"
    jail.mkdir()
    os.chmod(tmp_path, 0o755)
    os.chmod(jail, 0o755)
    shutil.copy(HELLO_STATIC, jail / "hello")
    os.chmod(jail / "hello", 0o755)
    d = start_daemon(["--chroot", str(jail), "--user", "nobody"])
    r = fc.request(d.address, cgi_params(SCRIPT_FILENAME="/hello"))
    assert r.status == 200 and r.body == b"Hello, world!\n"


def test_chroot_p_and_root_name_paths_inside_the_jail(tmp_path, start_daemon):
    jail = tmp_path / "jail"
    (jail / "cgi").mkdir(parents=True)
    shutil.copy(HELLO_STATIC, jail / "cgi" / "hello")
    os.chmod(jail / "cgi" / "hello", 0o755)
    d = start_daemon(["--chroot", str(jail), "--root", "/cgi", "-p", "/cgi/", "-p", "/cgi/hello"])
    r = fc.request(d.address, cgi_params(SCRIPT_FILENAME="/cgi/hello"))
    assert r.status == 200 and r.body == b"Hello, world!\n"
    # A path of the host, missing in the jail, stops the start.
    for option in ["--root", "-p"]:
        log = start_refused(tmp_path, ["--chroot", str(jail), option, CGI_DIR + "/"], name="host" + option)
        assert "%s %s/: No such file or directory (a path inside the --chroot)" % (option, CGI_DIR) in log, log


# ---- who may connect ----


def test_socket_mode_and_owner(tmp_path, start_daemon):
    d = start_daemon()
    assert stat.S_IMODE(os.stat(d.address).st_mode) == 0o660
    d2 = start_daemon(["--socket-mode", "0600", "--socket-owner", "nobody:daemon"])
    st = os.stat(d2.address)
    assert stat.S_IMODE(st.st_mode) == 0o600
    assert st.st_uid == pwd.getpwnam("nobody").pw_uid
    assert st.st_gid == grp.getgrnam("daemon").gr_gid


def test_allow_from(tmp_path):
    port = free_port()
    d = Daemon(tmp_path, ["--allow-from", "127.0.0.2", "--allow-from", "10.0.0.0/8"],
               socket_url="tcp:127.0.0.1:%d" % port).start()
    try:
        with fc.Client(("127.0.0.1", port)) as c:
            try:
                c.begin(cgi_params(query="hello"))
                c.send_stdin(b"")
            except OSError:
                pass
            assert fc.is_closed(c.sock, 10)
        assert wait_for(lambda: "refused a connection from 127.0.0.1" in d.log())
    finally:
        d.stop()
    d = Daemon(tmp_path, ["--allow-from", "127.0.0.0/8"], socket_url="tcp:127.0.0.1:%d" % port,
               name="allowed").start()
    try:
        assert fc.request(("127.0.0.1", port), cgi_params(query="hello")).status == 200
    finally:
        d.stop()


def test_non_loopback_needs_allow_from():
    r = run_fcgiwrap("--allow-root", "-s", "tcp:0.0.0.0:%d" % free_port())
    assert r.returncode == 1
    assert "not loopback without --allow-from" in r.stderr
