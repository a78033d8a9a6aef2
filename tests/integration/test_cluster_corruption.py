"""Corruption of one node's files in a 3-node cluster (N=3 R=2 W=2,
sync = always): bytes are flipped in its commit log, an SSTable, the
manifest, and the log records that hold its hints, while it is stopped.
Then it is restarted. Pass: no crash and no sanitizer report; the node
never serves a wrong value (its own replica answers the right value, not
found, or an error); quorum reads through it return the right values; and
reads repair its copy from the peers. A manifest that fails its checksum
either makes the engine refuse to open (the node exits with a clear
error, nothing deleted; the cluster keeps serving, and after the operator
moves the damaged store aside the node is refilled by reads) or, in
engine versions that keep the previous manifest, is set aside while the
store recovers from that one; both are accepted, a crash is not.
"""
import glob
import os
import random
import shutil
import time
from concurrent.futures import ThreadPoolExecutor

from conftest import wait_for
from nemesis import ctl, get_json
from test_cluster_node import Cluster

OPTS = ["n=3", "r=2", "w=2", "sync=always", "memtable_size=64k",
        "gossip_interval=200ms", "gossip_suspect_after=1s", "gossip_down_after=2s"]
VICTIM = 2


def value_of(key, size=900):
    rnd = random.Random(key)
    return key + "=" + "".join(rnd.choice("abcdefghijklmnop") for _ in range(size))


def pmap(fn, items):
    """fn over items on 4 threads (each call is a quorumctl process)."""
    with ThreadPoolExecutor(max_workers=4) as ex:
        return list(ex.map(fn, items))


def flip(path, offsets):
    with open(path, "r+b") as f:
        for off in offsets:
            f.seek(off)
            b = f.read(1)
            if not b:
                continue
            f.seek(off)
            f.write(bytes([b[0] ^ 0xFF]))
            f.flush()
            os.fsync(f.fileno())


def db_dir(c, i):
    return os.path.join(c.data(i), "db")


def write_keys(c, keys, via=0, extra=(), size=900):
    pmap(lambda k: ctl_ok(c.addr(via), "put", k, value_of(k, size), "--w", "3", *extra), keys)


def ctl_ok(addr, *args):
    rc, out, err = ctl(addr, *args)
    assert rc == 0, (args[:2], rc, err)
    return rc, out, err


def replica_value(c, i, key, *extra):
    rc, doc, err = get_json(c.addr(i), key, "--replica-only", *extra)
    if rc != 0 or doc is None:
        return rc, None
    live = [s["value"] for s in doc["siblings"] if not s["deleted"]]
    return rc, live


def check_never_wrong(c, i, keys, want=value_of):
    """The node's own replica: right value, not found or an error."""
    wrong = []
    served = 0
    for k, (rc, live) in zip(keys, pmap(lambda k: replica_value(c, i, k), keys)):
        if rc == 0:
            served += 1
            if live != [want(k)]:
                wrong.append((k, [v[:40] for v in live]))
    assert not wrong, wrong
    return served


def quorum_reads_right(c, via, keys, want=value_of, extra=()):
    for k, (rc, doc, err) in zip(keys, pmap(lambda k: get_json(c.addr(via), k, *extra), keys)):
        assert rc == 0, (k, rc, err)
        live = [s["value"] for s in doc["siblings"] if not s["deleted"]]
        assert live == [want(k)], (k, [v[:40] for v in live])


def wait_repaired(c, i, keys, via, want=value_of, extra=(), timeout=60):
    t0 = time.monotonic()
    rounds = [0]

    def done():
        rounds[0] += 1
        got = pmap(lambda k: replica_value(c, i, k)[1], keys)
        missing = [k for k, live in zip(keys, got) if live != [want(k)]]
        # read again through a peer: read repair
        pmap(lambda k: ctl(c.addr(via), "get", k, *extra), missing)
        return not missing
    wait_for(done, timeout=timeout, interval=0.5, what="victim repaired from peers")
    print(f"repaired in {time.monotonic() - t0:.1f}s, {rounds[0]} rounds of reads")


def status(c, i):
    import json
    rc, out, _ = ctl(c.addr(i), "status", "--json")
    return json.loads(out) if rc == 0 else None


def start_cluster(procs, tmp_path):
    c = Cluster(procs, tmp_path, opts=OPTS).start_all()
    for i in range(c.n):
        wait_for(lambda i=i: (status(c, i) or {"members": []}) and
                 sum(1 for m in status(c, i)["members"] if m["state"] == "up") == 3,
                 timeout=30, what="all up")
    return c


def test_corrupt_commit_log(procs, tmp_path):
    c = start_cluster(procs, tmp_path)
    keys = [f"log{k}" for k in range(24)]
    write_keys(c, keys)
    c.proc[VICTIM].kill9()            # the data is in the log, not in a table
    logs = sorted(glob.glob(os.path.join(db_dir(c, VICTIM), "*.log")),
                  key=os.path.getsize)
    assert logs and os.path.getsize(logs[-1]) > 4096, logs
    size = os.path.getsize(logs[-1])
    rng = random.Random(1)
    flip(logs[-1], sorted(rng.randrange(64, size) for _ in range(6)))
    c.start(VICTIM)
    served = check_never_wrong(c, VICTIM, keys)
    print(f"log corruption: {served}/{len(keys)} keys still served by the victim")
    quorum_reads_right(c, VICTIM, keys)
    wait_repaired(c, VICTIM, keys, via=0)
    st = status(c, VICTIM)
    assert st is not None


