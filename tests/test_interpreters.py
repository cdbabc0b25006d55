"""--interpreter: PHP behind nginx's usual PHP configuration, and scripts
without the exec bit run through the program their name maps to."""

import hashlib
import json
import os
import shutil
import subprocess

import fcgi_client as fc
import pytest
from conftest import (PERL, PHP_CGI, PYTHON, TOP_SRCDIR, NginxServer, cgi_params, example_daemon_opts, free_port,
                      need, run_fcgiwrap)

MARKER = "SOURCE-MARKER-d41d8c"

INDEX_PHP = """<?php
// %s: a comment, in no response
header("X-From-Script: php");
if (isset($_GET["status"]))
    http_response_code((int)$_GET["status"]);
header("Content-Type: text/plain");
echo "method=", $_SERVER["REQUEST_METHOD"], "\\n";
echo "get=", json_encode($_GET), "\\n";
echo "post=", json_encode($_POST), "\\n";
""" % MARKER

UPLOAD_PHP = """<?php
header("Content-Type: text/plain");
$f = $_FILES["file"] ?? null;
if (!$f || $f["error"] !== UPLOAD_ERR_OK) {
    echo "error=", $f ? $f["error"] : "none", "\\n";
    exit;
}
echo "size=", filesize($f["tmp_name"]), "\\nmd5=", md5_file($f["tmp_name"]), "\\nname=", $f["name"], "\\n";
"""

SESSION_PHP = """<?php
session_save_path(getenv("SESSION_DIR"));
session_start();
$_SESSION["n"] = ($_SESSION["n"] ?? 0) + 1;
header("Content-Type: text/plain");
echo "n=", $_SESSION["n"], "\\n";
"""

SERVER_PHP = """<?php
header("Content-Type: application/json");
$s = $_SERVER;
echo json_encode(["SCRIPT_FILENAME" => $s["SCRIPT_FILENAME"] ?? null, "SCRIPT_NAME" => $s["SCRIPT_NAME"] ?? null,
                  "PATH_INFO" => $s["PATH_INFO"] ?? null, "PATH_TRANSLATED" => $s["PATH_TRANSLATED"] ?? null,
                  "PHP_SELF" => $s["PHP_SELF"] ?? null, "REDIRECT_STATUS" => $s["REDIRECT_STATUS"] ?? null,
                  "prepended" => defined("PREPENDED"), "cwd" => getcwd(), "argv" => $s["argv"] ?? null]);
"""

ARGS_PL = """print "Content-Type: text/plain\\n\\n";
print "perl args=", scalar(@ARGV), " script=$0 cwd=", `pwd`;
"""

ARGS_PY = """import os, sys
print("Content-Type: text/plain\\n")
print("python argv=%r cwd=%s" % (sys.argv, os.getcwd()))
"""


def perl_wrapper(path):
    """An interpreter of the test's own at path: a script handing its
    arguments to perl."""
    path.write_text("#!/bin/sh\nexec %s \"$@\"\n" % PERL)
    os.chmod(path, 0o755)
    return path


def docroot(tmp_path, files):
    """A document root holding files (name: text), each of mode 0644."""
    root = tmp_path / "php"
    root.mkdir(exist_ok=True)
    for name, text in files.items():
        (root / name).write_text(text)
        os.chmod(root / name, 0o644)
    return root


