"""The Debian package (debian/), built from the tree by
tests/guest/build-deb.sh: what it installs against Debian's fcgiwrap 1.1.0,
lintian, and what its maintainer scripts do on installation, upgrade and
removal, run against stubs of systemctl and the Debian helpers (this
machine need not run systemd; the guest tier tests the real thing)."""

import os
import shutil
import subprocess

import pytest
from conftest import TOP_SRCDIR

OLD = "1.1.0-14+deb12u1"

# Debian's fcgiwrap 1.1.0's files that this package keeps at the same path.
# Left out on purpose: /etc/init.d/fcgiwrap (systemd only) and
# examples/default and examples/monitrc, both written for that script.
KEPT_FROM_OLD = [
    "usr/sbin/fcgiwrap",
    "lib/systemd/system/fcgiwrap.service",
    "lib/systemd/system/fcgiwrap.socket",
    "usr/share/man/man8/fcgiwrap.8.gz",
    "usr/share/doc/fcgiwrap/README.Debian",
    "usr/share/doc/fcgiwrap/NEWS.Debian.gz",
    "usr/share/doc/fcgiwrap/copyright",
    "usr/share/doc/fcgiwrap/changelog.Debian.gz",
    "usr/share/doc/fcgiwrap/examples/nginx.conf",
]
NEW = [
    "lib/systemd/system/fcgiwrap@.service",
    "lib/systemd/system/fcgiwrap@.socket",
    "usr/share/doc/fcgiwrap/README.md.gz",
    "usr/share/doc/fcgiwrap/examples/nginx-php.conf",
    "usr/share/doc/fcgiwrap/examples/fcgiwrap-php.default",
    "usr/share/doc/fcgiwrap/examples/fcgiwrap-git.default",
    "usr/share/doc/fcgiwrap/examples/nginx-git-http-backend.conf",
    "usr/share/doc/fcgiwrap/examples/nginx-cgit.conf",
]


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    """Builds the package once; returns (deb, changes, unpacked, control)."""
    if not os.path.isfile(os.path.join(TOP_SRCDIR, "debian", "control")):
        pytest.skip("no debian/ in this tree (a dist tarball)")
    if not os.path.isdir(os.path.join(TOP_SRCDIR, ".git")) or not shutil.which("git"):
        pytest.skip("not a git checkout: build-deb.sh builds the files git knows")
    if not shutil.which("dpkg-buildpackage"):
        pytest.skip("dpkg-buildpackage is not installed (package dpkg-dev)")
    check = subprocess.run(["dpkg-checkbuilddeps"], cwd=TOP_SRCDIR, capture_output=True, text=True)
    if check.returncode != 0:
        pytest.skip("build dependencies missing: " + check.stderr.strip())
    out = tmp_path_factory.mktemp("deb")
    p = subprocess.run(["sh", os.path.join(TOP_SRCDIR, "tests", "guest", "build-deb.sh"), str(out)],
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-4000:]
    deb = p.stdout.strip().splitlines()[-1]
    assert os.path.isfile(deb) and os.path.dirname(deb) == str(out)
    (changes,) = [str(out / f) for f in os.listdir(out) if f.endswith(".changes")]
    unpacked, control = out / "root", out / "control"
    subprocess.run(["dpkg-deb", "-x", deb, str(unpacked)], check=True)
    subprocess.run(["dpkg-deb", "-e", deb, str(control)], check=True)
    return deb, changes, unpacked, control


def field(deb, name):
    return subprocess.run(["dpkg-deb", "-f", deb, name], capture_output=True, text=True, check=True).stdout.strip()


def test_replaces_debians_package(package):
    deb, _, _, control = package
    assert field(deb, "Package") == "fcgiwrap"
    assert subprocess.run(["dpkg", "--compare-versions", field(deb, "Version"), "gt", OLD]).returncode == 0
    depends = field(deb, "Depends")
    # libsystemd is dlopen()ed, so it is named by hand; libfcgi is not linked.
    assert "libsystemd0" in depends and "libfcgi" not in depends, depends
    # No conffile: the init script is gone, and nothing else is in /etc.
    assert not (control / "conffiles").exists()
    assert "rm_conffile /etc/init.d/fcgiwrap" in (control / "preinst").read_text()


