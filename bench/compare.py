#!/usr/bin/env python3
"""Side-by-side benchmark: this fcgiwrap and Debian's /usr/sbin/fcgiwrap
behind one nginx on 127.0.0.1, measured in the same run, interleaved.

For each concurrency it runs wrk against each daemon in turn, ROUNDS times,
and reports the median requests/s and the daemon's own CPU time per request
(user + system of the daemon's processes, from /proc; the CGI children are
not counted).  Usage: bench/compare.py [--rounds N] [--seconds S]
[--clients 1,32] [--theirs-c 4]"""

import argparse
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(HERE)
CLK_TCK = os.sysconf("SC_CLK_TCK")

NGINX_CONF = """
daemon off;
worker_processes 1;
user root;
error_log {tmp}/error.log;
pid {tmp}/nginx.pid;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    fastcgi_temp_path {tmp}/fastcgi;
    proxy_temp_path {tmp}/proxy;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    server {{
        listen 127.0.0.1:{port_ours};
        location / {{
            fastcgi_param SCRIPT_FILENAME {cgi};
            include /etc/nginx/fastcgi_params;
            fastcgi_pass unix:{tmp}/ours.sock;
        }}
    }}
    server {{
        listen 127.0.0.1:{port_theirs};
        location / {{
            fastcgi_param SCRIPT_FILENAME {cgi};
            include /etc/nginx/fastcgi_params;
            fastcgi_pass unix:{tmp}/theirs.sock;
        }}
    }}
}}
"""


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_socket(path):
    for _ in range(200):
        if os.path.exists(path):
            return
        time.sleep(0.02)
    raise SystemExit("no socket at " + path)


def process_tree(pid):
    """pid and its descendants that are fcgiwrap processes (not scripts)."""
    pids, exe = [], os.readlink("/proc/%d/exe" % pid)
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.readlink("/proc/%s/exe" % entry) == exe:
                pids.append(int(entry))
        except OSError:
            pass
    return pids


def cpu_seconds(pids):
    total = 0
    for pid in pids:
        try:
            with open("/proc/%d/stat" % pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        except OSError:
            pass
    return total / CLK_TCK


def wrk(port, clients, seconds):
    threads = min(clients, 2)
    out = subprocess.run(["wrk", "-t%d" % threads, "-c%d" % clients, "-d%ds" % seconds, "--latency",
                          "http://127.0.0.1:%d/" % port], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    p50 = re.search(r"50%\s+([\d.]+\w+)", out).group(1)
    p99 = re.search(r"99%\s+([\d.]+\w+)", out).group(1)
    return rps, total, int(errors.group(1)) if errors else 0, p50, p99


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--clients", default="1,32")
    ap.add_argument("--theirs-c", default="4", help="-c for Debian's fcgiwrap")
    ap.add_argument("--ours", default=os.path.join(TOP, "fcgiwrap"))
    ap.add_argument("--theirs", default="/usr/sbin/fcgiwrap")
    ap.add_argument("--cgi", default=os.path.join(TOP, "tests", "cgi", "hello"))
    args = ap.parse_args()
    for tool in ("wrk", "nginx"):
        if not shutil.which(tool) and not os.path.exists("/usr/sbin/" + tool):
            raise SystemExit("%s is required: apt-get install wrk nginx-light" % tool)

    tmp = tempfile.mkdtemp(prefix="fcgiwrap-bench.")
    ports = {"ours": free_port(), "theirs": free_port()}
    with open(os.path.join(tmp, "nginx.conf"), "w") as f:
        f.write(NGINX_CONF.format(tmp=tmp, port_ours=ports["ours"], port_theirs=ports["theirs"], cgi=args.cgi))
    devnull = open(os.devnull, "w")
    daemons = {
        "ours": subprocess.Popen([args.ours, "-s", "unix:%s/ours.sock" % tmp, "--allow-root"], stderr=devnull),
        "theirs": subprocess.Popen([args.theirs, "-c", args.theirs_c, "-s", "unix:%s/theirs.sock" % tmp],
                                   stderr=devnull),
    }
    wait_socket(tmp + "/ours.sock")
    wait_socket(tmp + "/theirs.sock")
    nginx = subprocess.Popen(["nginx", "-p", tmp, "-c", tmp + "/nginx.conf"], stderr=devnull)
    time.sleep(0.5)
    try:
        for name in daemons:  # warm up
            wrk(ports[name], 4, 1)
        results = {}
        for clients in [int(c) for c in args.clients.split(",")]:
            for rnd in range(args.rounds):
                for name in (("ours", "theirs") if rnd % 2 == 0 else ("theirs", "ours")):
                    pids = process_tree(daemons[name].pid)
                    c0 = cpu_seconds(pids)
                    rps, total, errors, p50, p99 = wrk(ports[name], clients, args.seconds)
                    cpu = cpu_seconds(pids) - c0
                    results.setdefault((clients, name), []).append((rps, cpu / max(total, 1) * 1e6, errors,
                                                                     p50, p99))
        print("machine: %s, %d cores; nginx 1 worker; CGI: %s" % (os.uname().machine, os.cpu_count(),
                                                                 os.path.basename(args.cgi)))
        print("medians of %d interleaved runs of %d s each; theirs = %s -c %s" % (
            args.rounds, args.seconds, args.theirs, args.theirs_c))
        print("%-8s %-7s %10s %12s %8s %8s %7s" % ("clients", "daemon", "req/s", "cpu us/req", "p50", "p99",
                                                   "errors"))
        for clients in [int(c) for c in args.clients.split(",")]:
            med = {}
            for name in ("ours", "theirs"):
                rows = results[(clients, name)]
                rps = statistics.median(r[0] for r in rows)
                cpu = statistics.median(r[1] for r in rows)
                mid = sorted(rows, key=lambda r: r[0])[len(rows) // 2]
                med[name] = (rps, cpu)
                print("%-8d %-7s %10.0f %12.1f %8s %8s %7d" % (clients, name, rps, cpu, mid[3], mid[4],
                                                              sum(r[2] for r in rows)))
            print("%-8d %-7s %10.2fx %11.2fx" % (clients, "ratio", med["ours"][0] / med["theirs"][0],
                                                 med["ours"][1] / med["theirs"][1]))
    finally:
        nginx.send_signal(signal.SIGQUIT)
        nginx.wait()
        for name, p in daemons.items():
            # Debian's fcgiwrap leaves its preforked children on SIGTERM.
            for pid in process_tree(p.pid):
                os.kill(pid, signal.SIGTERM)
            p.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