@pytest.fixture
def php_site(tmp_path, start_daemon):
    """examples/nginx-php.conf as it is but for its paths, in front of the
    daemon on TCP 127.0.0.1 with the options of
    examples/fcgiwrap-php.default."""
    need(PHP_CGI)
    root = docroot(tmp_path, {"index.php": INDEX_PHP, "upload.php": UPLOAD_PHP, "session.php": SESSION_PHP,
                              "server.php": SERVER_PHP})
    sessions = tmp_path / "sessions"
    sessions.mkdir()
    dport = free_port()
    opts = example_daemon_opts("fcgiwrap-php.default")
    assert opts == ["-f", "--interpreter", ".php=" + PHP_CGI]
    d = start_daemon(opts + ["--env", "SESSION_DIR=%s" % sessions], socket_url="tcp:127.0.0.1:%d" % dport)
    port = free_port()
    conf = open(os.path.join(TOP_SRCDIR, "examples", "nginx-php.conf")).read()
    assert "fastcgi_pass 127.0.0.1:9000;" in conf and "listen 80;" in conf
    conf = conf.replace("listen 80;", "listen 127.0.0.1:%d;" % port).replace("/data/php", str(root)) \
        .replace("127.0.0.1:9000", "127.0.0.1:%d" % dport)
    # What the example's comment tells an admin to add to the http block.
    ngx = NginxServer(tmp_path, "php", port, "client_max_body_size 8m;\n" + conf)
    site = type("Site", (), {})()
    site.url, site.root, site.daemon, site.tmp = ngx.url, root, d, tmp_path
    yield site
    ngx.stop()


def curl_full(*args):
    """curl: (status, headers as a lower-cased dict, body bytes)."""
    out = subprocess.run(["curl", "-sS", "--max-time", "60", "-D", "-", "-o", "-"] + list(args),
                         capture_output=True, check=True, timeout=65).stdout
    head, _, body = out.partition(b"\r\n\r\n")
    while head.startswith(b"HTTP/1.1 100"):  # curl's Expect: 100-continue
        head, _, body = body.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = dict((n.strip().lower(), v.strip()) for n, _, v in (l.partition(":") for l in lines[1:]))
    return int(lines[0].split()[1]), headers, body


def test_php_get_status_and_header(php_site):
    status, headers, body = curl_full(php_site.url + "/index.php?a=1&b=two")
    assert status == 200, body
    assert b"method=GET\n" in body
    assert json.loads(body.split(b"get=")[1].split(b"\n")[0]) == {"a": "1", "b": "two"}
    assert headers["x-from-script"] == "php"
    assert headers["content-type"] == "text/plain;charset=UTF-8"
    status, _, body = curl_full(php_site.url + "/index.php?status=201")
    assert status == 201, body
    assert b"method=GET" in body


def test_php_form_post(php_site):
    status, _, body = curl_full("--data-urlencode", "name=Zoë & co", "--data", "n=42", php_site.url + "/index.php")
    assert status == 200, body
    assert b"method=POST\n" in body
    assert json.loads(body.split(b"post=")[1].split(b"\n")[0]) == {"name": "Zoë & co", "n": "42"}


def test_php_upload_of_1_5_mib(php_site):
    data = os.urandom(1536 * 1024)
    path = php_site.tmp / "upload.bin"
    path.write_bytes(data)
    status, _, body = curl_full("-F", "file=@%s" % path, php_site.url + "/upload.php")
    assert status == 200, body
    assert body.decode() == "size=%d\nmd5=%s\nname=upload.bin\n" % (len(data), hashlib.md5(data).hexdigest())


def test_php_session_kept_by_its_cookie(php_site):
    jar = str(php_site.tmp / "cookies")
    assert curl_full("-c", jar, "-b", jar, php_site.url + "/session.php")[2] == b"n=1\n"
    assert curl_full("-c", jar, "-b", jar, php_site.url + "/session.php")[2] == b"n=2\n"
    assert curl_full(php_site.url + "/session.php")[2] == b"n=1\n"


def test_php_missing_file_is_404(php_site):
    status, _, body = curl_full(php_site.url + "/missing.php")
    assert status == 404
    assert "script not found" in php_site.daemon.log()


def test_php_query_never_becomes_arguments(php_site):
    # CVE-2012-1823: with "-s" as its argument, php-cgi prints the file's
    # source.  Every form of it answers the page itself.
    for query in ("-s", "-s+%3d", "-d+auto_prepend_file%3d/etc/passwd", "-n"):
        status, _, body = curl_full(php_site.url + "/index.php?" + query)
        assert status == 200, (query, body)
        assert MARKER.encode() not in body and b"<?php" not in body and b"<code>" not in body, query
        assert b"root:" not in body
        assert b"method=GET\n" in body, (query, body)


