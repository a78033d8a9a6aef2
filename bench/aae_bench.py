#!/usr/bin/env python3
"""Anti-entropy benchmark with three real quorumd processes on 127.0.0.1.

1. Repair of a wiped replica: preload KEYS keys (VALUE bytes each, W=3),
   stop one node, delete its data directory, restart it with the same id,
   and time `quorumctl repair` on it. Prints keys and bytes moved, the tree
   exchange bytes and the time.
2. Foreground latency with background anti-entropy off and on: a closed-loop
   `quorumctl bench` (50% gets, 50% puts) against the cluster for DURATION,
   once with aae=off and once with aae on (interval 500 ms), each right
   after a restart with the third replica wiped (so with AAE on, trees are
   rebuilt and that replica is repaired in the background at the default
   aae_rate during the run), once more with aae on and all replicas equal. Prints p50/p99 of the runs and the p99 ratios
   (on / off).

Usage: bench/aae_bench.py [--build DIR] [--keys N] [--value-size B]
                          [--duration 10s] [--clients 16]
The default key count (20,000) runs in a few minutes on a small, shared
machine; QFS_LONG=1 makes it 1,000,000 (the issue's figure).
Every process started is stopped at the end (by PID).
"""
import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import functools

print = functools.partial(print, flush=True)  # noqa: A001 - progress as it comes

BASE = ["gossip_interval=200ms", "gossip_suspect_after=1s", "gossip_down_after=2s",
        "request_timeout=5s", "n=3", "r=2", "w=2", "sloppy_quorum=off"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    def __init__(self, build, tmp):
        self.build = build
        self.tmp = tmp
        self.ids = ["b1", "b2", "b3"]
        self.ports = [free_port() for _ in self.ids]
        self.procs = [None] * 3

    def addr(self, i):
        return f"127.0.0.1:{self.ports[i]}"

    def data(self, i):
        return os.path.join(self.tmp, f"data-{self.ids[i]}")

    def start(self, i, opts):
        peers = ",".join(f"{self.ids[j]}@{self.addr(j)}" for j in range(3))
        args = [os.path.join(self.build, "src/node/quorumd"), "--data", self.data(i),
                "--listen", self.addr(i), "--node-id", self.ids[i], "--peers", peers]
        for o in BASE + opts:
            args += ["-o", o]
        log = open(os.path.join(self.tmp, f"{self.ids[i]}.log"), "ab")
        self.procs[i] = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.ports[i]), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"{self.ids[i]} did not start")

    def stop(self, i):
        p = self.procs[i]
        if p and p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.procs[i] = None

    def stop_all(self):
        for i in range(3):
            self.stop(i)

    def ctl(self, i, *args, timeout=3600):
        cmd = [os.path.join(self.build, "src/cli/quorumctl"), "--node", self.addr(i),
               "--timeout", "10s"] + [str(a) for a in args]
        return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              timeout=timeout)

    def aae(self, i):
        r = self.ctl(i, "status", "--json", timeout=30)
        return json.loads(r.stdout)["aae"] if r.returncode == 0 else None

    def wait_ready(self, timeout=600):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                ok = True
                for i in range(3):
                    r = self.ctl(i, "status", "--json", timeout=30)
                    st = json.loads(r.stdout)
                    up = all(m["state"] == "up" for m in st["members"]) and \
                        len(st["members"]) == 3
                    a = st["aae"]
                    ok = ok and up and a["trees_ready"] >= 1 and a["trees_building"] == 0
                if ok:
                    return
            except (ValueError, KeyError):
                pass
            time.sleep(0.2)
        raise RuntimeError("cluster not ready")