def test_corrupt_sstable(procs, tmp_path):
    c = start_cluster(procs, tmp_path)
    keys = [f"sst{k:03d}" for k in range(30)]   # 240 KiB: several tables
    big = lambda k: value_of(k, 8000)  # noqa: E731
    write_keys(c, keys, size=8000)
    assert c.proc[VICTIM].stop() == 0
    tables = sorted(glob.glob(os.path.join(db_dir(c, VICTIM), "*.sst")), key=os.path.getsize)
    assert tables, os.listdir(db_dir(c, VICTIM))
    victim_table = tables[-1]
    size = os.path.getsize(victim_table)
    rng = random.Random(2)
    flip(victim_table, sorted(rng.randrange(0, size * 3 // 4) for _ in range(4)))
    c.start(VICTIM)
    served = check_never_wrong(c, VICTIM, keys, want=big)
    print(f"sstable corruption: {served}/{len(keys)} keys still served by the victim")
    quorum_reads_right(c, VICTIM, keys, want=big)
    wait_repaired(c, VICTIM, keys, via=0, want=big, timeout=120)


def test_corrupt_manifest(procs, tmp_path):
    c = start_cluster(procs, tmp_path)
    keys = [f"man{k}" for k in range(12)]
    write_keys(c, keys)
    assert c.proc[VICTIM].stop() == 0
    man = os.path.join(db_dir(c, VICTIM), "MANIFEST")
    size = os.path.getsize(man)
    flip(man, [size // 2])
    before = sorted(os.listdir(db_dir(c, VICTIM)))
    # the engine either refuses a manifest that fails its checksum (a clean
    # exit with a message, nothing deleted) or recovers from the previous
    # manifest it kept, keeping the bad one aside; never a crash
    from conftest import port_open
    from test_cluster_node import quorumd
    c.gen[VICTIM] += 1
    args = [quorumd(), "--data", c.data(VICTIM), "--listen", c.addr(VICTIM),
            "--node-id", c.ids[VICTIM], "--peers", c.peers(), "-o", "request_timeout=2s"]
    for o in OPTS:
        args += ["-o", o]
    p = procs.start(f"quorumd-{c.ids[VICTIM]}-corrupt", args)
    wait_for(lambda: not p.alive() or port_open(c.ports[VICTIM]), timeout=60,
             what="node refusing or recovering a corrupt manifest")
    assert "corrupt" in p.log().lower(), p.log()[-2000:]
    if not p.alive():
        assert p.popen.returncode > 0, p.popen.returncode     # an exit, not a signal
        assert sorted(os.listdir(db_dir(c, VICTIM))) == before
        print("manifest corruption: the node refused to open its store")
        # the cluster keeps serving through the other nodes
        quorum_reads_right(c, 0, keys)
        # operator: move the damaged store aside, restart; reads refill it
        shutil.move(db_dir(c, VICTIM), db_dir(c, VICTIM) + ".damaged")
        c.start(VICTIM)
    else:
        c.proc[VICTIM] = p
        print("manifest corruption: the node recovered from an earlier manifest")
    check_never_wrong(c, VICTIM, keys)
    quorum_reads_right(c, VICTIM, keys)
    wait_repaired(c, VICTIM, keys, via=0)


def test_corrupt_hint_records(procs, tmp_path):
    c = start_cluster(procs, tmp_path)
    a, b = 0, 1
    # keys whose two primaries (n=2) are a and b: the victim is their first
    # fallback, so it takes the hints while b is down
    cand = [f"hint{k}" for k in range(24)]
    write_keys(c, cand, extra=("--n", "2"))
    holds = [pmap(lambda k, i=i: replica_value(c, i, k)[0] == 0, cand) for i in range(3)]
    keys = [k for j, k in enumerate(cand)
            if {i for i in range(3) if holds[i][j]} == {a, b}]
    assert len(keys) >= 3, keys
    keys = keys[:10]

    def v2(k):
        return value_of(k + "-v2", 500)

    c.proc[b].kill9()
    wait_for(lambda: {m["id"]: m["state"] for m in status(c, a)["members"]}[c.ids[b]] == "down",
             timeout=30, what="b seen down")
    for k in keys:
        rc, doc, err = get_json(c.addr(a), k, "--n", "2", "--r", "1")
        assert rc == 0, err
        ctl_ok(c.addr(a), "put", k, v2(k), "--n", "2", "--w", "2", "--context", doc["context"])
    st = status(c, VICTIM)
    assert st["hints"]["count"] >= len(keys), st["hints"]
    c.proc[VICTIM].kill9()            # hints are in the victim's log
    logs = glob.glob(os.path.join(db_dir(c, VICTIM), "*.log"))
    hits = 0
    for path in logs:
        data = open(path, "rb").read()
        offs = []
        for k in keys[::2]:           # every other hinted key
            pos = data.rfind(k.encode())
            if pos >= 0:
                offs.append(pos + len(k) // 2)
        flip(path, offs)
        hits += len(offs)
    assert hits > 0
    c.start(b)
    c.start(VICTIM)
    # the victim never serves a wrong value of its own, hint or not
    check_never_wrong(c, VICTIM, keys, want=v2)
    # reads with n=2 return v2 (a holds it) and repair b
    quorum_reads_right(c, a, keys, want=v2, extra=("--n", "2"))
    wait_repaired(c, b, keys, via=a, want=v2, extra=("--n", "2"))
    # the victim's hints end delivered or dropped as corrupt: none left
    wait_for(lambda: status(c, VICTIM)["hints"]["count"] == 0, timeout=60,
             what="victim's hints delivered or dropped")
    print("hint corruption: victim hints " + str(status(c, VICTIM)["hints"]))
    time.sleep(0.1)
