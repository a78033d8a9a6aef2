"""Gossip membership with real quorumd processes on loopback: nodes that know
only one seed (--join) form one cluster and every node sees every member
alive; a node killed with SIGKILL is marked down on the others within the
configured gossip thresholds; a restarted node is seen alive again.
"""
import json
import os
import time

from conftest import free_port, port_open, wait_for
from test_cluster_node import ctl, quorumd

GOSSIP_OPTS = ["gossip_interval=200ms", "gossip_suspect_after=1s", "gossip_down_after=2s",
               "request_timeout=2s"]


class GossipCluster:
    """n quorumd processes: node 0 is the seed, the others --join it."""

    def __init__(self, procs, tmp, n):
        self.procs = procs
        self.tmp = str(tmp)
        self.n = n
        self.ids = [f"g{i + 1}" for i in range(n)]
        self.ports = [free_port() for _ in range(n)]
        self.proc = [None] * n
        self.gen = [0] * n

    def addr(self, i):
        return f"127.0.0.1:{self.ports[i]}"

    def start(self, i):
        self.gen[i] += 1
        args = [quorumd(), "--data", os.path.join(self.tmp, f"data-{self.ids[i]}"),
                "--listen", self.addr(i), "--node-id", self.ids[i]]
        if i != 0:
            args += ["--join", self.addr(0)]
        for o in GOSSIP_OPTS:
            args += ["-o", o]
        p = self.procs.start(f"quorumd-{self.ids[i]}-{self.gen[i]}", args)
        self.proc[i] = p
        wait_for(lambda: port_open(self.ports[i]) or not p.alive(), timeout=60,
                 what=f"{self.ids[i]} listening")
        assert p.alive(), p.log()
        return p

    def status(self, i):
        r = ctl(self.addr(i), "status", "--json")
        if r.returncode != 0:
            return None
        return json.loads(r.stdout)

    def states(self, i):
        st = self.status(i)
        if st is None:
            return None
        return {m["id"]: m["state"] for m in st["members"]}


def test_join_via_seed_converges_and_detects_kill9(procs, tmp_path):
    c = GossipCluster(procs, tmp_path, 4)
    for i in range(c.n):
        c.start(i)
    everyone_up = {nid: "up" for nid in c.ids}

    # every node knows every member, all alive (the joiners knew only g1)
    t0 = time.monotonic()
    for i in range(c.n):
        wait_for(lambda i=i: c.states(i) == everyone_up, timeout=30,
                 what=f"{c.ids[i]} sees every member up")
    converge_s = time.monotonic() - t0
    for i in range(c.n):
        st = c.status(i)
        assert st["gossip"] == {"alive": 4, "suspect": 0, "down": 0, "left": 0}, st["gossip"]
        assert st["ring_version"] >= 1
    # a write works across the gossip-formed cluster
    r = ctl(c.addr(1), "put", "gk", "gv")
    assert r.returncode == 0, r.stderr

    # kill -9 one node: the others mark it down (down_after=2s; allow a
    # generous margin for a slow, sanitized machine)
    c.proc[3].kill9()
    t1 = time.monotonic()
    expect = dict(everyone_up, g4="down")
    def marked_down(i):
        st = c.status(i)
        return (st is not None and {m["id"]: m["state"] for m in st["members"]} == expect
                and st["gossip"]["down"] == 1 and st["gossip"]["alive"] == 3)

    # suspect already shows as "down" in the member list; wait for the
    # detector's final mark too
    for i in range(3):
        wait_for(lambda i=i: marked_down(i), timeout=30, what=f"{c.ids[i]} sees g4 down")
    detect_s = time.monotonic() - t1
    # the detector did not fire before its threshold
    assert detect_s >= 1.0, detect_s

    # restarted, it is alive again everywhere (a higher incarnation)
    c.start(3)
    for i in range(c.n):
        wait_for(lambda i=i: c.states(i) == everyone_up, timeout=30,
                 what=f"{c.ids[i]} sees g4 up again")
    print(f"gossip: converge {converge_s:.2f}s, down detected {detect_s:.2f}s")


def test_bad_gossip_config_refused(procs, tmp_path):
    port = free_port()
    p = procs.start("quorumd-bad", [quorumd(), "--data", str(tmp_path / "d"),
                                    "--listen", f"127.0.0.1:{port}",
                                    "-o", "gossip_suspect_after=5s",
                                    "-o", "gossip_down_after=1s"])
    wait_for(lambda: not p.alive(), timeout=30, what="quorumd exits")
    assert p.popen.returncode == 1
    assert "gossip" in p.log()
