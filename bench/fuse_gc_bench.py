#!/usr/bin/env python3
"""fuse_gc_bench.py - what chunk collection and statfs from the cluster cost.

On one quorumfs mount (a single-node store in a fresh data directory):
  1. writes FILES files of SIZE MiB each (1 MiB chunks, every 4 KiB
     distinct), then rewrites half of them with new bytes, so half of the
     chunks become garbage;
  2. times `quorumctl fs-gc --dry-run` (the mark and the listing: every
     file version and every chunk's metadata read from the store) and then
     `quorumctl fs-gc --grace 0 --force` (the same plus one all-replica read
     and one delete per garbage chunk), printing counts, bytes and chunks
     per second;
  3. times statfs: the first call after the cache expired (asks the
     cluster) and cached calls.

Usage: fuse_gc_bench.py --quorumfs PATH --quorumctl PATH [--workdir DIR]
                        [--files N] [--size-mib N] [--repeat N]
Prints one line per figure (medians over --repeat runs of step 2). Needs
root (or fuse permissions).
"""
import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_mounted(mnt, proc, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.ismount(mnt):
            return
        if proc.poll() is not None:
            sys.exit(f"quorumfs exited with {proc.returncode}")
        time.sleep(0.1)
    sys.exit("quorumfs did not mount")


def write_file(path, size_mib, salt):
    block = bytearray(os.urandom(1 << 20))
    with open(path, "wb") as f:
        for i in range(size_mib):
            for k in range(0, 1 << 20, 4096):
                block[k:k + 12] = (salt * 1000003 + i * 256 + k // 4096).to_bytes(12, "little")
            f.write(block)
        f.flush()
        os.fsync(f.fileno())


def gc(ctl, node, *args):
    t0 = time.monotonic()
    p = subprocess.run([ctl, "--node", node, "--timeout", "60s", "fs-gc", "--json"] + list(args),
                       capture_output=True, text=True)
    dt = time.monotonic() - t0
    if p.returncode != 0:
        sys.exit(f"fs-gc failed ({p.returncode}): {p.stderr}")
    return dt, json.loads(p.stdout)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quorumfs", required=True)
    ap.add_argument("--quorumctl", required=True)
    ap.add_argument("--workdir")
    ap.add_argument("--files", type=int, default=16)
    ap.add_argument("--size-mib", type=int, default=16)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    base = tempfile.mkdtemp(prefix="qfs-gc-bench-", dir=a.workdir)
    mnt, data = os.path.join(base, "mnt"), os.path.join(base, "data")
    os.makedirs(mnt)
    node = f"127.0.0.1:{free_port()}"
    log = open(os.path.join(base, "quorumfs.log"), "wb")
    proc = subprocess.Popen([a.quorumfs, "-f", "--data", data, "--listen", node, mnt],
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_mounted(mnt, proc)
        print(f"load: {os.getloadavg()[0]:.1f} {os.getloadavg()[1]:.1f}")
        t0 = time.monotonic()
        for i in range(a.files):
            write_file(os.path.join(mnt, f"f{i}"), a.size_mib, i)
        for i in range(0, a.files, 2):
            write_file(os.path.join(mnt, f"f{i}"), a.size_mib, 1000 + i)
        total = a.files * a.size_mib + (a.files + 1) // 2 * a.size_mib
        print(f"wrote {total} MiB in {time.monotonic() - t0:.1f} s")

        dry = []
        for _ in range(a.repeat):
            dt, r = gc(a.quorumctl, node, "--grace", "0", "--dry-run")
            dry.append(dt)
        print(f"fs-gc --dry-run: {statistics.median(dry):.2f} s median of {len(dry)} "
              f"({r['chunks']} chunks, {r['referenced']} referenced, "
              f"{r['unreferenced']} unreferenced = {r['unreferenced_bytes'] >> 20} MiB; "
              f"{r['chunks'] / statistics.median(dry):.0f} chunks/s listed)")
        dt, r = gc(a.quorumctl, node, "--grace", "0", "--force")
        print(f"fs-gc --grace 0: {dt:.2f} s, deleted {r['deleted']} chunks "
              f"({r['deleted_bytes'] >> 20} MiB; {r['deleted'] / dt if dt else 0:.0f} deletes/s "
              f"including the scan), errors {r['errors']}")
        dt2, r2 = gc(a.quorumctl, node, "--grace", "0", "--force")
        print(f"fs-gc again: {dt2:.2f} s, unreferenced {r2['unreferenced']}")

        # statfs: the first call after the cache expired asks the cluster
        time.sleep(3.2)
        t = time.monotonic()
        os.statvfs(mnt)
        cold = time.monotonic() - t
        warm = []
        for _ in range(100):
            t = time.monotonic()
            os.statvfs(mnt)
            warm.append(time.monotonic() - t)
        print(f"statfs: {cold * 1e3:.2f} ms asking, {statistics.median(warm) * 1e6:.0f} us cached "
              f"(median of 100)")
        print(f"load: {os.getloadavg()[0]:.1f} {os.getloadavg()[1]:.1f}")
    finally:
        subprocess.run(["fusermount3", "-u", mnt], check=False)
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
