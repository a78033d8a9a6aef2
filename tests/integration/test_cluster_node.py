"""Cluster tests with real quorumd processes on loopback: replication across
nodes, W/R quorums with a node killed, read repair after its restart,
siblings from concurrent writes and their resolution, forwarding, restart
recovery, and membership learned from HELLO.

Helpers here (Cluster, ctl) are shared with test_cluster_errors.py.
"""
import base64
import json
import os
import subprocess
import time

import pytest

from conftest import BUILDDIR, free_port, port_open, sanitizer_env, wait_for


def prog(rel):
    p = os.path.join(BUILDDIR, rel)
    if not os.path.exists(p):
        raise FileNotFoundError(f"{rel} not built in {BUILDDIR}")
    return p


def quorumd():
    return prog("src/node/quorumd")


def quorumctl():
    return prog("src/cli/quorumctl")


def ctl(addr, *args, stdin=None, timeout=60):
    """Runs quorumctl against addr; returns the CompletedProcess (bytes)."""
    cmd = [quorumctl(), "--node", addr, "--timeout", "3s"] + [str(a) for a in args]
    return subprocess.run(cmd, input=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          env=sanitizer_env(), timeout=timeout)


def get_json(addr, key, *extra):
    r = ctl(addr, "get", key, "--json", *extra)
    doc = json.loads(r.stdout) if r.stdout.strip() else None
    return r.returncode, doc


def live_values(doc):
    return sorted(s["value"] for s in doc["siblings"] if not s["deleted"])


class Cluster:
    """n quorumd processes that list each other as peers."""

    def __init__(self, procs, tmp, n=3, opts=(), ids=None):
        self.procs = procs
        self.tmp = str(tmp)
        self.n = n
        self.ids = ids or [f"n{i + 1}" for i in range(n)]
        self.ports = [free_port() for _ in range(n)]
        self.opts = list(opts)
        self.proc = [None] * n
        self.gen = [0] * n

    def addr(self, i):
        return f"127.0.0.1:{self.ports[i]}"

    def peers(self):
        return ",".join(f"{self.ids[i]}@{self.addr(i)}" for i in range(self.n))

    def data(self, i):
        return os.path.join(self.tmp, f"data-{self.ids[i]}")

    def start(self, i, extra=()):
        self.gen[i] += 1
        args = [quorumd(), "--data", self.data(i), "--listen", self.addr(i),
                "--node-id", self.ids[i], "--peers", self.peers(),
                "-o", "request_timeout=2s"]
        for o in self.opts + list(extra):
            args += ["-o", o]
        p = self.procs.start(f"quorumd-{self.ids[i]}-{self.gen[i]}", args)
        self.proc[i] = p
        wait_for(lambda: port_open(self.ports[i]) or not p.alive(), timeout=60,
                 what=f"{self.ids[i]} listening")
        assert p.alive(), p.log()
        return p

    def start_all(self):
        for i in range(self.n):
            self.start(i)
        return self


def test_put_via_one_get_via_another(procs, tmp_path):
    c = Cluster(procs, tmp_path).start_all()
    r = ctl(c.addr(0), "put", "greeting", "hello world")
    assert r.returncode == 0, r.stderr
    assert b"# context " in r.stdout
    for i in (1, 2):
        rc, doc = get_json(c.addr(i), "greeting")
        assert rc == 0
        assert doc["found"] is True
        assert live_values(doc) == ["hello world"]
        assert doc["context"]
        assert doc["siblings"][0]["node"] == "n1"
    # the text form prints the value and the context token
    r = ctl(c.addr(2), "get", "greeting")
    assert r.returncode == 0
    assert b"hello world\n" in r.stdout and b"# context " in r.stdout
    # every replica holds it (N=3)
    for i in range(3):
        wait_for(lambda i=i: ctl(c.addr(i), "get", "greeting", "--replica-only").returncode == 0,
                 timeout=10, what=f"replica {i} holds the key")
    # absent key: exit 1, message on stderr
    r = ctl(c.addr(1), "get", "no-such-key")
    assert r.returncode == 1
    assert b"ENOTFOUND" in r.stderr
    # value from stdin, binary safe
    blob = bytes(range(256)) * 4
    r = ctl(c.addr(0), "put", "blob", "-", stdin=blob)
    assert r.returncode == 0, r.stderr
    rc, doc = get_json(c.addr(1), "blob")
    assert rc == 0
    assert base64.b64decode(doc["siblings"][0]["value_base64"]) == blob
    # delete with the context: the key is gone everywhere
    token = get_json(c.addr(2), "greeting")[1]["context"]
    r = ctl(c.addr(2), "delete", "greeting", "--context", token)
    assert r.returncode == 0, r.stderr
    for i in range(3):
        assert ctl(c.addr(i), "get", "greeting").returncode == 1


