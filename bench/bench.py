#!/usr/bin/env python3
"""fcgiwrap benchmark, side by side with Debian's fcgiwrap 1.1.0.

Both daemons run behind one nginx on 127.0.0.1 and are measured in the same
run, interleaved (machines here are shared and noisy: medians of several
runs).  Measured: requests/s of a small compiled CGI at 1, 32, 256 and 1000
clients (wrk) with p50/p99/p99.9 latency (wrk's histogram, through
bench/latency.lua), each daemon's own CPU time per request (user + system
of its processes, from /proc; scripts not counted) and its share of the
whole machine's CPU time, and its scripts' share where they reach its
counters; at the largest client count (the burst), the requests/s
answered 2xx or 3xx, the daemon's peak RSS and threads during it and both
again after --settle seconds, with the time its RSS took to get back
under 2.5 MiB; download and upload throughput; RSS idle and under many
concurrent slow requests; p99 of fast requests while 8 slow ones run; and
the spawn floor
(bench/spawn_floor: the same CGI started and read directly, one thread
per core, no FastCGI; measured in each round at 32 clients).  Prints a
table with ratios and the targets, and writes bench/out/results.txt,
bench/out/chart.png (requests/s) and bench/out/latency.png (latency CDF)
with gnuplot.

Usage: bench/bench.py [--smoke] [--rounds N] [--seconds S] [--settle S]
                      [--clients 1,32,256,1000]"""

