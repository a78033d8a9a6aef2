"""Active anti-entropy with real quorumd processes (docs/aae.md, "In the node"):

- a replica whose data directory was wiped (same node id) gets every key back
  from `quorumctl repair`, reads them from its own replica alone, and all
  three replicas' Merkle roots end up equal;
- after writes that reached one replica only (W=1 while the other two were
  stopped, no hints), a repair finds exactly those keys and moves close to
  their size: bytes transferred (tree exchange + objects) at most 2x the
  differing data (printed);
- a delete made while one replica was down is not undone when it returns:
  repair carries the tombstone to it, and once the grace period has passed
  and every replica holds it, the tombstone is reaped everywhere;
- with four nodes and N=3 (many arcs, each with its own replica set) every
  replica of an arc lists the identical arc, and a wiped node's repair makes
  every arc's roots equal again.

Hinted handoff is off (sloppy_quorum=off) so that only anti-entropy can
repair. Every wait is bounded.
"""
import json
import os

from conftest import free_port, port_open, wait_for
from test_cluster_node import ctl, get_json, quorumd

BASE = ["gossip_interval=200ms", "gossip_suspect_after=1s", "gossip_down_after=2s",
        "request_timeout=3s", "n=3", "r=2", "w=2", "sloppy_quorum=off"]


class ACluster:
    def __init__(self, procs, tmp, opts=(), n=3):
        self.procs = procs
        self.tmp = str(tmp)
        self.n = n
        self.ids = [f"e{i + 1}" for i in range(n)]
        self.ports = [free_port() for _ in self.ids]
        self.proc = [None] * n
        self.gen = [0] * n
        self.opts = BASE + list(opts)

    def addr(self, i):
        return f"127.0.0.1:{self.ports[i]}"

    def data(self, i):
        return os.path.join(self.tmp, f"data-{self.ids[i]}")

    def start(self, i, extra=()):
        self.gen[i] += 1
        peers = ",".join(f"{self.ids[j]}@{self.addr(j)}" for j in range(self.n))
        args = [quorumd(), "--data", self.data(i), "--listen", self.addr(i),
                "--node-id", self.ids[i], "--peers", peers]
        for o in self.opts + list(extra):
            args += ["-o", o]
        p = self.procs.start(f"quorumd-{self.ids[i]}-{self.gen[i]}", args)
        self.proc[i] = p
        wait_for(lambda: port_open(self.ports[i]) or not p.alive(), timeout=60,
                 what=f"{self.ids[i]} listening")
        assert p.alive(), p.log()

    def stop(self, i):
        assert self.proc[i].stop() == 0, self.proc[i].log()

    def status(self, i):
        r = ctl(self.addr(i), "status", "--json")
        return json.loads(r.stdout) if r.returncode == 0 else None

    def aae(self, i):
        st = self.status(i)
        return st["aae"] if st else None

    def all_up(self, i):
        st = self.status(i)
        return st is not None and all(m["state"] == "up" for m in st["members"]) \
            and len(st["members"]) == self.n

    def wait_ready(self):
        for i in range(self.n):
            wait_for(lambda i=i: self.all_up(i), timeout=30, what=f"{self.ids[i]} sees all up")
            # one arc (3 nodes, N=3: the whole circle), tree built, 3 replicas
            wait_for(lambda i=i: (self.aae(i) or {}).get("trees_ready", 0) >= 1 and
                     self.aae(i)["trees_ready"] == self.aae(i)["arcs"] and
                     self.aae(i)["trees_building"] == 0, timeout=30,
                     what=f"{self.ids[i]} tree ready")

    def roots(self, i):
        return [(r["start"], r["end"], r["root"], r["keys"]) for r in self.aae(i)["roots"]]

    def repair(self, i, *extra):
        r = ctl(self.addr(i), "repair", "--json", *extra, timeout=300)
        assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
        return json.loads(r.stdout)

    def bench_load(self, i, keys, size, w, extra=()):
        r = ctl(self.addr(i), "bench", "--keys", keys, "--preload", "--value-size", size,
                "--w", w, "--clients", "8", "--duration", "50ms", "--get-percent", "100",
                "--r", "1", "--json", *extra, timeout=300)
        assert r.returncode == 0, (r.stdout, r.stderr)
        doc = json.loads(r.stdout)
        assert doc["preload_errors"] == 0, doc
        return doc


def replica_has(c, i, key):
    return ctl(c.addr(i), "get", key, "--replica-only").returncode == 0