def bench(c, duration, clients, value_size, keys, extra=()):
    nodes = ",".join(c.addr(i) for i in range(3))
    r = c.ctl(0, "bench", "--nodes", nodes, "--clients", clients, "--keys", keys,
              "--duration", duration, "--value-size", value_size, "--get-percent", 50,
              "--json", *extra)
    if r.returncode != 0:
        raise RuntimeError(f"bench failed: {r.stderr.decode()}")
    return json.loads(r.stdout)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.environ.get("QFS_BUILDDIR", "."))
    ap.add_argument("--keys", type=int,
                    default=1000000 if os.environ.get("QFS_LONG") == "1" else 20000)
    ap.add_argument("--value-size", type=int, default=100)
    ap.add_argument("--duration", default="10s")
    ap.add_argument("--clients", type=int, default=16)
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="aae-bench-")
    c = Cluster(os.path.abspath(a.build), tmp)
    try:
        off = ["aae=off"]
        for i in range(3):
            c.start(i, off)
        c.wait_ready()
        t0 = time.monotonic()
        pre = bench(c, "100ms", a.clients, a.value_size, a.keys, ["--preload", "--w", "3"])
        print(f"preloaded {a.keys} keys of {a.value_size} bytes in "
              f"{time.monotonic() - t0:.1f} s ({pre['preload_errors']} errors)")

        # 1. repair of a wiped replica
        c.stop(2)
        shutil.rmtree(c.data(2))
        c.start(2, off)
        c.wait_ready()
        t0 = time.monotonic()
        r = c.ctl(2, "repair", "--json")
        took = time.monotonic() - t0
        rep = json.loads(r.stdout)
        moved = rep["bytes_exchange"] + rep["bytes_sent"] + rep["bytes_received"]
        print(f"repair of a replica missing {a.keys} keys: {took:.1f} s "
              f"(node: {rep['elapsed_ms'] / 1000:.1f} s), state {rep['state']}, "
              f"{rep['keys_received']} keys received ({rep['bytes_received']} bytes), "
              f"{rep['keys_sent']} sent, tree exchange {rep['bytes_exchange']} bytes, "
              f"total {moved} bytes, {rep['keys_received'] / max(took, 1e-9):.0f} keys/s")

        # 2. foreground latency, background AAE off then on
        # both runs start right after a restart with the third replica
        # wiped, so they differ only in what anti-entropy does meanwhile
        # (off: nothing; on: tree builds, rounds, repairing that replica)
        def restart_wiped(opts):
            c.stop_all()
            shutil.rmtree(c.data(2))
            for i in range(3):
                c.start(i, opts)
            time.sleep(1)  # membership handshakes
        restart_wiped(off)
        lat_off = bench(c, a.duration, a.clients, a.value_size, a.keys)
        restart_wiped(["aae_interval=500ms"])
        lat_on = bench(c, a.duration, a.clients, a.value_size, a.keys)
        moved = sum((c.aae(i) or {}).get("keys_sent", 0) for i in range(3))
        c.wait_ready()
        t0 = time.monotonic()
        equal = False
        while not equal and time.monotonic() - t0 < 600:
            roots = {tuple((r["root"], r["keys"]) for r in c.aae(i)["roots"]) for i in range(3)}
            equal = len(roots) == 1
            if not equal:
                time.sleep(0.5)
        if not equal:
            # background repair still running: finish it on demand
            c.ctl(2, "repair", "--json")
        lat_idle = bench(c, a.duration, a.clients, a.value_size, a.keys)
        print(f"foreground, AAE off: {lat_off['ops_per_sec']:.0f} ops/s, "
              f"p50 {lat_off['p50_ms']:.2f} ms, p99 {lat_off['p99_ms']:.2f} ms")
        print(f"foreground, AAE on while it rebuilds trees and repairs the wiped replica "
              f"({moved} keys sent during the run): {lat_on['ops_per_sec']:.0f} ops/s, "
              f"p50 {lat_on['p50_ms']:.2f} ms, p99 {lat_on['p99_ms']:.2f} ms")
        print(f"foreground, AAE on, replicas equal (rounds every 500 ms): "
              f"{lat_idle['ops_per_sec']:.0f} ops/s, p50 {lat_idle['p50_ms']:.2f} ms, "
              f"p99 {lat_idle['p99_ms']:.2f} ms")
        off99 = max(lat_off['p99_ms'], 1e-9)
        print(f"p99 ratio on/off: {lat_on['p99_ms'] / off99:.2f} while repairing, "
              f"{lat_idle['p99_ms'] / off99:.2f} idle")
    finally:
        c.stop_all()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
