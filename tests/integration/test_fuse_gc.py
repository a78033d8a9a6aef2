"""Chunk collection (quorumctl fs-gc) against real mounts: chunks of
overwritten, truncated and removed files are deleted, every file that is
still there reads back byte for byte (also after a remount), a chunk named
only by a conflict sibling survives, an unreferenced chunk younger than the
grace period survives, a dry run deletes nothing, renamed files keep their
chunks, and the collector refuses to run when a member cannot be scanned.

Small chunks (64 KiB) keep the data small under ASan.
"""
import hashlib
import json
import os
import shutil
import subprocess
import time

import pytest

from conftest import BUILDDIR, free_port, wait_for
from test_fuse_basic import mount, unmount

KiB = 1 << 10
OPTS = ["chunk_size=64k", "inline_max=4k"]


def quorumctl(*args, check=True):
    exe = os.path.join(BUILDDIR, "src", "cli", "quorumctl")
    p = subprocess.run([exe, "--timeout", "20s"] + list(args), capture_output=True,
                       text=True, timeout=300)
    if check and p.returncode != 0:
        raise AssertionError(f"quorumctl {args}: rc {p.returncode}\n{p.stdout}\n{p.stderr}")
    return p


def gc(node, *args, check=True):
    p = quorumctl("--node", node, "fs-gc", "--json", *args, check=check)
    return p, (json.loads(p.stdout) if p.returncode == 0 else None)


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def digest(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def test_gc_frees_old_chunks_and_keeps_every_file(procs, tmp_path):
    listen = f"127.0.0.1:{free_port()}"
    data = os.path.join(str(tmp_path), "m-data")
    p, m = mount(procs, tmp_path, listen=listen, data=data, opts=OPTS)
    files = {}
    for name, size in (("a", 640 * KiB), ("b", 512 * KiB), ("c", 256 * KiB),
                       ("keep", 300 * KiB), ("same1", 192 * KiB)):
        write(os.path.join(m, name), os.urandom(size))
    # two files sharing chunks: removing one must not take the other's
    shutil.copyfile(os.path.join(m, "same1"), os.path.join(m, "same2"))
    # a renamed file keeps its chunks (a move record is stored first)
    write(os.path.join(m, "old-name"), os.urandom(200 * KiB))
    os.rename(os.path.join(m, "old-name"), os.path.join(m, "new-name"))
    os.mkdir(os.path.join(m, "d"))
    os.rename(os.path.join(m, "keep"), os.path.join(m, "d", "keep"))
    # a directory rename moves every key below it, with move records
    os.rename(os.path.join(m, "d"), os.path.join(m, "d2"))

    # garbage: a rewritten, a truncated, a removed file
    write(os.path.join(m, "a"), os.urandom(640 * KiB))
    with open(os.path.join(m, "b"), "r+b") as f:
        f.truncate(100 * KiB)
    os.unlink(os.path.join(m, "c"))
    os.unlink(os.path.join(m, "same1"))
    for name in ("a", "b", "same2", "new-name", "d2/keep"):
        files[name] = digest(os.path.join(m, name))
    # ids of live chunks: a 640 KiB file is 10 chunks of 64 KiB, etc.
    live = 10 + 2 + 3 + 4 + 5

    # dry run: finds the garbage (a: 10 chunks, b: 7 past 100 KiB plus its
    # rewritten second chunk, c: 4; same1's are same2's), deletes nothing
    _, d1 = gc(listen, "--grace", "0", "--force", "--dry-run")
    assert d1["dry_run"] and d1["deleted"] == 0, d1
    assert d1["unreferenced"] >= 10 + 7 + 4, d1
    assert d1["referenced"] == live, d1
    assert d1["move_records"] >= 3, d1
    text = quorumctl("--node", listen, "fs-gc", "--grace", "0", "--dry-run").stdout
    assert f"would delete: {d1['unreferenced']} chunks" in text, text
    # pages of 2 keys: the same answer
    _, d2 = gc(listen, "--grace", "0", "--dry-run", "--page", "2")
    for k in ("chunks", "unreferenced", "referenced", "files", "versions", "move_records"):
        assert d2[k] == d1[k], (k, d1, d2)

    # the garbage is fresh: a grace period keeps all of it
    _, y = gc(listen, "--grace", "600", "--force")
    assert y["deleted"] == 0 and y["young"] == d1["unreferenced"], y
    assert y["unreferenced"] == 0, y

    # past the grace period: deleted, counted in bytes
    _, r = gc(listen, "--grace", "0", "--force")
    assert r["deleted"] == d1["unreferenced"], (d1, r)
    assert r["deleted_bytes"] >= (10 + 7 + 4) * 64 * KiB - 64 * KiB, r
    assert r["errors"] == 0, r
    for name, want in files.items():
        assert digest(os.path.join(m, name)) == want, name
    # nothing left to collect; the move records went with the grace period
    _, again = gc(listen, "--grace", "0", "--force", "--parallel", "1")
    assert again["unreferenced"] == 0 and again["deleted"] == 0, again
    assert again["referenced"] == live and again["move_records"] == 0, again

    # after a remount every file still reads back
    unmount(p, m)
    p, m = mount(procs, tmp_path, listen=listen, data=data, opts=OPTS)
    for name, want in files.items():
        assert digest(os.path.join(m, name)) == want, name
    unmount(p, m)


def test_gc_refuses_a_file_object_it_cannot_decode(procs, tmp_path):
    """A version whose chunks cannot be known stops the collection, on any
    page of the scan (not only the last)."""
    listen = f"127.0.0.1:{free_port()}"
    p, m = mount(procs, tmp_path, listen=listen, opts=OPTS)
    write(os.path.join(m, "a"), os.urandom(256 * KiB))
    write(os.path.join(m, "a"), os.urandom(256 * KiB))  # 4 chunks of garbage
    want = digest(os.path.join(m, "a"))
    # sorts before "f:/a": with pages of one key it is never on the last page
    quorumctl("--node", listen, "put", "f:/0-undecodable", "not a file object")
    for page in ("1", "1000"):
        r = quorumctl("--node", listen, "fs-gc", "--grace", "0", "--force", "--page", page,
                      check=False)
        assert r.returncode == 4, (page, r.returncode, r.stdout, r.stderr)
        assert "0-undecodable" in r.stderr and "does not decode" in r.stderr, r.stderr
    d, _ = gc(listen, "--grace", "0", "--force", "--dry-run", "--page", "1", check=False)
    assert d.returncode == 4, (d.stdout, d.stderr)  # a dry run refuses too
    ctx = json.loads(quorumctl("--node", listen, "--json", "get", "f:/0-undecodable").stdout)
    quorumctl("--node", listen, "delete", "f:/0-undecodable", "--context", ctx["context"])
    _, r = gc(listen, "--grace", "0", "--force", "--page", "1")
    assert r["deleted"] == 4 and r["errors"] == 0, r
    assert digest(os.path.join(m, "a")) == want
    unmount(p, m)


def test_gc_usage_errors(procs, tmp_path):
    p = quorumctl("--node", "127.0.0.1:1", "fs-gc", "--grace", "x", check=False)
    assert p.returncode == 2 and "--grace" in p.stderr
    p = quorumctl("--node", "127.0.0.1:1", "fs-gc", "--bogus", check=False)
    assert p.returncode == 2
    # a grace period under 2 R needs --force (a dry run does not)
    p = quorumctl("--node", "127.0.0.1:1", "fs-gc", "--grace", "60", check=False)
    assert p.returncode == 2 and "--force" in p.stderr, p.stderr
    # nobody listening: refuses, deletes nothing
    port = free_port()
    p = quorumctl("--node", f"127.0.0.1:{port}", "fs-gc", "--grace", "0", "--force", check=False)
    assert p.returncode == 3 and "refusing" in p.stderr, p.stderr


needs_nft = pytest.mark.skipif(shutil.which("nft") is None or os.geteuid() != 0,
                               reason="needs root and nftables to cut the network")


@needs_nft
def test_gc_keeps_conflict_siblings_and_refuses_partial_scans(procs, tmp_path):
    from test_fuse_cluster import Cut
    la = f"127.0.0.2:{free_port('127.0.0.2')}"
    lb = f"127.0.0.3:{free_port('127.0.0.3')}"
    common = ["n=2", "r=1", "w=1", "request_timeout=1500ms"] + OPTS
    pa, ma = mount(procs, tmp_path, name="a", listen=la, extra=["--node-id", "na"],
                   opts=common)
    pb, mb = mount(procs, tmp_path, name="b", listen=lb,
                   extra=["--node-id", "nb", "--join", la], opts=common)

    def make_base():
        write(os.path.join(ma, "report.bin"), b"base" * 40000)
        return True
    wait_for(make_base, timeout=60, interval=0.2, what="first create on a")
    wait_for(lambda: os.path.exists(os.path.join(mb, "report.bin")), timeout=60,
             what="b sees a's file")

    cut = Cut([la, lb])
    try:
        cut.cut()
        side_a, side_b = os.urandom(200 * KiB), os.urandom(300 * KiB)
        write(os.path.join(ma, "report.bin"), side_a)
        time.sleep(1.1)
        write(os.path.join(mb, "report.bin"), side_b)
        # while cut: the collector cannot scan the other member and refuses
        p = quorumctl("--node", la, "--timeout", "3s", "fs-gc", "--grace", "0", "--force",
                      check=False)
        assert p.returncode == 3 and "refusing" in p.stderr, (p.stdout, p.stderr)
    finally:
        cut.heal()

    def conflict_names(m):
        return sorted(n for n in os.listdir(m) if n.startswith("report.sync-conflict-"))

    def converged():
        ca, cb = conflict_names(ma), conflict_names(mb)
        if len(ca) != 1 or ca != cb:
            return False
        with open(os.path.join(ma, "report.bin"), "rb") as f:
            shown = f.read()
        with open(os.path.join(ma, ca[0]), "rb") as f:
            other = f.read()
        return shown == side_b and other == side_a
    wait_for(converged, timeout=90, interval=0.5, what="conflict visible on both mounts")
    conflict = conflict_names(ma)[0]

    # every replica reachable again: the collector runs; the chunks of the
    # conflict sibling (a's version) are referenced and stay
    def collected():
        p, r = gc(la, "--grace", "0", "--force", check=False)
        return r if p.returncode == 0 else None
    r = wait_for(collected, timeout=60, interval=1, what="fs-gc runs once both are up")
    assert r["members"] == 2 and r["errors"] == 0, r
    assert r["referenced"] >= 4 + 5, r
    for m in (ma, mb):
        with open(os.path.join(m, "report.bin"), "rb") as f:
            assert f.read() == side_b
        with open(os.path.join(m, conflict), "rb") as f:
            assert f.read() == side_a
    # resolving the conflict makes a's chunks garbage
    os.unlink(os.path.join(ma, conflict))
    wait_for(lambda: not conflict_names(mb), timeout=60, what="b sees the resolution")
    _, r2 = gc(la, "--grace", "0", "--force")
    assert r2["deleted"] >= 4, r2
    for m in (ma, mb):
        with open(os.path.join(m, "report.bin"), "rb") as f:
            assert f.read() == side_b
    # a directory renamed on one mount shows moved on the other
    # (fresh bytes: side_a's chunks were just collected with a grace period
    # of 0, and this mount would not store them again for QFS_CHUNK_REPUT_MS:
    # the reason fs-gc warns below 1200 s)
    tree_data = os.urandom(150 * KiB)
    os.makedirs(os.path.join(ma, "tree", "sub"))
    write(os.path.join(ma, "tree", "sub", "f"), tree_data)
    os.rename(os.path.join(ma, "tree"), os.path.join(ma, "moved"))

    seen = []

    def moved_on_b():
        p = os.path.join(mb, "moved", "sub", "f")
        seen[:] = [sorted(os.listdir(mb)), os.path.exists(p)]
        if os.path.exists(os.path.join(mb, "tree")) or not os.path.exists(p):
            return False
        with open(p, "rb") as f:
            return f.read() == tree_data
    try:
        wait_for(moved_on_b, timeout=60, interval=0.5, what="b sees the moved tree")
    except BaseException:
        print("B SEES", seen, "A SEES", sorted(os.listdir(ma)),
              os.path.exists(os.path.join(ma, "moved", "sub", "f")))
        raise
    unmount(pb, mb)
    unmount(pa, ma)


LONG = os.environ.get("QFS_LONG") == "1"


def test_gc_concurrent_with_writers(procs, tmp_path):
    """The collector runs over and over while files are written, rewritten,
    truncated, renamed (alone and in whole directories) and removed with
    fresh bytes; at the end, after a last collection, every file reads back
    as the model says. A grace period of 8 s stands in for the hour: every
    file here is stored within a second of its chunks."""
    import random
    import threading
    listen = f"127.0.0.1:{free_port()}"
    p, m = mount(procs, tmp_path, listen=listen, opts=OPTS)
    rnd = random.Random(int(os.environ.get("QFS_GC_SEED", "1")))
    model = {}  # relative path -> bytes
    dirs = ["d0", "d1"]
    for d in dirs:
        os.mkdir(os.path.join(m, d))
    stop = threading.Event()
    errors = []
    runs = []

    def collector():
        while not stop.is_set():
            pr, r = gc(listen, "--grace", "8", "--force", check=False)
            if pr.returncode != 0:
                errors.append(pr.stderr)
                return
            runs.append(r)

    t = threading.Thread(target=collector)
    t.start()
    deadline = time.monotonic() + (120 if LONG else 12)
    n = 0
    try:
        while time.monotonic() < deadline and not errors:
            n += 1
            op = rnd.random()
            names = sorted(model)
            if op < 0.45 or not names:
                name = f"{rnd.choice(dirs)}/f{n}" if op < 0.3 or not names else rnd.choice(names)
                data = os.urandom(rnd.randint(5, 400) * KiB)
                write(os.path.join(m, name), data)
                model[name] = data
            elif op < 0.6:
                name = rnd.choice(names)
                cut = rnd.randint(0, len(model[name]))
                with open(os.path.join(m, name), "r+b") as f:
                    f.truncate(cut)
                model[name] = model[name][:cut]
            elif op < 0.75:
                name = rnd.choice(names)
                new = f"{rnd.choice(dirs)}/r{n}"
                os.rename(os.path.join(m, name), os.path.join(m, new))
                model[new] = model.pop(name)
            elif op < 0.8:
                # a whole directory moves
                old = rnd.choice(dirs)
                new = f"dir{n}"
                os.rename(os.path.join(m, old), os.path.join(m, new))
                dirs[dirs.index(old)] = new
                for k in [k for k in model if k.startswith(old + "/")]:
                    model[new + k[len(old):]] = model.pop(k)
            else:
                name = rnd.choice(names)
                os.unlink(os.path.join(m, name))
                del model[name]
    finally:
        stop.set()
        t.join(timeout=300)
    assert not errors, errors[0]
    assert len(runs) >= 2, runs
    # everything written is now older than the grace period: collect once
    # more, then every file must still be whole
    time.sleep(9)
    _, last = gc(listen, "--grace", "8", "--force")
    assert last["errors"] == 0, last
    deleted = sum(r["deleted"] for r in runs) + last["deleted"]
    assert deleted > 0, (runs, last)
    for name, want in model.items():
        with open(os.path.join(m, name), "rb") as f:
            assert f.read() == want, name
    # the last run deleted the (expired) move records; chunks only they
    # kept go in the next run, after which nothing is left to collect
    assert last["move_records_deleted"] > 0, last
    _, again = gc(listen, "--grace", "0", "--force")
    assert again["move_records"] == 0, again
    _, again2 = gc(listen, "--grace", "0", "--force")
    assert again2["unreferenced"] == 0 and again2["referenced"] == again["referenced"], again2
    for name, want in model.items():
        with open(os.path.join(m, name), "rb") as f:
            assert f.read() == want, name
    unmount(p, m)