def test_files_at_1_1_0s_paths(package):
    _, _, root, _ = package
    missing = [p for p in KEPT_FROM_OLD + NEW if not (root / p).exists()]
    assert missing == []
    assert not (root / "etc").exists()
    # The path 1.1.0's README.Debian told admins to include in nginx.
    with open(os.path.join(TOP_SRCDIR, "examples", "nginx-cgi-bin.conf")) as f:
        assert (root / "usr/share/doc/fcgiwrap/examples/nginx.conf").read_text() == f.read()
    service = (root / "lib/systemd/system/fcgiwrap.service").read_text()
    assert "ExecStart=/usr/sbin/fcgiwrap $DAEMON_OPTS" in service


def test_lintian_finds_no_error(package):
    if not shutil.which("lintian"):
        pytest.skip("lintian is not installed")
    _, changes, _, _ = package
    p = subprocess.run(["lintian", changes], capture_output=True, text=True, timeout=300)
    errors = [line for line in p.stdout.splitlines() if line.startswith("E:")]
    assert errors == [], p.stdout


# ---- the maintainer scripts, against stubs ----

STUB = """#!/bin/sh
echo "${0##*/} $*" >> "$STUB_LOG"
verb=""
for a in "$@"; do
	case "$a" in -*) ;; *) verb=$a; break ;; esac
done
case "${0##*/} $verb" in
"systemctl is-active")
	for a in "$@"; do unit=$a; done
	case " $STUB_ACTIVE " in *" $unit "*) exit 0 ;; esac
	exit 3 ;;
"systemctl list-units")
	for u in $STUB_ACTIVE; do
		case "$u" in fcgiwrap.service|fcgiwrap@*.service) echo "$u loaded active running fcgiwrap" ;; esac
	done ;;
esac
exit 0
"""


class Scripts:
    """The package's maintainer scripts, run with systemctl, the
    deb-systemd-* helpers, update-rc.d and dpkg-maintscript-helper
    stubbed, and /run/systemd/system and /etc/init.d/fcgiwrap moved into
    a temporary directory."""

    def __init__(self, control, tmp_path):
        self.tmp = tmp_path
        self.bin = tmp_path / "bin"
        self.bin.mkdir()
        for name in ("systemctl", "deb-systemd-invoke", "deb-systemd-helper", "update-rc.d",
                     "dpkg-maintscript-helper"):
            (self.bin / name).write_text(STUB)
            (self.bin / name).chmod(0o755)
        self.systemd = tmp_path / "run-systemd-system"
        self.init_script = tmp_path / "init.d-fcgiwrap"
        self.control = control
        self.log = tmp_path / "log"

    def run(self, script, *args, systemd=True, active=()):
        text = (self.control / script).read_text()
        text = text.replace("/run/systemd/system", str(self.systemd))
        text = text.replace("/etc/init.d/fcgiwrap", str(self.init_script))
        path = self.tmp / script
        path.write_text(text)
        if systemd:
            self.systemd.mkdir(exist_ok=True)
        elif self.systemd.exists():
            self.systemd.rmdir()
        self.log.write_text("")
        env = {"PATH": "%s:/usr/sbin:/usr/bin:/sbin:/bin" % self.bin, "STUB_LOG": str(self.log),
               "STUB_ACTIVE": " ".join(active)}
        p = subprocess.run(["sh", "-e", str(path)] + list(args), env=env, capture_output=True, text=True,
                           timeout=30)
        assert p.returncode == 0, p.stderr
        return self.log.read_text().splitlines()


@pytest.fixture
def scripts(package, tmp_path):
    return Scripts(package[3], tmp_path)


