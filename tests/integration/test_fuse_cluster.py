"""quorumfs as a cluster: two mounts whose embedded nodes form a two-node
cluster on 127.0.0.2 and 127.0.0.3, the network between them cut with
nftables rules in a private table (always deleted at teardown), conflicts
made on purpose and resolved with mv and rm, and quorum lost on purpose.
"""
import json
import os
import shutil
import subprocess
import time

import pytest

from conftest import BUILDDIR, free_port, wait_for
from test_fuse_basic import mount

pytestmark = pytest.mark.skipif(
    shutil.which("nft") is None or os.geteuid() != 0,
    reason="needs root and nftables to cut the network")


class Cut:
    """Drops all traffic to and from the given ADDR:PORT listeners."""

    def __init__(self, listeners):
        self.table = f"qfs_test_{os.getpid()}_{int(time.monotonic() * 1000) % 100000}"
        self.listeners = listeners
        self.active = False

    def nft(self, *args):
        subprocess.run(["nft"] + list(args), check=True)

    def cut(self):
        self.nft("add", "table", "inet", self.table)
        for hook in ("output", "input"):
            self.nft("add", "chain", "inet", self.table, hook,
                     f"{{ type filter hook {hook} priority 0 ; }}")
            for hp in self.listeners:
                host, port = hp.rsplit(":", 1)
                self.nft("add", "rule", "inet", self.table, hook, "ip", "daddr", host, "tcp",
                         "dport", port, "drop")
                self.nft("add", "rule", "inet", self.table, hook, "ip", "saddr", host, "tcp",
                         "sport", port, "drop")
        self.active = True

    def heal(self):
        if self.active:
            subprocess.run(["nft", "delete", "table", "inet", self.table], check=False)
            self.active = False


@pytest.fixture
def cut_factory():
    made = []

    def make(listeners):
        c = Cut(listeners)
        made.append(c)
        return c

    try:
        yield make
    finally:
        for c in made:
            c.heal()


def two_mounts(procs, tmp_path, opts):
    la = f"127.0.0.2:{free_port('127.0.0.2')}"
    lb = f"127.0.0.3:{free_port('127.0.0.3')}"
    common = ["n=2", "request_timeout=1500ms"] + opts
    pa, ma = mount(procs, tmp_path, name="a", listen=la, extra=["--node-id", "na"], opts=common)
    pb, mb = mount(procs, tmp_path, name="b", listen=lb,
                   extra=["--node-id", "nb", "--join", la], opts=common)
    # the cluster works: a file made on one side shows on the other. With
    # r=1, a read that reaches the newly joined (still empty) replica first
    # may report the root directory missing until it has been repaired, so
    # the first create is retried for a bounded time.
    def make_hello():
        with open(os.path.join(ma, "hello"), "w") as f:
            f.write("hi")
        return True
    wait_for(make_hello, timeout=60, interval=0.2, what="first create on a")
    wait_for(lambda: os.path.exists(os.path.join(mb, "hello")), timeout=60,
             what="b sees a's file")
    return (pa, ma, la), (pb, mb, lb)


def read(path):
    with open(path) as f:
        return f.read()


def conflicts(m, base="report", ext=".txt"):
    return sorted(n for n in os.listdir(m)
                  if n.startswith(base + ".sync-conflict-") and n.endswith(ext))


