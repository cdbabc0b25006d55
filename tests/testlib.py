"""Helpers shared by conftest.py and the tests' standalone programs: the
guest tier's checks.py, which runs in the guest without pytest's conftest
(tests/guest/tier.py copies this file there), and soak.py."""

import os
import time


def wait_for(predicate, timeout=10.0, interval=0.02):
    """True once predicate() is, polled every interval seconds; after
    timeout seconds, what it says then."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def processes():
    """(pid, exe or '', argv) of every process."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open("/proc/%s/cmdline" % entry, "rb") as f:
                    argv = f.read().split(b"\0")
                try:
                    exe = os.readlink("/proc/%s/exe" % entry)
                except OSError:
                    exe = ""
                out.append((int(entry), exe, [a.decode(errors="replace") for a in argv if a]))
            except OSError:
                pass
    return out