def test_php_upper_case_suffix_is_not_mapped(php_site):
    # nginx's ~* sends INDEX.PHP too; the mapping, as lighttpd's, is exact:
    # a file that is neither mapped nor executable stays refused.
    shutil.copy(php_site.root / "index.php", php_site.root / "UPPER.PHP")
    status, _, body = curl_full(php_site.url + "/UPPER.PHP")
    assert status == 403
    assert MARKER.encode() not in body


def test_php_sees_the_cgi_variables_nginx_sets(php_site):
    status, _, body = curl_full(php_site.url + "/server.php?x=1")
    assert status == 200, body
    seen = json.loads(body)
    assert seen["SCRIPT_FILENAME"] == str(php_site.root / "server.php")
    assert seen["SCRIPT_NAME"] == "/server.php"
    assert seen["PHP_SELF"] == "/server.php"
    assert seen["REDIRECT_STATUS"] == "200"
    # Run in its own directory; its path was its one argument (php-cgi
    # keeps no argv in CGI mode).
    assert seen["cwd"] == str(php_site.root)


def test_php_path_info_found_by_the_walk(tmp_path, start_daemon):
    # Without SCRIPT_FILENAME the walk finds the file and splits PATH_INFO
    # off; php-cgi gets SCRIPT_FILENAME from fcgiwrap.
    need(PHP_CGI)
    root = docroot(tmp_path, {"server.php": SERVER_PHP})
    d = start_daemon(["--interpreter", ".php=" + PHP_CGI])
    r = fc.request(d.address, cgi_params(SCRIPT_FILENAME="", DOCUMENT_ROOT=str(root),
                                          SCRIPT_NAME="/server.php/a/b", REDIRECT_STATUS="200"))
    assert r.status == 200, r.stdout
    seen = json.loads(r.body)
    assert seen["SCRIPT_FILENAME"] == str(root / "server.php")
    assert seen["SCRIPT_NAME"] == "/server.php"
    assert seen["PATH_INFO"] == "/a/b"
    assert seen["PHP_SELF"] == "/server.php/a/b"


def test_php_force_redirect_stays_on(tmp_path, start_daemon):
    # Without the web server's REDIRECT_STATUS php-cgi refuses to run, and
    # a client's "Redirect-Status:" header does not stand in for it.
    need(PHP_CGI)
    root = docroot(tmp_path, {"server.php": SERVER_PHP})
    d = start_daemon(["--interpreter", ".php=" + PHP_CGI])
    params = cgi_params(SCRIPT_FILENAME=str(root / "server.php"), DOCUMENT_ROOT=str(root),
                        HTTP_REDIRECT_STATUS="200")
    r = fc.request(d.address, params)
    # Its refusal has no CGI header: a 502.
    assert r.status == 502
    assert b"SCRIPT_FILENAME" not in r.stdout
    params["REDIRECT_STATUS"] = "200"
    r = fc.request(d.address, params)
    assert r.status == 200
    assert json.loads(r.body)["REDIRECT_STATUS"] == "200"


def test_php_ini_from_the_params_is_not_loaded(tmp_path, start_daemon):
    # PHPRC and PHP_INI_SCAN_DIR name an ini file, which can prepend any
    # file to every page: never taken from a request.
    need(PHP_CGI)
    root = docroot(tmp_path, {"server.php": SERVER_PHP, "evil.php": "<?php define('PREPENDED', 1);"})
    ini = tmp_path / "ini"
    ini.mkdir()
    (ini / "php.ini").write_text("auto_prepend_file=%s\n" % (root / "evil.php"))
    d = start_daemon(["--interpreter", ".php=" + PHP_CGI])
    params = cgi_params(SCRIPT_FILENAME=str(root / "server.php"), DOCUMENT_ROOT=str(root), REDIRECT_STATUS="200",
                        PHPRC=str(ini), PHP_INI_SCAN_DIR=str(ini))
    r = fc.request(d.address, params)
    assert r.status == 200, r.stdout
    assert json.loads(r.body)["prepended"] is False


