"""The guest tier: what only a real Debian system under systemd can show.

A Debian 12 guest (tests/guest/image.sh: debootstrap, cached) boots under
qemu with systemd as PID 1 and a pure cgroup v2 hierarchy, with Debian's
fcgiwrap 1.1.0 installed and served by nginx.  A second disk carries in
the package built from this tree (tests/guest/build-deb.sh), Debian's
1.1.0 package, the tree's build and tests/guest/checks.py, which runs the
checks in order inside the guest and writes its results back to that
disk; the guest then powers off.  Here, each check is a test reading its
result.

Run by `make check-guest` (tests/check.sh runs it), not by `make check`.
Skipped, with the reason, where no guest can be booted (not root, no
qemu or debootstrap, no dpkg-buildpackage, Debian's archive out of
reach); where one can, every check must pass.  KVM is used where it runs
the guest's kernel (a boot to a kernel panic tells, in seconds), software
emulation elsewhere; FCGIWRAP_GUEST_ACCEL=kvm or tcg decides instead.
FCGIWRAP_GUEST_ONLY=NAME,NAME runs only those checks (the others then
fail as not run).
The image is kept in FCGIWRAP_GUEST_CACHE (/var/tmp/fcgiwrap-guest)."""

import hashlib
import json
import os
import shutil
import subprocess
import time

import pytest
from conftest import FAULT_MMAP, FCGIWRAP, HELLO_CGI, HELLO_STATIC, TOP_SRCDIR

import checks

HERE = os.path.join(TOP_SRCDIR, "tests", "guest")
CACHE = os.environ.get("FCGIWRAP_GUEST_CACHE", "/var/tmp/fcgiwrap-guest")
# The whole run in the guest: about 5 minutes under software emulation on
# an idle 2-core machine; a loaded one is 2-3 times slower.
GUEST_TIMEOUT = 2400
NAMES = [c.__name__[len("check_"):] for c in checks.ORDER]


def missing():
    """Why no guest can be booted here, or None."""
    if os.geteuid() != 0:
        return "the guest tier needs root (debootstrap, mkfs)"
    for tool, package in (("qemu-system-x86_64", "qemu-system-x86"), ("debootstrap", "debootstrap"),
                          ("mkfs.ext4", "e2fsprogs"), ("debugfs", "e2fsprogs"),
                          ("dpkg-buildpackage", "dpkg-dev")):
        if not shutil.which(tool) and not os.path.exists("/usr/sbin/" + tool):
            return "%s is not installed (apt-get install %s)" % (tool, package)
    if os.uname().machine != "x86_64":
        return "the guest is an amd64 Debian; this machine is %s" % os.uname().machine
    return None


def run(argv, timeout, **kw):
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kw)


def qemu(image, accel, append, drives, timeout, log):
    """Boots the guest's kernel; returns (exit code or None on timeout,
    seconds)."""
    argv = ["qemu-system-x86_64", "-m", "2048", "-smp", "2", "-nographic", "-no-reboot", "-nic", "none",
            "-kernel", os.path.join(image, "vmlinuz"), "-initrd", os.path.join(image, "initrd.img"),
            "-append", append]
    argv += ["-accel", "kvm", "-cpu", "host"] if accel == "kvm" else ["-accel", "tcg,thread=multi"]
    for d in drives:
        argv += ["-drive", d]
    start = time.monotonic()
    with open(log, "wb") as out:
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        try:
            return p.wait(timeout), time.monotonic() - start
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            return None, time.monotonic() - start


def accelerator(image, work):
    """kvm where this host's KVM runs the guest's kernel, else tcg.  A
    stock kernel may hang under a KVM that opens fine: a boot with no root
    file system, which ends in a kernel panic within seconds where KVM
    works, tells.  The verdict is kept per kernel and host kernel."""
    forced = os.environ.get("FCGIWRAP_GUEST_ACCEL")
    if forced in ("kvm", "tcg"):
        return forced
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return "tcg"
    with open(os.path.join(image, "vmlinuz"), "rb") as f:
        key = hashlib.sha256(f.read() + os.uname().release.encode()).hexdigest()[:16]
    verdict = os.path.join(CACHE, "kvm-" + key)
    if not os.path.exists(verdict):
        log = os.path.join(work, "kvm-probe.log")
        qemu(image, "kvm", "console=ttyS0 panic=-1 root=/dev/nonexistent", [], 20, log)
        with open(log, "rb") as f:
            works = b"Kernel panic" in f.read()
        with open(verdict, "w") as f:
            f.write("kvm" if works else "tcg")
    with open(verdict) as f:
        return f.read().strip()