import argparse
import collections
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(HERE)
CLK_TCK = os.sysconf("SC_CLK_TCK")
MiB = 1 << 20
LATENCY_SCRIPT = os.path.join(HERE, "latency.lua")
# The RSS a daemon should be back under after the burst (issue 22).
SETTLED_KIB = 2560

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
    client_max_body_size 0;
    fastcgi_read_timeout 300s;
{servers}
}}
"""

SERVER = """
    server {{
        listen 127.0.0.1:{port};
        location = /hello {{
            fastcgi_param SCRIPT_FILENAME {hello};
            include /etc/nginx/fastcgi_params;
            fastcgi_pass unix:{sock};
        }}
        location ~ ^/bench/(.+)$ {{
            fastcgi_param SCRIPT_FILENAME {cgi}/$1;
            include /etc/nginx/fastcgi_params;
            fastcgi_pass unix:{sock};
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
    for _ in range(500):
        if os.path.exists(path):
            return
        time.sleep(0.02)
    raise SystemExit("no socket at " + path)


def daemon_pids(pid):
    """pid and its children running the same executable (Debian's
    preforked children); scripts are other executables, and another
    daemon of the same executable (ours with --cgroup) is not a child."""
    try:
        exe = os.readlink("/proc/%d/exe" % pid)
    except OSError:  # exited already (then the error that ended the run is above)
        return []
    out = [pid]
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != pid:
            try:
                with open("/proc/%s/stat" % entry) as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                if ppid == pid and os.readlink("/proc/%s/exe" % entry) == exe:
                    out.append(int(entry))
            except (OSError, ValueError):
                pass
    return out


def cpu_seconds(pids, children=False):
    """User + system time of pids; with children, that of the children they
    have reaped instead (the scripts, for a daemon)."""
    total = 0
    for pid in pids:
        try:
            with open("/proc/%d/stat" % pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[13]) + int(fields[14]) if children else int(fields[11]) + int(fields[12])
        except OSError:
            pass
    return total / CLK_TCK


def nginx_pids(master):
    out = [master]
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open("/proc/%s/stat" % entry) as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == master:
                        out.append(int(entry))
            except OSError:
                pass
    return out


def chain_cpu(daemon, nginx):
    """CPU seconds so far of each part of a transfer: the daemon, its
    scripts, nginx, and this program's children (curl)."""
    own = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (cpu_seconds(daemon), cpu_seconds(daemon, children=True), cpu_seconds(nginx_pids(nginx)),
            own.ru_utime + own.ru_stime)


def status_sum(pids, field):
    """The sum over pids of a number field of /proc/PID/status."""
    total = 0
    for pid in pids:
        try:
            with open("/proc/%d/status" % pid) as f:
                total += int(next(line for line in f if line.startswith(field + ":")).split()[1])
        except (OSError, StopIteration):
            pass
    return total


def rss_kib(pids):
    return status_sum(pids, "VmRSS")


def thread_count(pids):
    return status_sum(pids, "Threads")


def machine_cpu_seconds():
    """CPU time the whole machine has had so far, busy or idle, all cores
    (/proc/stat: user to steal; guest time is inside user already)."""
    with open("/proc/stat") as f:
        return sum(int(v) for v in f.readline().split()[1:9]) / CLK_TCK


class Load(collections.namedtuple("Load", "rps rps_ok total failures latency")):
    """One wrk run: requests/s, those of them answered 2xx or 3xx, requests
    answered, failed ones, and latency percentiles as {percentile: ms}."""

    def ms(self, p):
        """The latency at percentile p in ms; nan where nothing was answered."""
        return self.latency.get(p, float("nan"))


def wrk(url, clients, seconds):
    """Runs wrk.  Failed: non-2xx or 3xx answers and socket errors, wrk's
    2 s timeouts among them.  Latency: every answer wrk got, 5xx included,
    from wrk's own histogram, printed by bench/latency.lua (--latency
    stops at 99%); a request past the timeout is failed and not in it."""
    out = subprocess.run(["wrk", "-t%d" % min(clients, 2), "-c%d" % clients, "-d%ds" % seconds,
                          "-s", LATENCY_SCRIPT, url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    bad = int(bad.group(1)) if bad else 0
    failures = bad + (sum(map(int, errors.groups())) if errors else 0)
    latency = {float(p): int(us) / 1000 for p, us in re.findall(r"^latency-us ([\d.]+) (\d+)$", out, re.M)}
    return Load(rps, rps * (total - bad) / total if total else 0, total, failures, latency)


def transfer(url, size, upload):
    """Seconds to download or upload size bytes through nginx (curl)."""
    args = ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "300"]
    if upload:
        args += ["-H", "Content-Type: application/octet-stream", "--data-binary", "@-"]
    start = time.monotonic()
    if upload:
        p = subprocess.Popen(args + [url], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        chunk = bytes(MiB)
        for _ in range(size // MiB):
            p.stdin.write(chunk)
        p.stdin.close()
        code = p.stdout.read().decode()
        p.wait()
    else:
        code = subprocess.run(args + [url], capture_output=True, text=True).stdout
    if code != "200":
        raise SystemExit("transfer failed: HTTP %s" % code)
    return time.monotonic() - start


def fetch_quietly(u, timeout):
    """GETs u; a failure (Debian's fcgiwrap queues slow requests behind its
    -c processes) only means that request is not counted."""
    try:
        urllib.request.urlopen(u, timeout=timeout).read()
    except OSError:
        pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--smoke", action="store_true", help="tiny sizes: seconds, checks that the bench runs")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--clients", default="1,32,256,1000", help="client counts; the largest is the burst")
    ap.add_argument("--settle", type=int, default=30, help="seconds the daemon is watched after each burst")
    ap.add_argument("--transfer-mib", type=int, default=256)
    ap.add_argument("--slow", type=int, default=256, help="concurrent slow requests for the RSS figure")
    ap.add_argument("--theirs-c", default="4", help="-c for Debian's fcgiwrap")
    ap.add_argument("--ours", default=os.path.join(TOP, "fcgiwrap"))
    ap.add_argument("--theirs", default="/usr/sbin/fcgiwrap")
    ap.add_argument("--hello", default=os.path.join(TOP, "tests", "cgi", "hello"))
    ap.add_argument("--floor", default=os.path.join(HERE, "spawn_floor"))
    ap.add_argument("--out", default=os.path.join(HERE, "out"))
    args = ap.parse_args()
    # nginx passes SCRIPT_FILENAME as given; fcgiwrap 1.1.0 needs it absolute.
    args.hello = os.path.abspath(args.hello)
    if args.smoke:
        args.rounds, args.seconds, args.clients, args.transfer_mib, args.slow, args.settle = 1, 1, "1,8", 4, 16, 2
    clients = [int(c) for c in args.clients.split(",")]
    for tool in ("wrk", "curl", "nginx"):
        if not shutil.which(tool) and not os.path.exists("/usr/sbin/" + tool):
            raise SystemExit("%s is required: apt-get install wrk curl nginx-light" % tool)
    have_theirs = os.path.exists(args.theirs)
    names = ["ours", "theirs"] if have_theirs else ["ours"]
    # The cost of containment: ours again, each script in a cgroup of its
    # own, where a cgroup v2 directory can be made.
    cgroup = make_cgroup()
    # The cost of the default isolation: ours again with --no-isolation.
    servers = names + (["ours-cgroup"] if cgroup else []) + ["ours-noiso"]

    tmp = tempfile.mkdtemp(prefix="fcgiwrap-bench.")
    cgi = os.path.join(tmp, "cgi")
    shutil.copytree(os.path.join(HERE, "cgi"), cgi)
    for f in os.listdir(cgi):
        os.chmod(os.path.join(cgi, f), 0o755)
    os.chmod(cgi, 0o755)
    ports = {n: free_port() for n in servers}
    socks = {n: "%s/%s.sock" % (tmp, n) for n in servers}
    with open(os.path.join(tmp, "nginx.conf"), "w") as f:
        f.write(NGINX_CONF.format(tmp=tmp, servers="".join(
            SERVER.format(port=ports[n], hello=args.hello, cgi=cgi, sock=socks[n]) for n in servers)))
    devnull = open(os.devnull, "w")
    daemons = {"ours": subprocess.Popen([args.ours, "-s", "unix:" + socks["ours"], "--allow-root",
                                         "-c", str(max(256, args.slow))], stderr=devnull)}
    if have_theirs:
        daemons["theirs"] = subprocess.Popen([args.theirs, "-c", args.theirs_c, "-s", "unix:" + socks["theirs"]],
                                             stderr=devnull)
    if cgroup:
        daemons["ours-cgroup"] = subprocess.Popen([args.ours, "-s", "unix:" + socks["ours-cgroup"], "--allow-root",
                                                   "-c", str(max(256, args.slow)), "--cgroup", cgroup],
                                                  stderr=devnull)
    daemons["ours-noiso"] = subprocess.Popen([args.ours, "-s", "unix:" + socks["ours-noiso"], "--allow-root",
                                              "-c", str(max(256, args.slow)), "--no-isolation"], stderr=devnull)
    for n in servers:
        wait_socket(socks[n])
    time.sleep(0.3)
    pids = {n: daemon_pids(daemons[n].pid) for n in servers}
    results = {}
    nginx = subprocess.Popen(["nginx", "-p", tmp, "-c", tmp + "/nginx.conf"], stderr=devnull)
    time.sleep(0.5)

    floor_clients = 32 if 32 in clients else clients[-1]

    def url(n, path):
        return "http://127.0.0.1:%d%s" % (ports[n], path)

    try:
        for n in names:
            results[("rss_idle", n)] = rss_kib(pids[n])
        for n in names:  # warm up
            wrk(url(n, "/hello"), 4, 1)
        # Requests/s, latency and CPU, interleaved; the largest client
        # count is the burst, after which each daemon is watched settling
        # before the other's turn.
        for c in clients:
            burst = c == max(clients)
            for rnd in range(args.rounds):
                for n in (names if rnd % 2 == 0 else names[::-1]):
                    row, latency, peak = measure_load(url(n, "/hello"), c, args.seconds, pids[n], burst)
                    results.setdefault(("rps", c, n), []).append(row)
                    results.setdefault(("latency", c, n), []).append(latency)
                    if burst:
                        settled = watch_settle(pids[n], args.settle)
                        results.setdefault(("burst", n), []).append(Burst(*peak, *settled))
                # The spawn floor in each round at the clients it is
                # compared at: a single measurement at the end moved the
                # ratio by a fifth between runs on this shared machine.
                if c == floor_clients and os.path.exists(args.floor):
                    results.setdefault("floor", []).append(spawn_floor(args))
        # Throughput both ways.
        size = args.transfer_mib * MiB
        # Where the CPU goes, per GiB moved: the daemon, the script, nginx
        # and curl share the machine's cores.
        for rnd in range(max(1, min(args.rounds, 3))):
            for n in (names if rnd % 2 == 0 else names[::-1]):
                for way, path in (("down", "/bench/source.sh?%d" % size), ("up", "/bench/sink.sh")):
                    c0 = chain_cpu(pids[n], nginx.pid)
                    t = transfer(url(n, path), size, way == "up")
                    c1 = chain_cpu(pids[n], nginx.pid)
                    results.setdefault((way, n), []).append(size / MiB / t)
                    results.setdefault((way + "_cpu", n), []).append(
                        [(b - a) * 1024 / (size / MiB) for a, b in zip(c0, c1)])
        # RSS under many concurrent slow requests.
        for n in names:
            threads = [threading.Thread(target=fetch_quietly, args=(url(n, "/bench/slow.sh?3"), 20))
                       for _ in range(args.slow)]
            for t in threads:
                t.start()
            time.sleep(2)
            results[("rss_slow", n)] = rss_kib(daemon_pids(daemons[n].pid))
            for t in threads:
                t.join()
        # p99 of fast requests while 8 slow (5 s) scripts run; a median
        # of rounds, as every other figure.
        for rnd in range(max(1, min(args.rounds, 3))):
            for n in (names if rnd % 2 == 0 else names[::-1]):
                threads = [threading.Thread(target=fetch_quietly, args=(url(n, "/bench/slow.sh?5"), 30))
                           for _ in range(8)]
                for t in threads:
                    t.start()
                time.sleep(0.5)
                load = wrk(url(n, "/hello"), 4, 3)
                # No answer at all while the slow ones run: blocked.
                results.setdefault(("p99_busy", n), []).append(load.ms(99) if load.total > 0 else float("inf"))
                for t in threads:
                    t.join()
        # Containment's cost: requests/s at 32 clients with and without a
        # cgroup per script, interleaved.
        for rnd in range(args.rounds if cgroup else 0):
            for n in (("ours", "ours-cgroup") if rnd % 2 == 0 else ("ours-cgroup", "ours")):
                rps = wrk(url(n, "/hello"), 32 if 32 in clients else clients[-1], args.seconds).rps
                results.setdefault(("containment", n), []).append(rps)
        # Isolation's cost (a Landlock domain per script): the same with
        # and without it.
        for rnd in range(args.rounds):
            for n in (("ours", "ours-noiso") if rnd % 2 == 0 else ("ours-noiso", "ours")):
                rps = wrk(url(n, "/hello"), 32 if 32 in clients else clients[-1], args.seconds).rps
                results.setdefault(("isolation", n), []).append(rps)
    finally:
        nginx.send_signal(signal.SIGQUIT)
        nginx.wait()
        for n, p in daemons.items():
            for pid in daemon_pids(p.pid):  # Debian's preforked children too
                try:
                    os.kill(pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
            p.wait()
        shutil.rmtree(tmp, ignore_errors=True)
        if cgroup:
            remove_cgroup(cgroup)
    report(args, names, clients, results)


Round = collections.namedtuple("Round", "rps rps_ok cpu_us failures p50 p99 p999 share_daemon share_scripts")
Burst = collections.namedtuple("Burst", "rss_peak threads_peak settled_s rss_after threads_after")


def measure_load(url, clients, seconds, pids, burst):
    """One wrk run against a daemon (pids: its processes), as a Round: the
    daemon's CPU per request and its share (and its scripts', None where
    they never reach its counters) of the machine's CPU time over the run.
    Also returns the latency percentiles, and with burst the daemon's peak
    RSS and thread count during the run (sampled), else None."""
    peak = [0, 0]
    stop = threading.Event()
    sampler = threading.Thread(target=sample_peak, args=(pids, stop, peak))
    if burst:
        sampler.start()
    before = machine_cpu_seconds(), cpu_seconds(pids), cpu_seconds(pids, children=True)
    load = wrk(url, clients, seconds)
    machine, daemon, scripts = (b - a for a, b in zip(before, (
        machine_cpu_seconds(), cpu_seconds(pids), cpu_seconds(pids, children=True))))
    if burst:
        stop.set()
        sampler.join()
    row = Round(load.rps, load.rps_ok, daemon / max(load.total, 1) * 1e6, load.failures, load.ms(50), load.ms(99),
                load.ms(99.9), 100 * daemon / machine, 100 * scripts / machine if scripts else None)
    return row, load.latency, peak if burst else None


def sample_peak(pids, stop, peak):
    """Until stop is set, keeps in peak the largest RSS (KiB) and thread
    count of pids seen, sampled every 0.1 s."""
    while not stop.wait(0.1):
        peak[0] = max(peak[0], rss_kib(pids))
        peak[1] = max(peak[1], thread_count(pids))


def watch_settle(pids, seconds):
    """After a burst: the seconds until the RSS of pids was at most
    SETTLED_KIB (inf: not within the watch), then their RSS and thread
    count once the watch of the given seconds is over."""
    start = time.monotonic()
    settled = float("inf")
    while True:
        elapsed = time.monotonic() - start
        if settled == float("inf") and rss_kib(pids) <= SETTLED_KIB:
            settled = elapsed
        if elapsed >= seconds:
            return settled, rss_kib(pids), thread_count(pids)
        time.sleep(0.25)


def make_cgroup():
    """A cgroup v2 directory for --cgroup, or None."""
    with open("/proc/mounts") as f:
        mounts = [line.split()[1] for line in f if line.split()[2] == "cgroup2"]
    if not mounts:
        return None
    path = os.path.join(mounts[0], "fcgiwrap-bench-%d" % os.getpid())
    try:
        os.mkdir(path)
    except OSError:
        return None
    return path


def remove_cgroup(path):
    for sub in os.listdir(path):
        if os.path.isdir(os.path.join(path, sub)):
            with open(os.path.join(path, sub, "cgroup.kill"), "w") as f:
                f.write("1")
            for _ in range(100):
                if "populated 0" in open(os.path.join(path, sub, "cgroup.events")).read():
                    break
                time.sleep(0.05)
            os.rmdir(os.path.join(path, sub))
    os.rmdir(path)


def spawn_floor(args):
    out = subprocess.run([args.floor, args.hello, str(args.seconds)], capture_output=True, text=True, check=True)
    return float(out.stdout)


def median(rows, field):
    """The median over rounds of one field of their figures; None where a
    round has none."""
    values = [getattr(r, field) for r in rows]
    return None if None in values else statistics.median(values)


def report(args, names, clients, results):
    lines = []
    say = lines.append
    say("machine: %s, %d cores, %s; nginx 1.22, 1 worker; CGI: %s" % (
        os.uname().machine, os.cpu_count(), os.uname().release, os.path.basename(args.hello)))
    say("medians of %d interleaved runs of %d s; theirs = %s -c %s" % (args.rounds, args.seconds, args.theirs,
                                                                       args.theirs_c))
    say("")
    say("%-26s %12s %12s %8s" % ("", "ours", "theirs", "ratio"))

    def row(label, value, fmt="%12.1f"):
        """value(name) is a figure, or None where there is none."""
        o = value("ours")
        t = value("theirs") if "theirs" in names else None
        r = (o / t) if o is not None and t else float("nan")

        def cell(v):
            return fmt % v if v is not None else "%12s" % "-"
        say("%-26s " % label + cell(o) + " " + cell(t) + " %7.2fx" % r)

    def part_cpu(way, i, n):
        v = statistics.median(r[i] for r in results[(way + "_cpu", n)])
        # A daemon whose scripts' times never reach its counters (their
        # reaper does not wait for them: fcgiwrap 1.1.0) has no figure.
        return None if i == 1 and v == 0 else v

    for c in clients:
        request_rows(row, results, c, args.settle if c == max(clients) else None)
    for way, label in (("down", "download"), ("up", "upload")):
        row("%s MiB/s" % label, lambda n, way=way: statistics.median(results[(way, n)]))
        for i, part in enumerate(("daemon", "script", "nginx", "curl")):
            row("  cpu s/GiB, %s" % part, lambda n, i=i, way=way: part_cpu(way, i, n), "%12.2f")
    row("RSS idle KiB", lambda n: results[("rss_idle", n)], "%12d")
    row("RSS, %d slow KiB" % args.slow, lambda n: results[("rss_slow", n)], "%12d")
    row("p99 ms beside 8 slow", lambda n: statistics.median(results[("p99_busy", n)]), "%12.2f")
    say("(inf: no fast request was answered while the 8 slow ones ran)")
    say("(latency: every answer, 5xx included; a request past wrk's 2 s timeout is failed, not in it)")
    say("(machine cpu: share of all cores' time during the run; scripts: those the daemon reaps)")
    say("(at %d clients, the burst: threads of all the daemon's processes; inf: RSS not back under %.1f MiB"
        % (max(clients), SETTLED_KIB / 1024))
    say(" within the %d s after it)" % args.settle)
    if ("containment", "ours") in results:
        plain = statistics.median(results[("containment", "ours")])
        contained = statistics.median(results[("containment", "ours-cgroup")])
        say("req/s at %d clients, a cgroup per script: %.0f against %.0f without: %.2fx" % (
            32 if 32 in clients else clients[-1], contained, plain, contained / plain))
    if ("isolation", "ours") in results:
        bare = statistics.median(results[("isolation", "ours-noiso")])
        isolated = statistics.median(results[("isolation", "ours")])
        say("req/s at %d clients, isolated (the default): %.0f against %.0f with --no-isolation: %.2fx" % (
            32 if 32 in clients else clients[-1], isolated, bare, isolated / bare))
    if "floor" in results:
        c32 = 32 if 32 in clients else clients[-1]
        ratios = [r.rps / f for r, f in zip(results[("rps", c32, "ours")], results["floor"])]
        say("spawn floor /s %18.0f   ours at %d clients: %.2fx of the floor (median of the rounds' ratios)" % (
            statistics.median(results["floor"]), c32, statistics.median(ratios)))
    text = "\n".join(lines) + "\n"
    sys.stdout.write(text)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "results.txt"), "w") as f:
        f.write(text)
    chart(args, names, clients, results)
    latency_chart(args, names, clients, results)


def request_rows(row, results, c, settle):
    """The rows of c clients; settle: the seconds watched after the burst
    when c is the burst, else None."""
    def rounds(n):
        return results[("rps", c, n)]

    def bursts(n):
        return results[("burst", n)]
    row("req/s, %d clients" % c, lambda n: median(rounds(n), "rps"), "%12.0f")
    row("  cpu us/request", lambda n: median(rounds(n), "cpu_us"))
    row("  machine cpu %, daemon", lambda n: median(rounds(n), "share_daemon"))
    row("  machine cpu %, scripts", lambda n: median(rounds(n), "share_scripts"))
    row("  p50 ms", lambda n: median(rounds(n), "p50"), "%12.2f")
    row("  p99 ms", lambda n: median(rounds(n), "p99"), "%12.2f")
    row("  p99.9 ms", lambda n: median(rounds(n), "p999"), "%12.2f")
    row("  failed requests", lambda n: sum(r.failures for r in rounds(n)), "%12d")
    if settle is None:
        return
    # At the burst, a daemon that gives up answers quickly with errors.
    row("  req/s answered 2xx/3xx", lambda n: median(rounds(n), "rps_ok"), "%12.0f")
    row("  RSS peak KiB", lambda n: median(bursts(n), "rss_peak"), "%12d")
    row("  RSS %d s after KiB" % settle, lambda n: median(bursts(n), "rss_after"), "%12d")
    row("  s to RSS <= %.1f MiB" % (SETTLED_KIB / 1024), lambda n: median(bursts(n), "settled_s"))
    row("  threads, peak", lambda n: median(bursts(n), "threads_peak"), "%12d")
    row("  threads, %d s after" % settle, lambda n: median(bursts(n), "threads_after"), "%12d")


def chart(args, names, clients, results):
    """A PNG bar chart of requests/s per client count (gnuplot)."""
    if not shutil.which("gnuplot"):
        print("(no gnuplot: apt-get install gnuplot-nox for the chart)")
        return
    data = os.path.join(args.out, "rps.dat")
    with open(data, "w") as f:
        f.write("clients " + " ".join(names) + (" floor" if "floor" in results else "") + "\n")
        for c in clients:
            f.write("%d %s%s\n" % (c, " ".join("%.0f" % median(results[("rps", c, n)], "rps") for n in names),
                                   " %.0f" % statistics.median(results["floor"]) if "floor" in results else ""))
    cols = len(names) + (1 if "floor" in results else 0)
    script = """
set terminal pngcairo size 800,480 noenhanced
set output '%s'
set title 'requests/s, small compiled CGI through nginx (higher is better)'
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set key top left
set ylabel 'requests/s'
set xlabel 'concurrent clients'
set yrange [0:*]
plot '%s' using 2:xtic(1) title columnheader(2)%s
""" % (os.path.join(args.out, "chart.png"), data,
       "".join(", '' using %d title columnheader(%d)" % (i, i) for i in range(3, cols + 2)))
    gnuplot(script)
    print("chart: %s" % os.path.join(args.out, "chart.png"))


def latency_chart(args, names, clients, results):
    """A PNG of the latency CDF of both daemons at 32 and 256 clients (at
    the others but 1 where those were not run), with gnuplot, log x: at
    each percentile, the median over the rounds.  Not at 1000 clients:
    there a daemon that gives up answers errors, and quickly."""
    if not shutil.which("gnuplot"):
        return
    shown = [c for c in clients if c in (32, 256)] or [c for c in clients if c > 1] or clients
    series = [(c, n) for c in shown for n in names if all(results[("latency", c, n)])]
    if not series:
        return
    points = sorted(results[("latency", series[0][0], series[0][1])][0])
    data = os.path.join(args.out, "latency.dat")
    with open(data, "w") as f:
        f.write("# percentile, then ms: " + " ".join("%s/%d" % (n, c) for c, n in series) + "\n")
        for p in points:
            f.write("%g %s\n" % (p, " ".join("%.3f" % statistics.median(r[p] for r in results[("latency", c, n)])
                                             for c, n in series)))
    # One colour per daemon, one dash pattern per client count.
    plots = ["'%s' using %d:1 with lines lw 2 lc %d dt %d title '%s, %d clients'" % (
        data, i + 2, names.index(n) + 1, shown.index(c) + 1, n, c) for i, (c, n) in enumerate(series)]
    gnuplot("""
set terminal pngcairo size 800,480 noenhanced
set output '%s'
set title 'latency CDF, small compiled CGI through nginx (further left is better)'
set logscale x
set grid
set key top left
set xlabel 'latency, ms (log scale)'
set ylabel 'requests answered within it, %%'
set yrange [0:100]
plot %s
""" % (os.path.join(args.out, "latency.png"), ", ".join(plots)))
    print("latency chart: %s" % os.path.join(args.out, "latency.png"))


def gnuplot(script):
    """Runs a gnuplot script, with the plain png terminal where there is no
    pngcairo."""
    r = subprocess.run(["gnuplot"], input=script, text=True, capture_output=True)
    if r.returncode != 0:
        if "pngcairo" in r.stderr:
            subprocess.run(["gnuplot"], input=script.replace("pngcairo", "png"), text=True, check=True)
        else:
            raise SystemExit("gnuplot failed: " + r.stderr)


if __name__ == "__main__":
    main()