def test_perl_and_python_without_the_exec_bit(tmp_path, start_daemon):
    need(PERL)
    need(PYTHON)
    root = docroot(tmp_path, {"args.pl": ARGS_PL, "args.py": ARGS_PY})
    d = start_daemon(["--interpreter", ".pl=" + PERL, "--interpreter", ".py=" + PYTHON])
    # A query without '=' is an ISINDEX query, which CGI/1.1 lets become
    # arguments: never.
    r = fc.request(d.address, cgi_params(SCRIPT_FILENAME=str(root / "args.pl"), DOCUMENT_ROOT=str(root),
                                         QUERY_STRING="-e+print+1"))
    assert r.status == 200, r.stdout + r.stderr
    assert r.body == ("perl args=0 script=%s cwd=%s\n" % (root / "args.pl", root)).encode()
    r = fc.request(d.address, cgi_params(SCRIPT_FILENAME="", DOCUMENT_ROOT=str(root), SCRIPT_NAME="/args.py",
                                         QUERY_STRING="-c+1"))
    assert r.status == 200, r.stdout + r.stderr
    assert r.body == ("python argv=%r cwd=%s\n" % ([str(root / "args.py")], root)).encode()


def test_unmapped_file_without_exec_bit_is_still_403(tmp_path, start_daemon):
    need(PERL)
    root = docroot(tmp_path, {"args.pl": ARGS_PL, "plain.sh": "#!/bin/sh\necho ran\n"})
    d = start_daemon(["--interpreter", ".pl=" + PERL])
    r = fc.request(d.address, cgi_params(SCRIPT_FILENAME=str(root / "plain.sh"), DOCUMENT_ROOT=str(root)))
    assert r.status == 403
    assert "plain.sh: script refused: not executable" in d.log()
    # A mapped name that is a directory is no script either.
    (root / "dir.pl").mkdir()
    r = fc.request(d.address, cgi_params(SCRIPT_FILENAME=str(root / "dir.pl"), DOCUMENT_ROOT=str(root)))
    assert r.status == 403


def test_mapped_script_outside_document_root_is_refused(tmp_path, start_daemon):
    need(PERL)
    root = docroot(tmp_path, {"args.pl": ARGS_PL})
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "evil.pl").write_text(ARGS_PL)
    os.symlink(outside / "evil.pl", root / "link.pl")
    d = start_daemon(["--interpreter", ".pl=" + PERL, "--allow-symlinks-out"])
    cases = [
        # Named by SCRIPT_FILENAME, outside DOCUMENT_ROOT.
        dict(SCRIPT_FILENAME=str(outside / "evil.pl"), DOCUMENT_ROOT=str(root)),
        # A symlink inside leading out, by either name: --allow-symlinks-out
        # does not reach files that are not programs.
        dict(SCRIPT_FILENAME=str(root / "link.pl"), DOCUMENT_ROOT=str(root)),
        dict(SCRIPT_FILENAME="", DOCUMENT_ROOT=str(root), SCRIPT_NAME="/link.pl"),
        # No DOCUMENT_ROOT to hold it.
        dict(SCRIPT_FILENAME=str(root / "args.pl")),
    ]
    for params in cases:
        r = fc.request(d.address, cgi_params(**params))
        assert r.status == 403, params
        assert b"perl args" not in r.stdout
    assert "run through an --interpreter, it resolves outside DOCUMENT_ROOT (see --root)" in d.log()
    assert "DOCUMENT_ROOT is missing or not an absolute path" in d.log()
    r = fc.request(d.address, cgi_params(SCRIPT_FILENAME=str(root / "args.pl"), DOCUMENT_ROOT=str(root)))
    assert r.status == 200


