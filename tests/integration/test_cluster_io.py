"""Where a node does its replica work (`io`, docs/cluster.md "Threads of a
node"), seen through `quorumctl status` of real quorumd processes: with
the default `io = auto` and `sync = none` the reads and writes the storage
engine can do from memory are done on the event loop (ops.jobs_loop) and a
value kept in a blob file after a restart is read by a worker
(ops.jobs_worker); with `sync = always` every replica write waits for an
fsync and goes to the workers; `io = worker` never uses the loop. Every
mode returns the same data.
"""
from conftest import wait_for
from test_cluster_node import ctl, get_json, live_values
from test_gossip_handoff import HCluster

BIG = "b" * 70000  # over the engine's blob threshold (64 KiB)


def start(procs, tmp_path, extra):
    c = HCluster(procs, tmp_path, 3, extra)
    for i in range(c.n):
        c.start(i)
    up = {nid: "up" for nid in c.ids}
    for i in range(c.n):
        wait_for(lambda i=i: c.sees(i, up), timeout=30, what=f"{c.ids[i]} sees all up")
    return c


def jobs(c):
    loop = worker = 0
    for i in range(c.n):
        st = c.status(i)
        assert st is not None
        loop += st["ops"]["jobs_loop"]
        worker += st["ops"]["jobs_worker"]
    return loop, worker


def write_and_check(c):
    for k in range(12):
        r = ctl(c.addr(k % c.n), "put", f"io{k}", f"v{k}", "--w", "3")
        assert r.returncode == 0, r.stderr
    r = ctl(c.addr(0), "put", "big", "-", "--w", "3", stdin=BIG.encode())
    assert r.returncode == 0, r.stderr
    read_all(c)


def read_all(c):
    for k in range(12):
        rc, doc = get_json(c.addr((k + 1) % c.n), f"io{k}", "--r", "3")
        assert rc == 0 and live_values(doc) == [f"v{k}"], (k, rc, doc)
    rc, doc = get_json(c.addr(1), "big", "--r", "2")
    assert rc == 0 and live_values(doc) == [BIG], rc


def restart_all(c):
    for i in range(c.n):
        c.proc[i].stop()
    for i in range(c.n):
        c.start(i)
    up = {nid: "up" for nid in c.ids}
    for i in range(c.n):
        wait_for(lambda i=i: c.sees(i, up), timeout=30, what=f"{c.ids[i]} sees all up")


def test_io_auto_uses_the_loop_and_the_workers(procs, tmp_path):
    c = start(procs, tmp_path, ["sync=none"])
    write_and_check(c)
    loop, _ = jobs(c)
    assert loop > 0
    # after a restart the large value is in a blob file: its reads need
    # the disk and go to the workers
    restart_all(c)
    read_all(c)
    loop, worker = jobs(c)
    assert loop > 0 and worker > 0, (loop, worker)


def test_io_auto_sync_always_writes_on_workers(procs, tmp_path):
    c = start(procs, tmp_path, ["sync=always"])
    before = jobs(c)
    write_and_check(c)
    loop, worker = jobs(c)
    # 13 writes reach three replicas each, every one on a worker
    assert worker - before[1] >= 39, (before, loop, worker)
    assert loop > before[0]  # the reads from memory


def test_io_worker_never_uses_the_loop(procs, tmp_path):
    c = start(procs, tmp_path, ["sync=none", "io=worker"])
    write_and_check(c)
    loop, worker = jobs(c)
    assert loop == 0 and worker > 0, (loop, worker)
