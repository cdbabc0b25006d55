#!/usr/bin/python3
"""A hostile CGI script for the isolation tests; QUERY_STRING picks what it
tries.  It reports each attempt as a line "NAME ok" or "NAME refused
ERRNO-NAME", so that a test can say which one got through."""

import ctypes
import errno
import os
import signal
import sys
import time

libc = ctypes.CDLL(None, use_errno=True)
SYS_PIDFD_GETFD = 438
query = os.environ.get("QUERY_STRING", "")
lines = []


def attempt(name, action):
    try:
        action()
        lines.append("%s ok" % name)
    except OSError as e:
        lines.append("%s refused %s" % (name, errno.errorcode.get(e.errno, e.errno)))


def write_file(path, text):
    with open(path, "w") as f:
        f.write(text)


def cgroup_of(pid):
    """The directory of pid's cgroup v2."""
    with open("/proc/mounts") as f:
        mount = next(line.split()[1] for line in f if line.split()[2] == "cgroup2")
    with open("/proc/%d/cgroup" % pid) as f:
        return mount + next(line for line in f if line.startswith("0::"))[3:].strip()


def take_fds(pid):
    """Takes pid's fds 0-63 with pidfd_getfd: ok if any came."""
    pidfd = os.pidfd_open(pid)
    got = []
    for fd in range(64):
        n = libc.syscall(SYS_PIDFD_GETFD, pidfd, fd, 0)
        if n >= 0:
            got.append(n)
        elif ctypes.get_errno() != errno.EBADF:
            raise OSError(ctypes.get_errno(), "pidfd_getfd")
    if not got:
        raise OSError(errno.EBADF, "no fd")


class CloneArgs(ctypes.Structure):
    _fields_ = [(name, ctypes.c_uint64) for name in
                ("flags", "pidfd", "child_tid", "parent_tid", "exit_signal", "stack", "stack_size", "tls",
                 "set_tid", "set_tid_size", "cgroup")]


def clone_into(cgroup):
    """Starts a child straight into cgroup (clone3's CLONE_INTO_CGROUP,
    which needs no write to any file); the child exits at once."""
    fd = os.open(cgroup, os.O_PATH | os.O_DIRECTORY)
    args = CloneArgs(flags=0x200000000, exit_signal=signal.SIGCHLD, cgroup=fd)
    pid = libc.syscall(435, ctypes.byref(args), ctypes.c_size_t(ctypes.sizeof(args)))
    if pid == 0:
        os._exit(0)
    err = ctypes.get_errno()
    os.close(fd)
    if pid < 0:
        raise OSError(err, "clone3")
    os.waitpid(pid, 0)


def read_environ(pid):
    with open("/proc/%d/environ" % pid, "rb") as f:
        f.read()


def report():
    sys.stdout.write("Content-Type: text/plain\n\n" + "".join(line + "\n" for line in lines))
    sys.stdout.flush()


def write_pidfile(extra=""):
    with open(os.environ["PIDFILE"] + ".tmp", "w") as f:
        f.write("%d%s\n" % (os.getpid(), extra))
    os.rename(os.environ["PIDFILE"] + ".tmp", os.environ["PIDFILE"])


if query.startswith("immune"):
    # Ignores SIGTERM and leaves its process group for the daemon's (and,
    # with "immune-cgroup", its cgroup for the daemon's), then hangs
    # without a word.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    daemon = os.getppid()
    os.setpgid(0, os.getpgid(daemon))
    if query == "immune-cgroup":
        attempt("leave-cgroup", lambda: write_file(cgroup_of(daemon) + "/cgroup.procs", str(os.getpid())))
    write_pidfile(" " + " ".join(lines).replace(" ", ":"))
    time.sleep(300)
elif query == "cgroup":
    # Everything a script could do to the cgroups that hold it.
    own, daemon = cgroup_of(os.getpid()), cgroup_of(os.getppid())
    parent = os.path.dirname(own)
    attempt("own-procs", lambda: write_file(own + "/cgroup.procs", str(os.getpid())))
    attempt("own-freeze", lambda: write_file(own + "/cgroup.freeze", "0"))
    attempt("own-max-descendants", lambda: write_file(own + "/cgroup.max.descendants", "max"))
    for limit in ("memory.max", "pids.max", "cpu.max"):
        if os.path.exists(own + "/" + limit):
            attempt("own-" + limit, lambda: write_file(own + "/" + limit, "max"))
    attempt("make-child", lambda: os.mkdir(own + "/evil"))
    attempt("make-sibling", lambda: os.mkdir(parent + "/script-evil"))
    attempt("clone-into-daemon", lambda: clone_into(daemon))
    attempt("leave-to-daemon", lambda: write_file(daemon + "/cgroup.procs", str(os.getpid())))
    attempt("write-tmp", lambda: write_file(os.environ["PIDFILE"], "x\n"))
    report()
elif query == "daemon":
    # Everything a script could do to the daemon, its parent.
    daemon = os.getppid()
    attempt("getfd", lambda: take_fds(daemon))
    attempt("environ", lambda: read_environ(daemon))
    attempt("signal", lambda: os.kill(daemon, 0))
    report()
elif query.startswith("peer="):
    # The same against another request's script.
    peer = int(query[5:])
    attempt("getfd", lambda: take_fds(peer))
    attempt("environ", lambda: read_environ(peer))
    attempt("signal", lambda: os.kill(peer, 0))
    report()
elif query == "wait":
    # Waits to be looked at by another script.
    write_pidfile()
    sys.stdout.write("Content-Type: text/plain\n\n")
    sys.stdout.flush()
    time.sleep(60)
else:
    sys.stdout.write("Status: 400 Bad Request\nContent-Type: text/plain\n\nunknown\n")
