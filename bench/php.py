#!/usr/bin/env python3
"""PHP through fcgiwrap and php-cgi, side by side with PHP-FPM.

One small PHP page behind one nginx on 127.0.0.1, served three ways in the
same run, interleaved: fcgiwrap --interpreter .php=php-cgi (a php-cgi
process per request), and Debian's php-fpm with pm = ondemand and with
pm = static (both with Debian's default of 5 children).  Measured:
requests/s and p50/p99 latency at 1 and 32 clients (wrk; medians of the
rounds), the CPU time per request of the whole server side (the daemon
and every process it started, reaped or alive; nginx not counted), and
the resident memory of each server once idle after the load (php-fpm's
static children stay; ondemand's go after 10 s idle, fcgiwrap keeps none).
Prints a table with ratios to fcgiwrap.

Usage: bench/php.py [--smoke] [--rounds N] [--seconds S] [--clients 1,32]
Needs php-cgi, php-fpm, wrk and nginx (bench/run.sh --php installs them)."""

import argparse
import glob
import os
import shutil
import signal
import statistics
import subprocess
import tempfile
import time

from bench import NGINX_CONF, cpu_seconds, free_port, rss_kib, wait_socket, wrk

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(HERE)

PAGE = """<?php
header("Content-Type: text/plain");
$name = htmlspecialchars($_GET["name"] ?? "world");
echo "Hello, $name, from PHP ", PHP_VERSION, "\\n";
"""

# examples/nginx-php.conf's location, but for its paths, in bench.py's
# nginx.
SERVER = """
    server {{
        listen 127.0.0.1:{port};
        root {root};
        location ~* \\.php$ {{
            fastcgi_pass unix:{sock};
            fastcgi_index index.php;
            fastcgi_param SCRIPT_FILENAME $document_root$fastcgi_script_name;
            include /etc/nginx/fastcgi_params;
        }}
    }}
"""

FPM_CONF = """
[global]
pid = {tmp}/{name}.pid
error_log = {tmp}/{name}.log
daemonize = no
[{name}]
listen = {sock}
pm = {pm}
pm.max_children = 5
pm.process_idle_timeout = 10s
"""


def tree_pids(root):
    """root and every process below it."""
    parent = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open("/proc/%s/stat" % entry) as f:
                    parent[int(entry)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError):
                pass
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(p for p, pp in parent.items() if pp == pid)
    return out


def server_cpu(root):
    """CPU seconds of a server: its processes alive, and those they reaped
    (php-cgi processes, php-fpm's children that ended)."""
    pids = tree_pids(root)
    return cpu_seconds(pids) + cpu_seconds(pids, children=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--smoke", action="store_true", help="tiny sizes: seconds, checks that the bench runs")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--clients", default="1,32")
    ap.add_argument("--ours", default=os.path.join(TOP, "fcgiwrap"))
    ap.add_argument("--php-cgi", default="/usr/bin/php-cgi")
    args = ap.parse_args()
    if args.smoke:
        args.rounds, args.seconds = 1, 1
    fpm = sorted(glob.glob("/usr/sbin/php-fpm*"))
    for need, what in ((args.php_cgi, "php-cgi"), (fpm[-1] if fpm else "/nonexistent", "php-fpm"),
                       (shutil.which("wrk") or "/nonexistent", "wrk")):
        if not os.access(need, os.X_OK):
            raise SystemExit("%s is required: apt-get install %s" % (what, what))
    clients = [int(c) for c in args.clients.split(",")]
    names = ["fcgiwrap", "fpm-ondemand", "fpm-static"]

    tmp = tempfile.mkdtemp(prefix="fcgiwrap-php-bench.")
    root = os.path.join(tmp, "www")
    os.mkdir(root)
    with open(os.path.join(root, "hello.php"), "w") as f:
        f.write(PAGE)
    os.chmod(root, 0o755)
    ports = {n: free_port() for n in names}
    socks = {n: "%s/%s.sock" % (tmp, n) for n in names}
    with open(os.path.join(tmp, "nginx.conf"), "w") as f:
        f.write(NGINX_CONF.format(tmp=tmp, servers="".join(
            SERVER.format(port=ports[n], root=root, sock=socks[n]) for n in names)))
    devnull = open(os.devnull, "w")
    servers = {"fcgiwrap": subprocess.Popen([args.ours, "-s", "unix:" + socks["fcgiwrap"], "--allow-root",
                                             "--interpreter", ".php=" + args.php_cgi], stderr=devnull)}
    for n in names[1:]:
        conf = os.path.join(tmp, n + ".conf")
        with open(conf, "w") as f:
            f.write(FPM_CONF.format(tmp=tmp, name=n, sock=socks[n], pm=n.split("-")[1]))
        servers[n] = subprocess.Popen([fpm[-1], "-F", "-R", "-y", conf], stderr=devnull)
    for n in names:
        wait_socket(socks[n])
    nginx = subprocess.Popen(["nginx", "-p", tmp, "-c", tmp + "/nginx.conf"], stderr=devnull)
    time.sleep(0.5)
    results = {}

    def url(n):
        return "http://127.0.0.1:%d/hello.php?name=bench" % ports[n]

    try:
        for n in names:  # warm up, and check the page
            out = subprocess.run(["curl", "-sS", url(n)], capture_output=True, text=True).stdout
            if not out.startswith("Hello, bench"):
                raise SystemExit("%s answered %r" % (n, out[:200]))
            wrk(url(n), 4, 1)
        for c in clients:
            for rnd in range(args.rounds):
                for n in (names if rnd % 2 == 0 else names[::-1]):
                    c0 = server_cpu(servers[n].pid)
                    load = wrk(url(n), c, args.seconds)
                    cpu = (server_cpu(servers[n].pid) - c0) / max(load.total, 1) * 1e3
                    results.setdefault((c, n), []).append((load.rps, load.ms(50), load.ms(99), cpu, load.failures))
        # Idle: what each keeps resident once the load is over.
        time.sleep(2 if args.smoke else 12)
        for n in names:
            results[("rss", n)] = rss_kib(tree_pids(servers[n].pid))
    finally:
        nginx.send_signal(signal.SIGQUIT)
        nginx.wait()
        for p in servers.values():
            p.send_signal(signal.SIGTERM)
            p.wait()
        shutil.rmtree(tmp, ignore_errors=True)
    report(names, clients, results)


def report(names, clients, results):
    def med(c, n, i):
        return statistics.median(r[i] for r in results[(c, n)])
    print("%-22s %10s %10s %10s %12s %8s  %s" % ("clients / server", "req/s", "p50 ms", "p99 ms", "CPU ms/req",
                                                 "failed", "req/s vs fcgiwrap"))
    for c in clients:
        for n in names:
            print("%-22s %10.0f %10.1f %10.1f %12.2f %8d  %.2fx" % (
                "%d / %s" % (c, n), med(c, n, 0), med(c, n, 1), med(c, n, 2), med(c, n, 3),
                sum(r[4] for r in results[(c, n)]), med(c, n, 0) / med(c, "fcgiwrap", 0)))
    print("idle RSS after the load (KiB, all processes): " +
          ", ".join("%s %d" % (n, results[("rss", n)]) for n in names))


if __name__ == "__main__":
    main()