def test_root_holds_mapped_scripts_in_place_of_document_root(tmp_path, start_daemon):
    need(PERL)
    lib = tmp_path / "cgi-lib"
    lib.mkdir()
    (lib / "args.pl").write_text(ARGS_PL)
    d = start_daemon(["--interpreter", ".pl=" + PERL, "--root", str(lib)])
    r = fc.request(d.address, cgi_params(SCRIPT_FILENAME=str(lib / "args.pl"), DOCUMENT_ROOT="/nonexistent"))
    assert r.status == 200, r.stdout
    r = fc.request(d.address, cgi_params(SCRIPT_FILENAME=str(lib / "args.pl")))
    assert r.status == 200, r.stdout


def test_interpreter_checked_at_start(tmp_path):
    sock = "unix:%s" % (tmp_path / "s.sock")
    text = tmp_path / "text"
    text.write_text("not a program")
    os.chmod(text, 0o644)
    cases = [
        (["--interpreter", ".php=/nonexistent/php-cgi"],
         "--interpreter .php=/nonexistent/php-cgi: /nonexistent/php-cgi: No such file or directory"),
        (["--interpreter", ".txt=%s" % text], "--interpreter .txt=%s: %s: Permission denied" % (text, text)),
        (["--interpreter", ".d=/usr/bin"], "--interpreter .d=/usr/bin: /usr/bin: not a regular file"),
        (["--interpreter", ".php=php-cgi"], "invalid --interpreter '.php=php-cgi': the PROGRAM must be an absolute path"),
        (["--interpreter", ".php"], "invalid --interpreter '.php': takes SUFFIX=PROGRAM"),
        (["--interpreter", ".pl=/usr/bin/perl", "--interpreter", ".pl=/usr/bin/perl"],
         "the SUFFIX is mapped twice"),
    ]
    for args, message in cases:
        p = run_fcgiwrap("-s", sock, "--allow-root", *args, timeout=20)
        assert p.returncode != 0, args
        assert message in p.stderr, (args, p.stderr)


def test_interpreter_outside_system_dirs_under_script_read(tmp_path, start_daemon):
    # --script-read limits what scripts read and execute; the interpreter
    # is configuration, and may be run wherever it is.
    need(PERL)
    root = docroot(tmp_path, {"args.pl": ARGS_PL})
    bindir = tmp_path / "opt-bin"
    bindir.mkdir()
    wrapper = perl_wrapper(bindir / "perl-wrapper")
    d = start_daemon(["--interpreter", ".pl=%s" % wrapper, "--script-read", str(root)])
    r = fc.request(d.address, cgi_params(SCRIPT_FILENAME=str(root / "args.pl"), DOCUMENT_ROOT=str(root)))
    assert r.status == 200, (r.stdout, d.log())
    assert r.body.startswith(b"perl args=0")
    # Other files there stay out of reach.
    (bindir / "other").write_text("x")
    probe = root / "probe.pl"
    probe.write_text("print \"Content-Type: text/plain\\n\\n\", (open(F, '<%s') ? 'read' : 'refused');"
                     % (bindir / "other"))
    r = fc.request(d.address, cgi_params(SCRIPT_FILENAME=str(probe), DOCUMENT_ROOT=str(root)))
    assert r.body == b"refused"


def test_interpreter_gone_after_start_is_502(tmp_path, start_daemon):
    need(PERL)
    root = docroot(tmp_path, {"args.pl": ARGS_PL})
    wrapper = perl_wrapper(tmp_path / "perl-wrapper")
    d = start_daemon(["--interpreter", ".pl=%s" % wrapper])
    params = cgi_params(SCRIPT_FILENAME=str(root / "args.pl"), DOCUMENT_ROOT=str(root))
    assert fc.request(d.address, params).status == 200
    wrapper.unlink()
    r = fc.request(d.address, params)
    assert r.status == 502
    assert "args.pl: cannot run it through the --interpreter %s: No such file or directory" % wrapper in d.log()
    # The daemon serves on.
    perl_wrapper(wrapper)
    assert fc.request(d.address, params).status == 200