def test_wiped_replica_repaired(procs, tmp_path):
    # background AAE off: only the on-demand repair may bring the data back
    c = ACluster(procs, tmp_path, ["aae=off"])
    for i in range(3):
        c.start(i)
    c.wait_ready()
    nkeys = 600
    c.bench_load(0, nkeys, 200, 3)
    wait_for(lambda: all(c.roots(i)[0][3] == nkeys for i in range(3)), timeout=30,
             what="every tree counts every key")
    assert len({c.roots(i)[0][2] for i in range(3)}) == 1
    # a clean restart loads the saved tree instead of rebuilding it
    before = c.roots(0)
    c.stop(0)
    c.start(0)
    c.wait_ready()
    st = c.aae(0)
    assert st["trees_loaded"] == 1 and st["builds"] == 0, st
    assert c.roots(0) == before

    c.stop(2)
    import shutil
    shutil.rmtree(c.data(2))
    c.start(2)
    c.wait_ready()
    st = c.aae(2)
    assert st["roots"][0]["keys"] == 0, st
    assert not replica_has(c, 2, "bench-7")

    summary = c.repair(2)
    print("wiped-replica repair:", summary)
    assert summary["state"] == "done"
    assert summary["keys_differing"] >= nkeys
    assert summary["keys_received"] >= nkeys
    assert summary["failures"] == 0

    # every key from that node alone (a sample through get, all by the tree)
    for k in range(0, nkeys, 37):
        assert replica_has(c, 2, f"bench-{k}"), k
    wait_for(lambda: len({tuple(c.roots(i)) for i in range(3)}) == 1, timeout=30,
             what="equal roots on all replicas")
    assert c.roots(2)[0][3] == nkeys
    # and a second repair (of a range, which the whole-circle arc overlaps)
    # finds nothing left to do
    again = c.repair(2, "--range", "5:0x100")
    assert again["keys_differing"] == 0 and again["ranges_differing"] == 0, again
    assert again["ranges_total"] == 2, again
    bad = ctl(c.addr(2), "repair", "--range", "5-100")
    assert bad.returncode == 2 and b"--range" in bad.stderr