def test_kill9_replica_quorum_and_read_repair(procs, tmp_path):
    c = Cluster(procs, tmp_path).start_all()
    # W=3: n3 must hold it before the kill (with W=2 its copy may still be in flight)
    assert ctl(c.addr(0), "put", "before", "v0", "--w", "3").returncode == 0
    c.proc[2].kill9()
    # W=2 still succeeds with one replica down, R=2 reads return it
    for k in range(10):
        r = ctl(c.addr(0), "put", f"key{k}", f"value{k}", "--w", "2")
        assert r.returncode == 0, r.stderr
    for k in range(10):
        rc, doc = get_json(c.addr(1), f"key{k}", "--r", "2")
        assert rc == 0
        assert live_values(doc) == [f"value{k}"]
    # W=3 cannot be met: exit 3 (no quorum)
    r = ctl(c.addr(0), "put", "needs-three", "x", "--w", "3")
    assert r.returncode == 3, (r.stdout, r.stderr)
    assert b"EQUORUM" in r.stderr or b"ETIMEOUT" in r.stderr
    # R=3 cannot be met either
    assert ctl(c.addr(1), "get", "key0", "--r", "3").returncode == 3
    # restart n3: it recovers its own data and is stale for the new keys
    c.start(2)
    r = ctl(c.addr(2), "get", "before", "--replica-only")
    assert r.returncode == 0 and b"v0" in r.stdout
    for k in range(10):
        assert ctl(c.addr(2), "get", f"key{k}", "--replica-only").returncode == 1
    # a quorum read through another node repairs n3 in the background
    for k in range(10):
        assert ctl(c.addr(0), "get", f"key{k}").returncode == 0
    for k in range(10):
        wait_for(lambda k=k: ctl(c.addr(2), "get", f"key{k}", "--replica-only").returncode == 0,
                 timeout=20, what=f"read repair of key{k} on n3")
        rc, doc = get_json(c.addr(2), f"key{k}", "--replica-only")
        assert live_values(doc) == [f"value{k}"]
    st = json.loads(ctl(c.addr(0), "status", "--json").stdout)
    assert st["ops"]["read_repairs"] >= 10


def test_concurrent_writes_make_siblings_and_merge_resolves(procs, tmp_path):
    c = Cluster(procs, tmp_path).start_all()
    assert ctl(c.addr(0), "put", "doc", "v0").returncode == 0
    rc, doc = get_json(c.addr(0), "doc")
    stale = doc["context"]
    # two clients write with the same (now stale) context through different nodes
    assert ctl(c.addr(0), "put", "doc", "from-client-a", "--context", stale).returncode == 0
    assert ctl(c.addr(1), "put", "doc", "from-client-b", "--context", stale).returncode == 0
    for i in range(3):
        rc, doc = get_json(c.addr(i), "doc")
        assert rc == 0
        assert live_values(doc) == ["from-client-a", "from-client-b"], doc
    r = ctl(c.addr(2), "get", "doc")
    assert r.stdout.count(b"# sibling ") == 2
    merged = doc["context"]
    assert merged != stale
    # a write with the merged context replaces both siblings
    assert ctl(c.addr(2), "put", "doc", "resolved", "--context", merged).returncode == 0
    for i in range(3):
        rc, doc = get_json(c.addr(i), "doc")
        assert live_values(doc) == ["resolved"], doc
        assert len(doc["siblings"]) == 1
    # a blind write (no context) becomes a sibling, as documented
    assert ctl(c.addr(1), "put", "doc", "blind").returncode == 0
    rc, doc = get_json(c.addr(0), "doc")
    assert live_values(doc) == ["blind", "resolved"]