def test_partition_conflict_and_resolution(procs, tmp_path, cut_factory):
    (pa, ma, la), (pb, mb, lb) = two_mounts(procs, tmp_path, ["r=1", "w=1"])
    os.mkdir(os.path.join(ma, "shared"))
    with open(os.path.join(ma, "report.txt"), "w") as f:
        f.write("base\n")
    wait_for(lambda: os.path.exists(os.path.join(mb, "report.txt"))
             and read(os.path.join(mb, "report.txt")) == "base\n"
             and os.path.isdir(os.path.join(mb, "shared")),
             timeout=60, what="base version on b")

    cut = cut_factory([la, lb])
    cut.cut()
    with open(os.path.join(ma, "report.txt"), "w") as f:
        f.write("from a\n")
    time.sleep(1.1)  # distinct mtimes: the newer one keeps the name
    with open(os.path.join(mb, "report.txt"), "w") as f:
        f.write("from b\n")
    # concurrent creates of different files in one directory
    with open(os.path.join(ma, "shared", "made-on-a"), "w") as f:
        f.write("a")
    with open(os.path.join(mb, "shared", "made-on-b"), "w") as f:
        f.write("b")
    assert read(os.path.join(ma, "report.txt")) == "from a\n"
    assert read(os.path.join(mb, "report.txt")) == "from b\n"
    cut.heal()

    # both mounts converge on: the name shows b's (newer) version, and one
    # conflict file beside it shows a's, under the same name on both sides
    def converged():
        ca, cb = conflicts(ma), conflicts(mb)
        if len(ca) != 1 or ca != cb:
            return False
        return (read(os.path.join(ma, "report.txt")) == "from b\n"
                and read(os.path.join(mb, "report.txt")) == "from b\n"
                and read(os.path.join(ma, ca[0])) == "from a\n"
                and read(os.path.join(mb, cb[0])) == "from a\n")
    wait_for(converged, timeout=90, interval=0.5, what="conflict visible on both mounts")
    name = conflicts(ma)[0]
    assert name.endswith("-na.txt"), name  # the node that wrote it
    sib = os.getxattr(os.path.join(ma, "report.txt"), "user.quorum.siblings").decode()
    assert "node=" in sib and "context=" in sib and name in sib
    # quorumctl siblings lists the same two versions, from either node
    for node in (la, lb):
        r = subprocess.run([os.path.join(BUILDDIR, "src", "cli", "quorumctl"), "--node", node,
                            "siblings", "report.txt", "--json"], capture_output=True, timeout=60)
        assert r.returncode == 0, r.stderr
        sibs = {s["name"]: s for s in json.loads(r.stdout)["siblings"]}
        assert set(sibs) == {"report.txt", name}, sibs
        assert sibs["report.txt"]["shown"] and sibs["report.txt"]["origin"] == "nb"
        assert not sibs[name]["shown"] and sibs[name]["origin"] == "na"
        assert sibs["report.txt"]["size"] == sibs[name]["size"] == 7
        assert sibs["report.txt"]["digest"] != sibs[name]["digest"]

    # both creates survived the cut
    want = {"made-on-a", "made-on-b"}
    wait_for(lambda: want <= set(os.listdir(os.path.join(ma, "shared")))
             and want <= set(os.listdir(os.path.join(mb, "shared"))),
             timeout=60, interval=0.5, what="both creates listed on both mounts")

    # writing the name descends from the shown version only: the conflict stays
    with open(os.path.join(mb, "report.txt"), "w") as f:
        f.write("b edits\n")
    wait_for(lambda: read(os.path.join(ma, "report.txt")) == "b edits\n"
             and conflicts(ma) == [name], timeout=60, interval=0.5,
             what="edit of the shown version keeps the conflict")

    # mv CONFLICT NAME picks that version and discards the rest, everywhere
    os.rename(os.path.join(ma, name), os.path.join(ma, "report.txt"))
    wait_for(lambda: conflicts(ma) == [] and conflicts(mb) == []
             and read(os.path.join(ma, "report.txt")) == "from a\n"
             and read(os.path.join(mb, "report.txt")) == "from a\n",
             timeout=60, interval=0.5, what="mv resolution on both mounts")

    # a second conflict, resolved with rm of the conflict file
    cut.cut()
    with open(os.path.join(ma, "report.txt"), "w") as f:
        f.write("a2\n")
    time.sleep(1.1)
    with open(os.path.join(mb, "report.txt"), "w") as f:
        f.write("b2\n")
    cut.heal()
    wait_for(lambda: len(conflicts(ma)) == 1 and conflicts(mb) == conflicts(ma),
             timeout=90, interval=0.5, what="second conflict on both mounts")
    os.unlink(os.path.join(mb, conflicts(mb)[0]))
    wait_for(lambda: conflicts(ma) == [] and conflicts(mb) == []
             and read(os.path.join(ma, "report.txt")) == "b2\n"
             and read(os.path.join(mb, "report.txt")) == "b2\n",
             timeout=60, interval=0.5, what="rm resolution on both mounts")


def test_eio_not_hang_without_quorum(procs, tmp_path, cut_factory):
    (pa, ma, la), (pb, mb, lb) = two_mounts(procs, tmp_path, ["r=2", "w=2"])
    cut = cut_factory([la, lb])
    cut.cut()
    time.sleep(1)  # let cached attributes expire
    t0 = time.monotonic()
    with pytest.raises(OSError) as e:
        with open(os.path.join(ma, "during-cut"), "w") as f:
            f.write("x")
    assert e.value.errno == 5, e.value  # EIO
    with pytest.raises(OSError):
        os.listdir(os.path.join(ma, "newdir-never-made"))
    assert time.monotonic() - t0 < 60, "an operation without quorum took too long"
    cut.heal()
    # the mount recovers by itself
    def works():
        with open(os.path.join(ma, "after-heal"), "w") as f:
            f.write("ok")
        return read(os.path.join(mb, "after-heal")) == "ok"
    wait_for(works, timeout=90, interval=1, what="mount works again after the heal")
