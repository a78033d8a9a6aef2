"""Crash consistency of one quorumd with `sync = always` under kill -9.

Writer threads (each owning its own keys, so no sibling is expected) read
a key, then write the next version of it with the context they read; the
value carries the key, the version and random padding (so log records and
group commits vary in size). Every acknowledged version is written to an
expected-state file (JSON, fsynced) before the next write starts; a write
in flight when the node dies is recorded as "maybe" (it may or may not
have reached the disk).

Each cycle: start the node, check every key against the expected state
(exactly one live sibling, its value the last acknowledged version or the
one in flight at the kill, never older, never garbage), let the writers
run for a random moment, kill -9. A "maybe" version found on disk after the
restart becomes the acknowledged one (it is durable now).

Cycles: QFS_CRASH_CYCLES, default 20 (make check) or 300 with QFS_LONG=1.
The writers' and the node's every wait is bounded.
"""
import json
import os
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from conftest import free_port, port_open, wait_for
from nemesis import ctl, get_json
from test_cluster_node import quorumd

LONG = os.environ.get("QFS_LONG") == "1"
WRITERS = 4
KEYS_PER_WRITER = 4
STATS_LOCK = threading.Lock()


class Expected:
    """Per key: last acknowledged version and the one possibly in flight.
    Persisted to a file (fsync) on every change."""

    def __init__(self, path, keys):
        self.path = path
        self.lock = threading.Lock()
        self.acked = {k: 0 for k in keys}
        self.maybe = {k: None for k in keys}
        self.pad = {}             # (key, version) -> padding length
        self._save()

    def _save(self):
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            json.dump({"acked": self.acked, "maybe": self.maybe}, f)
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, self.path)

    def begin(self, key, ver, pad):
        with self.lock:
            self.maybe[key] = ver
            self.pad[(key, ver)] = pad
            self._save()

    def ack(self, key, ver):
        with self.lock:
            self.acked[key] = ver
            self.maybe[key] = None
            self._save()

    def observe(self, key, ver):
        """After a restart the node holds ver for key: durable."""
        with self.lock:
            self.acked[key] = ver
            self.maybe[key] = None
            self._save()


def value_for(key, ver, pad):
    return f"{key}:v{ver}:" + "x" * pad


def parse_value(v):
    key, ver, pad = v.split(":", 2)
    assert set(pad) <= {"x"}, v[:80]
    return key, int(ver[1:]), len(pad)


def writer(addr, keys, exp, rng, stop, stats):
    while not stop.is_set():
        key = rng.choice(keys)
        rc, doc, _ = get_json(addr, key, "--r", "1")
        if rc not in (0, 1) or doc is None:
            return          # the node is gone
        live = [s for s in doc["siblings"] if not s["deleted"]]
        cur = 0
        if live:
            cur = parse_value(live[0]["value"])[1]
        ver = max(cur, exp.acked[key]) + 1
        pad = rng.choice([0, 10, 200, 3000, 20000])
        exp.begin(key, ver, pad)
        args = ["put", key, value_for(key, ver, pad), "--w", "1"]
        if doc.get("context"):
            args += ["--context", doc["context"]]
        rc, _, _ = ctl(addr, *args)
        if rc == 0:
            exp.ack(key, ver)
            with STATS_LOCK:
                stats["acked"] += 1
        else:
            return          # outcome unknown: stays "maybe" until checked


def verify(addr, exp, keys):
    """Checks every key; returns how many 'maybe' versions were found."""
    found_maybe = 0
    with ThreadPoolExecutor(max_workers=4) as ex:
        answers = list(ex.map(lambda k: get_json(addr, k, "--r", "1"), keys))
    for key, (rc, doc, err) in zip(keys, answers):
        want, maybe = exp.acked[key], exp.maybe[key]
        if want == 0 and rc == 1:
            if maybe is not None:
                exp.observe(key, 0)
            continue
        assert rc == 0, (key, rc, err, want, maybe)
        live = [s for s in doc["siblings"] if not s["deleted"]]
        assert len(live) == 1, (key, doc)
        k, ver, pad = parse_value(live[0]["value"])
        assert k == key, (key, live[0]["value"][:80])
        assert ver == want or ver == maybe, (key, "found", ver, "acked", want, "maybe", maybe)
        assert pad == exp.pad.get((key, ver), pad), (key, ver, pad)
        if ver == maybe:
            found_maybe += 1
        exp.observe(key, ver)
    return found_maybe


def test_kill9_cycles_sync_always(procs, tmp_path):
    cycles = int(os.environ.get("QFS_CRASH_CYCLES", "300" if LONG else "20"))
    seed = int(os.environ.get("QFS_CRASH_SEED", "0")) or random.randrange(1, 1 << 30)
    print(f"crash seed {seed} cycles {cycles}")
    rng = random.Random(seed)
    port = free_port()
    addr = f"127.0.0.1:{port}"
    data = os.path.join(str(tmp_path), "data")
    keys = [[f"w{w}k{k}" for k in range(KEYS_PER_WRITER)] for w in range(WRITERS)]
    allkeys = [k for ks in keys for k in ks]
    exp = Expected(os.path.join(str(tmp_path), "expected.json"), allkeys)
    stats = {"acked": 0, "maybe_found": 0, "maybe_lost": 0, "kills": 0}
    args = [quorumd(), "--data", data, "--listen", addr, "--node-id", "c1",
            "-o", "sync=always", "-o", "n=1", "-o", "r=1", "-o", "w=1",
            "-o", "memtable_size=64k", "-o", "request_timeout=2s"]
    t_start = time.monotonic()
    for cycle in range(cycles):
        p = procs.start(f"quorumd-c1-{cycle}", args)
        wait_for(lambda: port_open(port) or not p.alive(), timeout=60, what="node listening")
        assert p.alive(), p.log()[-3000:]
        before = sum(1 for k in allkeys if exp.maybe[k] is not None)
        got = verify(addr, exp, allkeys)
        stats["maybe_found"] += got
        stats["maybe_lost"] += before - got
        stop = threading.Event()
        ths = [threading.Thread(target=writer,
                                args=(addr, keys[w], exp, random.Random(rng.random()), stop,
                                      stats), daemon=True)
               for w in range(WRITERS)]
        acked_before = stats["acked"]
        for t in ths:
            t.start()
        # kill only once this cycle wrote something (whatever the machine's
        # speed), then at a random moment of the writers' work
        wait_for(lambda: stats["acked"] - acked_before >= 2 or not any(t.is_alive() for t in ths),
                 timeout=120, what="two acknowledged writes in this cycle")
        time.sleep(rng.uniform(0.0, 1.5))
        p.kill9()
        stats["kills"] += 1
        stop.set()
        for t in ths:
            t.join(90)
            assert not t.is_alive(), "writer did not stop"
    # one last clean start: everything acknowledged is there, and the node
    # stops cleanly (no sanitizer report, checked by the procs fixture)
    p = procs.start("quorumd-c1-final", args)
    wait_for(lambda: port_open(port) or not p.alive(), timeout=60, what="node listening")
    verify(addr, exp, allkeys)
    assert p.stop() == 0
    stats["seconds"] = round(time.monotonic() - t_start, 1)
    print("crash stats: " + json.dumps(stats))
    report = os.environ.get("QFS_CRASH_REPORT")
    if report:
        with open(report, "w") as f:
            json.dump(stats, f)
    assert stats["acked"] >= 2 * cycles, stats