def test_put_forwarded_to_a_replica(procs, tmp_path):
    # N=1: most keys have one replica elsewhere, so the receiving node
    # forwards the put to it
    c = Cluster(procs, tmp_path, opts=["n=1", "r=1", "w=1"]).start_all()
    for k in range(30):
        assert ctl(c.addr(0), "put", f"f{k}", f"v{k}").returncode == 0
    for k in range(30):
        rc, doc = get_json(c.addr(1), f"f{k}")
        assert rc == 0 and live_values(doc) == [f"v{k}"]
    holders = [sum(ctl(c.addr(i), "get", f"f{k}", "--replica-only").returncode == 0
                   for i in range(3)) for k in range(30)]
    assert holders == [1] * 30  # exactly one replica each
    st = json.loads(ctl(c.addr(0), "status", "--json").stdout)
    assert st["ops"]["forwards"] > 0
    assert len(st["members"]) == 3


def test_sigterm_then_restart_recovers(procs, tmp_path):
    c = Cluster(procs, tmp_path, n=1, ids=["solo"], opts=["sync=always"])
    c.start(0)
    # a one-node cluster works with the default N=3 R=2 W=2
    for k in range(50):
        assert ctl(c.addr(0), "put", f"k{k}", f"v{k}").returncode == 0
    assert c.proc[0].stop() == 0
    log = c.proc[0].log()
    assert "stopped" in log
    c.start(0)
    for k in range(50):
        rc, doc = get_json(c.addr(0), f"k{k}")
        assert rc == 0 and live_values(doc) == [f"v{k}"]
    st = json.loads(ctl(c.addr(0), "status", "--json").stdout)
    assert st["node_id"] == "solo"
    # a different node id for the same data directory is refused
    c.proc[0].stop()
    bad = procs.start("quorumd-wrong-id", [quorumd(), "--data", c.data(0), "--listen",
                                            c.addr(0), "--node-id", "other"])
    assert bad.popen.wait(timeout=60) == 1
    assert "belongs to node 'solo'" in bad.log()


def test_generated_node_id_is_stable(procs, tmp_path):
    port = free_port()
    data = str(tmp_path / "d")
    args = [quorumd(), "--data", data, "--listen", f"127.0.0.1:{port}"]
    p = procs.start("gen1", args)
    wait_for(lambda: port_open(port), timeout=60, what="listening")
    id1 = json.loads(ctl(f"127.0.0.1:{port}", "status", "--json").stdout)["node_id"]
    assert p.stop() == 0
    procs.start("gen2", args)
    wait_for(lambda: port_open(port), timeout=60, what="listening again")
    id2 = json.loads(ctl(f"127.0.0.1:{port}", "status", "--json").stdout)["node_id"]
    assert id1 == id2 and id1.startswith("n")
    with open(os.path.join(data, "NODE_ID")) as f:
        assert f.read().strip() == id1


def test_peer_by_address_is_learned_by_hello(procs, tmp_path):
    p1, p2 = free_port(), free_port()
    procs.start("a", [quorumd(), "--data", str(tmp_path / "a"), "--listen", f"127.0.0.1:{p1}",
                      "--node-id", "alpha"])
    wait_for(lambda: port_open(p1), timeout=60, what="alpha")
    procs.start("b", [quorumd(), "--data", str(tmp_path / "b"), "--listen", f"127.0.0.1:{p2}",
                      "--node-id", "beta", "--peers", f"127.0.0.1:{p1}"])
    wait_for(lambda: port_open(p2), timeout=60, what="beta")

    def members(port):
        st = json.loads(ctl(f"127.0.0.1:{port}", "status", "--json").stdout)
        return sorted(m["id"] for m in st["members"])
    wait_for(lambda: members(p2) == ["alpha", "beta"], timeout=20, what="beta learns alpha")
    wait_for(lambda: members(p1) == ["alpha", "beta"], timeout=20, what="alpha learns beta")
    # both replicate now (N=min(3,2)=2)
    assert ctl(f"127.0.0.1:{p1}", "put", "shared", "yes").returncode == 0
    wait_for(lambda: ctl(f"127.0.0.1:{p2}", "get", "shared", "--replica-only").returncode == 0,
             timeout=10, what="replica on beta")