def test_php_never_runs_what_path_translated_names(tmp_path, start_daemon):
    # php-cgi runs PATH_TRANSLATED instead of SCRIPT_FILENAME when
    # REDIRECT_URL differs (Apache sends both after a rewrite), and always
    # with cgi.fix_pathinfo=0: a file fcgiwrap never checked.  It is not
    # passed on to an interpreter.
    need(PHP_CGI)
    root = docroot(tmp_path, {"server.php": SERVER_PHP})
    uploads = root / "uploads"
    uploads.mkdir()
    (uploads / "avatar.jpg").write_text("GIF89a <?php echo 'RAN-THE-UPLOAD';")
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    ini = tmp_path / "ini"
    ini.mkdir()
    (ini / "fix.ini").write_text("cgi.fix_pathinfo=0\n")
    plain = start_daemon(["--interpreter", ".php=" + PHP_CGI])
    # The admin's own php.ini setting, as --env may give it.
    nofix = start_daemon(["--interpreter", ".php=" + PHP_CGI, "--env", "PHP_INI_SCAN_DIR=%s" % ini])
    for d, extra in ((plain, {"REDIRECT_URL": "/go/x"}), (nofix, {})):
        for target in (uploads / "avatar.jpg", secret):
            r = fc.request(d.address, cgi_params(SCRIPT_FILENAME=str(root / "server.php"), DOCUMENT_ROOT=str(root),
                                                 SCRIPT_NAME="/server.php", REDIRECT_STATUS="200",
                                                 PATH_TRANSLATED=str(target), **extra))
            assert r.status == 200, r.stdout
            assert b"RAN-THE-UPLOAD" not in r.stdout and b"TOP-SECRET" not in r.stdout
            assert json.loads(r.body)["SCRIPT_FILENAME"] == str(root / "server.php")


def test_executable_mapped_program_keeps_running_where_it_is(tmp_path, start_daemon):
    # A program with its exec bit is one the admin marked: mapping its
    # suffix does not confine it to DOCUMENT_ROOT (a cgi-bin elsewhere).
    need(PERL)
    cgi_bin = tmp_path / "cgi-bin"
    cgi_bin.mkdir()
    (cgi_bin / "args.pl").write_text(ARGS_PL)
    os.chmod(cgi_bin / "args.pl", 0o755)
    site = docroot(tmp_path, {})
    d = start_daemon(["--interpreter", ".pl=" + PERL])
    r = fc.request(d.address, cgi_params(SCRIPT_FILENAME=str(cgi_bin / "args.pl"), DOCUMENT_ROOT=str(site)))
    assert r.status == 200, (r.stdout, d.log())
    assert r.body.startswith(b"perl args=0 script=%s" % str(cgi_bin / "args.pl").encode())


def test_mapped_file_in_a_directory_others_may_write_is_refused(tmp_path, start_daemon):
    # The interpreter opens the file again by its path after the checks:
    # whoever may write its directory could swap it in that moment.
    need(PERL)
    root = docroot(tmp_path, {})
    shared = root / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)
    (shared / "args.pl").write_text(ARGS_PL)
    os.chmod(shared / "args.pl", 0o644)
    d = start_daemon(["--interpreter", ".pl=" + PERL])
    params = cgi_params(SCRIPT_FILENAME=str(shared / "args.pl"), DOCUMENT_ROOT=str(root))
    assert fc.request(d.address, params).status == 403
    assert "its directory is writable by group or others" in d.log()
    lax = start_daemon(["--interpreter", ".pl=" + PERL, "--allow-writable"])
    assert fc.request(lax.address, params).status == 200


def test_relative_document_root_does_not_hold_a_mapped_file(tmp_path, start_daemon):
    need(PERL)
    root = docroot(tmp_path, {"args.pl": ARGS_PL})
    d = start_daemon(["--interpreter", ".pl=" + PERL])
    for document_root in (".", "php", ""):
        r = fc.request(d.address, cgi_params(SCRIPT_FILENAME=str(root / "args.pl"), DOCUMENT_ROOT=document_root))
        assert r.status == 403, document_root
    assert "DOCUMENT_ROOT is missing or not an absolute path" in d.log()