def checks_disk(work, deb, image):
    """The second disk: checks.py and its client, the packages, and the
    tree's build with its tests (for the cgroup tests that need the
    guest's controllers) and bench/bench.py, which they import."""
    top = os.path.join(work, "disk")
    os.makedirs(os.path.join(top, "debs"))
    for f in ("checks.py", "run.sh"):
        shutil.copy(os.path.join(HERE, f), top)
    for f in ("fcgi_client.py", "testlib.py"):
        shutil.copy(os.path.join(TOP_SRCDIR, "tests", f), top)
    shutil.copy(deb, os.path.join(top, "debs"))
    if os.environ.get("FCGIWRAP_GUEST_ONLY"):
        with open(os.path.join(top, "only"), "w") as f:
            f.write(os.environ["FCGIWRAP_GUEST_ONLY"].replace(",", " "))
    for old in os.listdir(image):
        if old.startswith("fcgiwrap_1.1.0-") and old.endswith(".deb"):
            shutil.copy(os.path.join(image, old), os.path.join(top, "debs"))
    tree = os.path.join(top, "tree")
    shutil.copytree(os.path.join(TOP_SRCDIR, "tests"), os.path.join(tree, "tests"),
                    ignore=shutil.ignore_patterns("guest", "fuzz", "__pycache__", "*.o", "*.log", "*.trs"))
    # conftest.py takes free_port() from the benchmark.
    os.makedirs(os.path.join(tree, "bench"))
    shutil.copy(os.path.join(TOP_SRCDIR, "bench", "bench.py"), os.path.join(tree, "bench"))
    shutil.copy(FCGIWRAP, os.path.join(tree, "fcgiwrap"))
    for built, name in ((HELLO_CGI, "hello"), (HELLO_STATIC, "hello-static")):
        shutil.copy(built, os.path.join(tree, "tests", "cgi", name))
    shutil.copy(FAULT_MMAP, os.path.join(tree, "tests", "fault_mmap.so"))
    img = os.path.join(work, "checks.img")
    run(["mkfs.ext4", "-q", "-F", "-L", "checks", "-d", top, img, "256M"], 120, check=True)
    return img


@pytest.fixture(scope="module")
def guest(tmp_path_factory):
    reason = missing()
    if reason:
        pytest.skip(reason)
    work = str(tmp_path_factory.mktemp("guest"))
    p = run(["sh", os.path.join(HERE, "build-deb.sh"), os.path.join(work, "debs")], 1200)
    assert p.returncode == 0, "the package does not build:\n" + p.stderr[-4000:]
    deb = p.stdout.strip().splitlines()[-1]
    p = run(["sh", os.path.join(HERE, "image.sh"), CACHE], 3600)
    if p.returncode != 0:
        reach = run(["sh", "-c", "getent hosts deb.debian.org"], 30)
        if reach.returncode != 0:
            pytest.skip("Debian's archive is out of reach, so no guest image can be made:\n" + p.stderr[-1000:])
        pytest.fail("the guest image cannot be made:\n" + p.stderr[-4000:])
    image = p.stdout.strip().splitlines()[-1]
    disk = checks_disk(work, deb, image)
    accel = accelerator(image, work)
    console = os.path.join(work, "console.log")
    code, seconds = qemu(image, accel, "root=/dev/vda rw console=ttyS0 panic=-1",
                         ["file=%s,if=virtio,format=raw,snapshot=on" % os.path.join(image, "root.img"),
                          "file=%s,if=virtio,format=raw" % disk], GUEST_TIMEOUT, console)
    out = os.path.join(work, "results.json")
    run(["debugfs", "-R", "dump /results.json %s" % out, disk], 60)
    with open(console, "rb") as f:
        tail = f.read()[-6000:].decode(errors="replace")
    results = json.load(open(out)) if os.path.exists(out) and os.path.getsize(out) else {}
    print("guest: %s, %.0f s, qemu exit %s" % (accel, seconds, code))
    return {"results": results, "console": tail, "accel": accel, "seconds": seconds, "timed_out": code is None}


@pytest.mark.parametrize("name", NAMES)
def test_in_guest(guest, name):
    r = guest["results"].get(name)
    assert r is not None, "the check did not run (%s, %.0f s%s); the console's end:\n%s" % (
        guest["accel"], guest["seconds"], ", timed out" if guest["timed_out"] else "", guest["console"])
    assert r["ok"], "%s\n%s" % (r["error"], r["log"])
