"""Reads from fallbacks (sloppy read quorum, docs/cluster.md "Reads from
fallbacks"): with two of a key's three primaries killed (kill -9), a get
with R=2 asks the next healthy nodes of the preference list in their place
and succeeds; a value written meanwhile with a sloppy quorum (one primary +
a hinted copy on a fallback) is read back; read repair reaches only nodes
that answered (a fallback gets it as a hint for the down owner), and once
the owners return every primary holds the newest value by itself. Strict
mode (sloppy_quorum=off) keeps reading only from primaries, so the same
read fails there.
"""
from conftest import wait_for
from test_cluster_node import ctl, get_json, live_values
from test_gossip_handoff import HCluster, kill_two


def start_four(procs, tmp_path, extra=()):
    c = HCluster(procs, tmp_path, 4, extra)
    for i in range(c.n):
        c.start(i)
    up = {nid: "up" for nid in c.ids}
    for i in range(c.n):
        wait_for(lambda i=i: c.sees(i, up), timeout=30, what=f"{c.ids[i]} sees all up")
    assert ctl(c.addr(0), "put", "fk", "v1", "--w", "3").returncode == 0
    wait_for(lambda: len(c.holders("fk")) == 3, timeout=20, what="three replicas")
    prim = c.holders("fk")
    return c, up, prim


def hint_count(c, i):
    st = c.status(i)
    return st["hints"]["count"] if st else -1


def test_get_reads_from_fallbacks(procs, tmp_path):
    c, up, prim = start_four(procs, tmp_path)
    fb = [i for i in range(c.n) if i not in prim][0]
    dead, live = kill_two(c, up, prim)
    assert sorted(live) == sorted([prim[0], fb])
    assert hint_count(c, fb) == 0

    # R=2 with one primary left: the fallback answers (not found) in the
    # place of a down primary, the read stands on the primary's copy
    for i in live:
        rc, doc = get_json(c.addr(i), "fk", "--r", "2")
        assert rc == 0, (c.ids[i], rc, doc)
        assert live_values(doc) == ["v1"], (c.ids[i], doc)
    # read repair went to the fallback as a hint for a down owner, never
    # to the dead primaries
    wait_for(lambda: hint_count(c, fb) >= 1, timeout=10, what="repair hinted at the fallback")

    # a sloppy-quorum write (the primary + a hinted copy on the fallback)
    ctx = get_json(c.addr(prim[0]), "fk", "--r", "1")[1]["context"]
    r = ctl(c.addr(fb), "put", "fk", "v2", "--context", ctx, "--w", "2")
    assert r.returncode == 0, r.stderr
    rc, doc = get_json(c.addr(fb), "fk", "--replica-only")
    assert rc == 0 and live_values(doc) == ["v2"], doc
    for i in live:
        rc, doc = get_json(c.addr(i), "fk", "--r", "2")
        assert rc == 0, (c.ids[i], rc, doc)
        assert live_values(doc) == ["v2"], (c.ids[i], doc)

    # a key never written: not found (exit 1), not a quorum failure
    r = ctl(c.addr(fb), "get", "never-written", "--r", "2")
    assert r.returncode == 1, (r.returncode, r.stderr)

    # the owners come back: the hints are delivered (the put had one
    # fallback for two down owners, so one owner may still lack v2 until
    # a read with all three primaries repairs it)
    for i in dead:
        c.start(i)
    wait_for(lambda: all(c.sees(i, up) for i in range(c.n)), timeout=30, what="all up again")
    wait_for(lambda: all(hint_count(c, i) == 0 for i in range(c.n)), timeout=60,
             what="no hints left")
    rc, doc = get_json(c.addr(fb), "fk", "--r", "3")
    assert rc == 0 and live_values(doc) == ["v2"], doc

    def primaries_hold_v2():
        for i in prim:
            rc, doc = get_json(c.addr(i), "fk", "--replica-only")
            if rc != 0 or live_values(doc) != ["v2"]:
                return False
        return True
    wait_for(primaries_hold_v2, timeout=20, what="every primary holds v2 by itself")


def test_strict_quorum_reads_primaries_only(procs, tmp_path):
    c, up, prim = start_four(procs, tmp_path, extra=["sloppy_quorum=off"])
    dead, live = kill_two(c, up, prim)
    r = ctl(c.addr(live[0]), "get", "fk", "--r", "2")
    assert r.returncode == 3, (r.returncode, r.stdout, r.stderr)
    rc, doc = get_json(c.addr(prim[0]), "fk", "--r", "1")
    assert rc == 0 and live_values(doc) == ["v1"], doc
