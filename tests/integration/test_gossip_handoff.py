"""Sloppy quorum and hinted handoff with real quorumd processes: with N=3
W=2 on five nodes, two of a key's three primaries are killed with SIGKILL;
writes still succeed (the writes meant for them go to fallbacks as hints);
after the owners restart, the hints are delivered (every node reports 0
hints) and each owner holds the data on its own (get --replica-only).
Strict mode (sloppy_quorum=off) refuses the same write.
"""
import json
import os
import time

from conftest import free_port, port_open, wait_for
from test_cluster_node import ctl, get_json, live_values, quorumd

OPTS = ["gossip_interval=200ms", "gossip_suspect_after=1s", "gossip_down_after=2s",
        "request_timeout=2s", "n=3", "w=2", "r=2"]


class HCluster:
    def __init__(self, procs, tmp, n, extra=()):
        self.procs = procs
        self.tmp = str(tmp)
        self.n = n
        self.ids = [f"h{i + 1}" for i in range(n)]
        self.ports = [free_port() for _ in range(n)]
        self.proc = [None] * n
        self.gen = [0] * n
        self.extra = list(extra)

    def addr(self, i):
        return f"127.0.0.1:{self.ports[i]}"

    def start(self, i):
        self.gen[i] += 1
        peers = ",".join(f"{self.ids[j]}@{self.addr(j)}" for j in range(self.n))
        args = [quorumd(), "--data", os.path.join(self.tmp, f"data-{self.ids[i]}"),
                "--listen", self.addr(i), "--node-id", self.ids[i], "--peers", peers]
        for o in OPTS + self.extra:
            args += ["-o", o]
        p = self.procs.start(f"quorumd-{self.ids[i]}-{self.gen[i]}", args)
        self.proc[i] = p
        wait_for(lambda: port_open(self.ports[i]) or not p.alive(), timeout=60,
                 what=f"{self.ids[i]} listening")
        assert p.alive(), p.log()

    def status(self, i):
        r = ctl(self.addr(i), "status", "--json")
        return json.loads(r.stdout) if r.returncode == 0 else None

    def sees(self, i, want):
        st = self.status(i)
        return st is not None and {m["id"]: m["state"] for m in st["members"]} == want

    def holders(self, key):
        return [i for i in range(self.n)
                if ctl(self.addr(i), "get", key, "--replica-only").returncode == 0]


def start_five(procs, tmp_path, extra=()):
    c = HCluster(procs, tmp_path, 5, extra)
    for i in range(c.n):
        c.start(i)
    up = {nid: "up" for nid in c.ids}
    for i in range(c.n):
        wait_for(lambda i=i: c.sees(i, up), timeout=30, what=f"{c.ids[i]} sees all up")
    # the key's primaries are the three nodes holding it after a full write
    assert ctl(c.addr(0), "put", "hk", "v1", "--w", "3").returncode == 0
    wait_for(lambda: len(c.holders("hk")) == 3, timeout=20, what="three replicas")
    prim = c.holders("hk")
    return c, up, prim


def kill_two(c, up, prim):
    dead = prim[1:]
    live = [i for i in range(c.n) if i not in dead]
    for i in dead:
        c.proc[i].kill9()
    want = dict(up)
    for i in dead:
        want[c.ids[i]] = "down"
    for i in live:
        wait_for(lambda i=i: c.sees(i, want), timeout=30, what=f"{c.ids[i]} sees two down")
    return dead, live


def test_sloppy_quorum_hints_delivered(procs, tmp_path):
    c, up, prim = start_five(procs, tmp_path)
    dead, live = kill_two(c, up, prim)
    # writes through every live node still reach W=2 (one primary + hints)
    ctx = get_json(c.addr(prim[0]), "hk", "--r", "1")[1]["context"]
    r = ctl(c.addr(live[-1]), "put", "hk", "v2", "--context", ctx)
    assert r.returncode == 0, r.stderr
    hinted = sum(c.status(i)["hints"]["count"] for i in live)
    assert hinted >= 1, [c.status(i)["hints"] for i in live]
    st = [c.status(i)["hints"] for i in live if c.status(i)["hints"]["count"]]
    assert all(h["bytes"] > 0 and h["oldest_ms"] > 0 for h in st), st

    # owners come back: hints are delivered and deleted everywhere
    for i in dead:
        c.start(i)
    wait_for(lambda: all(c.sees(i, up) for i in range(c.n)), timeout=30, what="all up again")
    wait_for(lambda: all((c.status(i) or {"hints": {"count": -1}})["hints"]["count"] == 0
                         for i in range(c.n)), timeout=60, what="no hints left")
    # each owner holds the new value by itself
    for i in prim:
        rc, doc = get_json(c.addr(i), "hk", "--replica-only")
        assert rc == 0, (c.ids[i], doc)
        assert live_values(doc) == ["v2"], (c.ids[i], doc)