def test_quorumctl_bench_contexts_replace_instead_of_piling_up(procs, tmp_path):
    """Blind bench puts keep every earlier value of a key as a sibling; with
    --contexts one client's puts replace what its last answer showed, so a
    key it wrote many times holds one value."""
    c = Cluster(procs, tmp_path).start_all()
    nodes = ",".join(c.addr(i) for i in range(3))

    def run(*extra):
        r = ctl(c.addr(0), "bench", "--nodes", nodes, "--clients", "1", "--keys", "3",
                "--duration", "2s", "--get-percent", "20", "--json", *extra)
        assert r.returncode == 0, r.stderr
        doc = json.loads(r.stdout)
        assert doc["errors"] == 0 and doc["puts"] >= 30, doc
        return doc

    def counts():
        out = []
        for k in range(3):
            r = ctl(c.addr(1), "get", f"bench-{k}", "--json")
            assert r.returncode == 0, r.stderr
            out.append(len(json.loads(r.stdout)["siblings"]))
        return out

    assert run()["contexts"] == 0
    assert max(counts()) > 1  # blind: the values piled up
    assert run("--contexts")["contexts"] == 1
    assert counts() == [1, 1, 1]


def test_quorumctl_bench_and_status_text(procs, tmp_path):
    c = Cluster(procs, tmp_path).start_all()
    nodes = ",".join(c.addr(i) for i in range(3))
    trace = tmp_path / "trace.txt"
    t_start = time.monotonic()
    r = ctl(c.addr(0), "bench", "--nodes", nodes, "--clients", "4", "--keys", "50",
            "--duration", "1s", "--preload", "--json", "--trace", str(trace))
    t_end = time.monotonic()
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["ops"] > 0 and doc["errors"] == 0 and doc["preload_errors"] == 0
    assert doc["gets"] + doc["puts"] >= doc["ops"]
    assert 0 < doc["p50_ms"] <= doc["p99_ms"] <= doc["p999_ms"] <= doc["max_ms"]
    # after the preload every key exists, so no get missed
    assert doc["not_found"] == 0
    # --trace: one line per operation of the timed run (not the preload):
    # CLOCK_MONOTONIC completion time and latency in microseconds, kind, status
    lines = trace.read_text().splitlines()
    assert len(lines) == doc["ops"]
    prev = 0
    for line in lines:
        t, us, kind, status = line.split()
        assert kind in ("get", "put") and status == "0"
        assert t_start * 1e6 <= int(t) <= t_end * 1e6 and int(t) >= prev
        assert 0 < int(us) <= doc["max_ms"] * 1000 + 1
        prev = int(t)
    assert sum(1 for x in lines if x.split()[2] == "get") == doc["gets"]
    # an unwritable trace file is a clear error, not a silent loss
    r = ctl(c.addr(0), "bench", "--nodes", nodes, "--clients", "1", "--keys", "5",
            "--duration", "100ms", "--trace", str(tmp_path / "no" / "such" / "dir"))
    assert r.returncode == 4 and b"cannot create" in r.stderr, r.stderr
    r = ctl(c.addr(1), "status")
    assert r.returncode == 0
    text = r.stdout.decode()
    assert '"node_id": "n2"' in text and '"members": [' in text
    st = json.loads(ctl(c.addr(1), "status", "--json").stdout)
    assert [m["state"] for m in st["members"]].count("up") >= 2
    assert abs(sum(m["ownership"] for m in st["members"]) - 1.0) < 0.01