def acting(log):
    """The calls that start, stop, restart or reload something, or touch
    rc.d links."""
    verbs = ("start", "stop", "restart", "reload", "try-restart")
    return [c for c in log if c.startswith("update-rc.d") or
            (c.split()[0] in ("systemctl", "deb-systemd-invoke") and set(c.split()[1:]) & set(verbs))]


def test_fresh_install_starts_the_socket_only(scripts):
    log = scripts.run("postinst", "configure", "")
    assert acting(log) == ["deb-systemd-invoke start fcgiwrap.socket"]
    assert "deb-systemd-helper enable fcgiwrap.service" in log
    assert "deb-systemd-helper enable fcgiwrap.socket" in log


def test_upgrade_from_1_1_0_restarts_it_once(scripts):
    log = scripts.run("preinst", "upgrade", OLD, active=["fcgiwrap.service"])
    assert log == ["dpkg-maintscript-helper rm_conffile %s 2.0.0-1~ -- upgrade %s" % (scripts.init_script, OLD)]
    log = scripts.run("postinst", "configure", OLD, active=["fcgiwrap.service", "fcgiwrap.socket"])
    assert acting(log) == ["deb-systemd-invoke start fcgiwrap.socket", "update-rc.d fcgiwrap remove",
                           "deb-systemd-invoke restart fcgiwrap.service"]
    # After systemd has read the new units.
    assert log.index("systemctl --system daemon-reload") < log.index("deb-systemd-invoke restart fcgiwrap.service")


def test_upgrade_from_1_1_0_idle_or_without_systemd(scripts):
    # Idle: the socket starts the new binary on the next connection.
    log = scripts.run("postinst", "configure", OLD, active=["fcgiwrap.socket"])
    assert acting(log) == ["deb-systemd-invoke start fcgiwrap.socket", "update-rc.d fcgiwrap remove"]
    log = scripts.run("postinst", "configure", OLD, systemd=False, active=["fcgiwrap.service"])
    assert acting(log) == ["update-rc.d fcgiwrap remove"]
    # An init script still there (not one dpkg-maintscript-helper moved
    # away) keeps its links.
    scripts.init_script.write_text("#!/bin/sh\n")
    log = scripts.run("postinst", "configure", OLD, active=["fcgiwrap.service"])
    assert "update-rc.d fcgiwrap remove" not in log


def test_upgrade_from_itself_reloads_what_runs(scripts):
    running = ["fcgiwrap.socket", "fcgiwrap.service", "fcgiwrap@alice.service", "fcgiwrap@alice.socket"]
    assert acting(scripts.run("preinst", "upgrade", "2.0.0-1", active=running)) == []
    assert acting(scripts.run("prerm", "upgrade", "2.0.0-1", active=running)) == []
    log = scripts.run("postinst", "configure", "2.0.0-1", active=running)
    assert acting(log) == ["deb-systemd-invoke start fcgiwrap.socket", "deb-systemd-invoke reload fcgiwrap.service",
                           "deb-systemd-invoke reload fcgiwrap@alice.service"]
    assert log.index("systemctl --system daemon-reload") < log.index("deb-systemd-invoke reload fcgiwrap.service")
    log = scripts.run("postinst", "configure", "2.0.0-1", active=["fcgiwrap.socket"])
    assert acting(log) == ["deb-systemd-invoke start fcgiwrap.socket"]
    assert acting(scripts.run("postinst", "configure", "2.0.0-1", systemd=False, active=running)) == []


def test_remove_stops_everything_and_purge_cleans_up(scripts):
    log = scripts.run("prerm", "remove", active=["fcgiwrap.service"])
    assert acting(log)[0] == "systemctl stop fcgiwrap.socket fcgiwrap.service fcgiwrap@*.socket fcgiwrap@*.service"
    assert acting(scripts.run("prerm", "remove", systemd=False)) == []
    log = scripts.run("postrm", "purge", systemd=False)
    assert "deb-systemd-helper purge fcgiwrap.service fcgiwrap.socket" in log
    assert "update-rc.d fcgiwrap remove" in log