def test_strict_quorum_refuses(procs, tmp_path):
    c, up, prim = start_five(procs, tmp_path, extra=["sloppy_quorum=off"])
    dead, live = kill_two(c, up, prim)
    r = ctl(c.addr(prim[0]), "put", "hk", "v2")
    assert r.returncode == 3, (r.returncode, r.stderr)
    assert all(c.status(i)["hints"]["count"] == 0 for i in live)


def test_hints_for_removed_owner_go_to_new_primaries(procs, tmp_path):
    """Two owners die with hints pending for them and are removed from the
    cluster (leave --id of a down member): the fallbacks hand those hints
    to the keys' current primaries instead of keeping them forever."""
    c, up, prim = start_five(procs, tmp_path)
    dead, live = kill_two(c, up, prim)
    ctx = get_json(c.addr(prim[0]), "hk", "--r", "1")[1]["context"]
    r = ctl(c.addr(live[-1]), "put", "hk", "v2", "--context", ctx)
    assert r.returncode == 0, r.stderr
    assert sum(c.status(i)["hints"]["count"] for i in live) >= 1

    for i in dead:
        # refused (busy) while gossip still calls it suspect
        wait_for(lambda i=i: ctl(c.addr(live[0]), "leave", "--id", c.ids[i]).returncode == 0,
                 timeout=30, what=f"{c.ids[i]} removed")
    rest = {c.ids[i]: "up" for i in live}
    for i in live:
        wait_for(lambda i=i: c.sees(i, rest), timeout=30, what=f"{c.ids[i]} drops the dead")
    wait_for(lambda: all((c.status(i) or {"hints": {"count": -1}})["hints"]["count"] == 0
                         for i in live), timeout=60, what="hints for the removed owners gone")
    # three members left with N=3: each holds the newest value by itself
    for i in live:
        rc, doc = get_json(c.addr(i), "hk", "--replica-only")
        assert rc == 0, (c.ids[i], doc)
        assert live_values(doc) == ["v2"], (c.ids[i], doc)


def test_left_member_stays_out_after_restart(procs, tmp_path):
    """A member that left stays out of the ring when the whole cluster
    restarts, although every node's static peer list still names it."""
    c = HCluster(procs, tmp_path, 4, extra=["handoff_settle=1s"])
    for i in range(c.n):
        c.start(i)
    up = {nid: "up" for nid in c.ids}
    for i in range(c.n):
        wait_for(lambda i=i: c.sees(i, up), timeout=30, what=f"{c.ids[i]} sees all up")
    keys = [f"lk{k}" for k in range(20)]
    for k in keys:
        assert ctl(c.addr(0), "put", k, k).returncode == 0
    r = ctl(c.addr(3), "leave")
    assert r.returncode == 0, r.stderr
    wait_for(lambda: not c.proc[3].alive(), timeout=90, what="h4 stops after leaving")
    rest = {c.ids[i]: "up" for i in range(3)}
    for i in range(3):
        wait_for(lambda i=i: c.sees(i, rest), timeout=30, what=f"{c.ids[i]} drops h4")
        with open(os.path.join(c.tmp, f"data-{c.ids[i]}", "gossip.left")) as f:
            assert f.read().split() == ["h4"]
    for i in range(3):
        assert c.proc[i].stop() == 0
    for i in range(3):
        c.start(i)
    for i in range(3):
        wait_for(lambda i=i: c.sees(i, rest), timeout=30, what=f"{c.ids[i]} back without h4")
    # h4 does not creep back in once gossip has run for a while
    time.sleep(3)
    for i in range(3):
        assert c.sees(i, rest), c.status(i)["members"]
    for k in keys:
        rc, doc = get_json(c.addr(1), k, "--r", "3")
        assert rc == 0 and live_values(doc) == [k], (k, doc)
