"""statfs from the cluster: two mounts joined as a two-node cluster (n=2),
each node's data directory on its own small tmpfs (64 MiB and 128 MiB), so
the figures df shows can only come from both disks: (64 + 128) / 2 copies
= 96 MiB. When the other node is gone the mount falls back to what it can
ask (its own disk) and says so in its log.
"""
import os
import subprocess
import time

import pytest

from conftest import free_port, wait_for
from test_fuse_basic import mount, unmount

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to mount tmpfs")

MiB = 1 << 20


@pytest.fixture
def tmpfs():
    made = []

    def make(path, size_mib):
        os.makedirs(path, exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mib}m", "tmpfs", path],
                       check=True)
        made.append(path)
        return path

    try:
        yield make
    finally:
        # lazy: a daemon still stopping keeps files open there
        for p in reversed(made):
            subprocess.run(["umount", "-l", p], check=False)


def size_of(m):
    st = os.statvfs(m)
    return st.f_blocks * st.f_frsize, st.f_bavail * st.f_frsize, st


def test_statfs_sums_the_cluster(tmpfs, procs, tmp_path):
    da = tmpfs(os.path.join(str(tmp_path), "disk-a"), 64)
    db = tmpfs(os.path.join(str(tmp_path), "disk-b"), 128)
    la = f"127.0.0.2:{free_port('127.0.0.2')}"
    lb = f"127.0.0.3:{free_port('127.0.0.3')}"
    # small memtables: the tmpfs disks are small
    common = ["n=2", "request_timeout=1500ms", "memtable_size=4M"]
    pa, ma = mount(procs, tmp_path, name="a", data=os.path.join(da, "d"), listen=la,
                   extra=["--node-id", "na"], opts=common)
    pb, mb = mount(procs, tmp_path, name="b", data=os.path.join(db, "d"), listen=lb,
                   extra=["--node-id", "nb", "--join", la], opts=common)

    # (64 + 128) MiB over two copies; the statfs block is 64 KiB, so exact
    want = (64 + 128) * MiB // 2
    wait_for(lambda: size_of(ma)[0] == want and size_of(mb)[0] == want, timeout=60,
             interval=0.5, what="both mounts report both disks")
    out = subprocess.run(["df", "-B1", ma], check=True, capture_output=True, text=True).stdout
    assert str(want) in out, out
    _, avail0, st = size_of(ma)
    assert 0 < avail0 <= want
    assert st.f_files > st.f_ffree > 0

    # 24 MiB of distinct data reaches both disks (n=2): the free space of
    # the cluster, per copy, drops by about as much
    with open(os.path.join(ma, "big"), "wb") as f:
        for i in range(24):
            f.write(os.urandom(MiB))
        f.flush()
        os.fsync(f.fileno())
    wait_for(lambda: size_of(ma)[1] <= avail0 - 16 * MiB and size_of(mb)[1] <= avail0 - 16 * MiB,
             timeout=60, interval=0.5, what="free space drops on both mounts")

    # the other node goes away: a falls back to its own disk (64 MiB, one copy)
    unmount(pb, mb)
    wait_for(lambda: size_of(ma)[0] == 64 * MiB, timeout=60, interval=0.5,
             what="a reports its own disk")
    wait_for(lambda: "statfs:" in pa.log(), timeout=10, what="the fallback logged")
    unmount(pa, ma)