def test_one_percent_divergence_moves_about_one_percent(procs, tmp_path):
    c = ACluster(procs, tmp_path, ["aae=off"])
    for i in range(3):
        c.start(i)
    c.wait_ready()
    nkeys, size, ndiff = 2000, 2048, 20
    c.bench_load(0, nkeys, size, 3)
    wait_for(lambda: all(c.roots(i)[0][3] == nkeys for i in range(3)), timeout=60,
             what="every tree counts every key")
    # writes with W=1 while the other replicas are stopped: 1% more keys
    c.stop(1)
    c.stop(2)
    value = os.urandom(size // 2).hex().encode()
    for k in range(ndiff):
        r = ctl(c.addr(0), "put", f"div-{k}", "-", "--w", "1", stdin=value)
        assert r.returncode == 0, r.stderr
    c.start(1)
    c.start(2)
    c.wait_ready()
    roots = [c.roots(i)[0][2] for i in range(3)]
    assert roots[0] != roots[1] and roots[1] == roots[2], roots

    summary = c.repair(0)
    moved = summary["bytes_exchange"] + summary["bytes_sent"] + summary["bytes_received"]
    # the differing data: the ndiff new values, once per out-of-date peer
    differing = 2 * ndiff * size
    total = 2 * (nkeys + ndiff) * size
    print(f"1% divergence: {summary['keys_differing']} keys differing, "
          f"{moved} bytes transferred (exchange {summary['bytes_exchange']}, objects sent "
          f"{summary['bytes_sent']}, received {summary['bytes_received']}); differing data "
          f"{differing} bytes = {100.0 * differing / total:.2f}% of the replicas' data; "
          f"ratio {moved / differing:.2f}")
    assert summary["state"] == "done"
    assert summary["keys_differing"] == 2 * ndiff, summary   # ndiff with each peer
    assert summary["keys_sent"] == 2 * ndiff, summary
    assert summary["bytes_sent"] >= differing, summary
    assert moved <= 2 * differing, summary
    wait_for(lambda: len({tuple(c.roots(i)) for i in range(3)}) == 1, timeout=30,
             what="equal roots on all replicas")


def test_delete_not_resurrected_and_tombstone_reaped(procs, tmp_path):
    c = ACluster(procs, tmp_path, ["aae_interval=300ms", "aae_tombstone_grace=3s"])
    for i in range(3):
        c.start(i)
    c.wait_ready()
    assert ctl(c.addr(0), "put", "doomed", "old-value", "--w", "3").returncode == 0
    assert ctl(c.addr(0), "put", "kept", "stays", "--w", "3").returncode == 0
    c.stop(2)
    ctx = get_json(c.addr(0), "doomed", "--r", "2")[1]["context"]
    assert ctl(c.addr(0), "delete", "doomed", "--context", ctx, "--w", "2").returncode == 0
    c.start(2)
    c.wait_ready()
    # the returning replica still holds the old value; repair makes it a delete
    summary = c.repair(2)
    assert summary["state"] in ("done", "partial"), summary
    for i in range(3):
        r = ctl(c.addr(i), "get", "doomed", "--replica-only")
        assert b"old-value" not in r.stdout, (i, r.stdout)
    r = ctl(c.addr(2), "get", "doomed", "--r", "3")
    assert r.returncode == 1 and b"old-value" not in r.stdout, r.stdout
    # after the grace period, once every replica holds it, the tombstone is
    # removed on all three (tree key counts drop to the live key)
    def reaped():
        if all(c.aae(i)["tombstones"] == 0 and c.roots(i)[0][3] == 1 for i in range(3)):
            return True
        # background rounds do this on their own; on a loaded machine an
        # on-demand round per node gets every replica's exchange done sooner
        for i in range(3):
            ctl(c.addr(i), "repair", "--json", timeout=60)
        return False
    wait_for(reaped, timeout=180, interval=1.0, what="tombstone reaped everywhere")
    assert sum(c.aae(i)["reaped"] for i in range(3)) >= 3
    # background rounds ran with both peers of every node
    for i in range(3):
        peers = {p["id"]: p for p in c.aae(i)["peers"]}
        assert set(peers) == set(c.ids) - {c.ids[i]}, peers
        assert all(p["rounds"] > 0 and p["last_ok_age_ms"] >= 0 for p in peers.values())
    for i in range(3):
        assert ctl(c.addr(i), "get", "doomed", "--replica-only").returncode == 1
        assert ctl(c.addr(i), "get", "kept", "--replica-only").returncode == 0
    # still deleted through a full repair round and a quorum read
    c.repair(0)
    r = ctl(c.addr(1), "get", "doomed", "--r", "3")
    assert r.returncode == 1 and b"old-value" not in r.stdout


def arcs_by_range(c):
    """(start, end) -> [(node, root, keys)] over all nodes' status."""
    arcs = {}
    for i in range(c.n):
        for r in c.aae(i)["roots"]:
            arcs.setdefault((r["start"], r["end"]), []).append((i, r["root"], r["keys"]))
    return arcs


def test_four_nodes_many_arcs(procs, tmp_path):
    # N=3 on four nodes: many arcs, each with its own replica set; every
    # replica of an arc must list the same arc, and repair of a wiped node
    # must make every arc's roots equal again
    c = ACluster(procs, tmp_path, ["aae=off", "ring_tokens=16"], n=4)
    for i in range(c.n):
        c.start(i)
    c.wait_ready()
    nkeys = 800
    c.bench_load(0, nkeys, 100, 3)
    arcs = arcs_by_range(c)
    assert len(arcs) > 4
    assert all(len(v) == 3 for v in arcs.values()), arcs
    assert all(len({x[1] for x in v}) == 1 for v in arcs.values())
    # each key is on three nodes: the arcs' key counts add up
    assert sum(v[0][2] for v in arcs.values()) == nkeys

    c.stop(3)
    import shutil
    shutil.rmtree(c.data(3))
    c.start(3)
    c.wait_ready()
    assert sum(r["keys"] for r in c.aae(0)["roots"]) > 0
    assert sum(r["keys"] for r in c.aae(3)["roots"]) == 0
    summary = c.repair(3)
    print("four nodes, wiped one:", summary)
    assert summary["state"] == "done" and summary["failures"] == 0, summary
    assert summary["ranges_differing"] >= 1
    arcs = arcs_by_range(c)
    assert all(len({x[1] for x in v}) == 1 for v in arcs.values()), \
        [v for v in arcs.values() if len({x[1] for x in v}) != 1][:3]
    assert sum(r["keys"] for r in c.aae(3)["roots"]) == summary["keys_received"]
