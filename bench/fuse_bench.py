#!/usr/bin/env python3
"""fuse_bench.py - quorumfs against bindfs (FUSE passthrough, -o big_writes)
of a local directory on the same disk, in the same run.

Workloads (each on both mounts, fresh):
  seq      write SIZE MiB sequentially in 1 MiB writes, fsync, close; then
           read it back (page cache dropped first when we may)
  small    create COUNT files of 1 KiB, stat each, remove each
  rsync    rsync -a SRC (default /usr/include) into the mount

Each workload runs on quorumfs and then at once on bindfs, so the two
figures of a pair see the same machine load (other work on a shared
machine moves figures by tens of percent within minutes); --repeat N runs
every pair N times and reports medians.

The seq workload also reports the CPU time (user + system, from
/proc/PID/stat, all threads) that each daemon spent while the file was
written: on a shared machine this moves much less than the rates do, so it
is the figure to compare between builds of the mount.

Prints one line per figure and the quorumfs/bindfs ratio against the
issue's targets (seq write/read >= 0.5x bindfs throughput, small-file
create >= 0.3x bindfs rate, rsync time <= 2x bindfs time). Exit status 0
even when a target is missed: this measures, it does not gate.

Usage: fuse_bench.py --quorumfs PATH [--workdir DIR] [--size-mib N]
                     [--files N] [--rsync-src DIR] [--only seq,small,rsync]
                     [--repeat N] [--qopts OPTS]
Needs root (or fuse permissions), bindfs, rsync.
"""
import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_mounted(path, proc=None, timeout=60):
    t = time.monotonic() + timeout
    while time.monotonic() < t:
        if os.path.ismount(path):
            return
        if proc is not None and proc.poll() is not None:
            raise SystemExit(f"mount of {path} failed (exit {proc.returncode})")
        time.sleep(0.05)
    raise SystemExit(f"{path} not mounted after {timeout}s")


def drop_caches():
    try:
        os.sync()
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        return True
    except OSError:
        return False


class Mount:
    def __init__(self, kind, base, quorumfs, qopts=""):
        self.kind = kind
        self.mnt = os.path.join(base, kind + "-mnt")
        os.makedirs(self.mnt)
        self.proc = None
        if kind == "quorumfs":
            self.data = os.path.join(base, "quorumfs-data")
            args = [quorumfs, "-f", "--data", self.data, "--listen",
                    f"127.0.0.1:{free_port()}"] + (["-o", qopts] if qopts else []) + [self.mnt]
        else:
            self.data = os.path.join(base, "bindfs-src")
            os.makedirs(self.data)
            args = ["bindfs", "-f", "-o", "big_writes", self.data, self.mnt]
        self.log = open(os.path.join(base, kind + ".log"), "wb")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT)
        wait_mounted(self.mnt, self.proc)

    def close(self):
        subprocess.run(["fusermount3", "-u", self.mnt], check=False)
        if self.proc is not None:
            try:
                self.proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def cpu_s(pid):
    """User + system CPU seconds of process pid (all its threads)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            st = f.read().rsplit(")", 1)[1].split()
        return (int(st[11]) + int(st[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return 0.0


def seq(m, size_mib):
    path = os.path.join(m.mnt, "seq.bin")
    block = bytearray(os.urandom(1 << 20))
    c0 = cpu_s(m.proc.pid)
    t0 = time.monotonic()
    fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o644)
    for i in range(size_mib):
        # every 4 KiB distinct, so no chunk size can deduplicate the data
        for k in range(0, 1 << 20, 4096):
            block[k:k + 8] = (i * 256 + k // 4096).to_bytes(8, "little")
        os.write(fd, block)
    os.fsync(fd)
    os.close(fd)
    tw = time.monotonic() - t0
    cw = cpu_s(m.proc.pid) - c0
    dropped = drop_caches()
    t0 = time.monotonic()
    fd = os.open(path, os.O_RDONLY)
    got = 0
    while True:
        b = os.read(fd, 1 << 20)
        if not b:
            break
        got += len(b)
    os.close(fd)
    tr = time.monotonic() - t0
    if got != size_mib << 20:
        raise SystemExit(f"{m.kind}: read back {got} bytes, wrote {size_mib << 20}")
    os.unlink(path)
    return {"seq_write_MiBps": size_mib / tw, "seq_read_MiBps": size_mib / tr,
            "seq_write_cpu_s": cw, "cold_read": dropped}


def small(m, count):
    d = os.path.join(m.mnt, "small")
    os.mkdir(d)
    data = b"x" * 1024
    t0 = time.monotonic()
    for i in range(count):
        fd = os.open(os.path.join(d, f"f{i:06d}"), os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o644)
        os.write(fd, data)
        os.close(fd)
    tc = time.monotonic() - t0
    t0 = time.monotonic()
    for i in range(count):
        os.stat(os.path.join(d, f"f{i:06d}"))
    ts = time.monotonic() - t0
    t0 = time.monotonic()
    for i in range(count):
        os.unlink(os.path.join(d, f"f{i:06d}"))
    tu = time.monotonic() - t0
    os.rmdir(d)
    return {"create_per_s": count / tc, "stat_per_s": count / ts, "remove_per_s": count / tu}


def rsync(m, src):
    dst = os.path.join(m.mnt, "rsync") + "/"
    t0 = time.monotonic()
    subprocess.run(["rsync", "-a", src.rstrip("/") + "/", dst], check=True)
    t = time.monotonic() - t0
    t0 = time.monotonic()
    out = subprocess.run(["rsync", "-a", "--stats", src.rstrip("/") + "/", dst], check=True,
                         capture_output=True, text=True).stdout
    t2 = time.monotonic() - t0
    again = [ln for ln in out.splitlines() if "regular files transferred" in ln]
    return {"rsync_s": t, "rsync_again_s": t2,
            "rsync_again_transferred": again[0].split(":")[1].strip() if again else "?"}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quorumfs", required=True)
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--files", type=int, default=10000)
    ap.add_argument("--rsync-src", default="/usr/include")
    ap.add_argument("--only", default="seq,small,rsync")
    ap.add_argument("--qopts", default="", help="extra -o options for quorumfs")
    ap.add_argument("--repeat", type=int, default=1, help="runs of each pair (medians)")
    a = ap.parse_args()
    for tool in ("bindfs", "rsync", "fusermount3"):
        if shutil.which(tool) is None:
            raise SystemExit(f"fuse_bench: {tool} is not installed")
    only = set(a.only.split(","))
    base = tempfile.mkdtemp(prefix="qfs-bench-", dir=a.workdir)
    runs = {"quorumfs": [], "bindfs": []}
    try:
        for rnd in range(max(1, a.repeat)):
            cur = {"quorumfs": {}, "bindfs": {}}
            for w in ("seq", "small", "rsync"):
                if w not in only:
                    continue
                for kind in ("quorumfs", "bindfs"):
                    wd = os.path.join(base, f"{kind}-{w}-{rnd}")
                    os.makedirs(wd)
                    m = Mount(kind, wd, a.quorumfs, a.qopts)
                    try:
                        if w == "seq":
                            new = seq(m, a.size_mib)
                        elif w == "small":
                            new = small(m, a.files)
                        else:
                            new = rsync(m, a.rsync_src)
                        cur[kind].update(new)
                    finally:
                        m.close()
                        shutil.rmtree(wd, ignore_errors=True)
                    print(f"# run {rnd + 1} {kind} {w}: " + ", ".join(
                        f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}"
                        for k, v in new.items()), flush=True)
            for kind in cur:
                runs[kind].append(cur[kind])
    finally:
        shutil.rmtree(base, ignore_errors=True)

    def med(rs):
        out = {}
        for k in rs[0]:
            vals = [r[k] for r in rs]
            if isinstance(vals[0], bool):
                out[k] = all(vals)
            elif isinstance(vals[0], float):
                vals.sort()
                out[k] = vals[len(vals) // 2] if len(vals) % 2 else \
                    (vals[len(vals) // 2 - 1] + vals[len(vals) // 2]) / 2
            else:
                out[k] = ",".join(str(v) for v in vals)
        return out
    results = {kind: med(rs) for kind, rs in runs.items()}
    q, b = results["quorumfs"], results["bindfs"]
    rows = []
    if "seq" in only:
        rows.append(("seq write MiB/s", q["seq_write_MiBps"], b["seq_write_MiBps"],
                     q["seq_write_MiBps"] / b["seq_write_MiBps"], ">= 0.5"))
        rows.append(("seq read MiB/s", q["seq_read_MiBps"], b["seq_read_MiBps"],
                     q["seq_read_MiBps"] / b["seq_read_MiBps"], ">= 0.5"))
        rows.append(("seq write daemon CPU s", q["seq_write_cpu_s"], b["seq_write_cpu_s"],
                     q["seq_write_cpu_s"] / max(b["seq_write_cpu_s"], 0.01), ""))
    if "small" in only:
        rows.append(("create 1KiB files/s", q["create_per_s"], b["create_per_s"],
                     q["create_per_s"] / b["create_per_s"], ">= 0.3"))
        rows.append(("stat files/s", q["stat_per_s"], b["stat_per_s"],
                     q["stat_per_s"] / b["stat_per_s"], ""))
        rows.append(("remove files/s", q["remove_per_s"], b["remove_per_s"],
                     q["remove_per_s"] / b["remove_per_s"], ""))
    if "rsync" in only:
        rows.append(("rsync -a time s", q["rsync_s"], b["rsync_s"],
                     q["rsync_s"] / b["rsync_s"], "<= 2.0"))
        rows.append(("second rsync time s", q["rsync_again_s"], b["rsync_again_s"],
                     q["rsync_again_s"] / b["rsync_again_s"], ""))
    if a.repeat > 1:
        print(f"medians of {a.repeat} runs (ratios of medians)")
    print(f"{'figure':24} {'quorumfs':>12} {'bindfs':>12} {'ratio':>8}  target")
    for name, qv, bv, ratio, target in rows:
        ok = ""
        if target:
            lim = float(target.split()[1])
            ok = "ok" if (ratio >= lim if target.startswith(">=") else ratio <= lim) else "MISSED"
        print(f"{name:24} {qv:12.2f} {bv:12.2f} {ratio:8.2f}  {target} {ok}")
    if "rsync" in only:
        print(f"second rsync transferred (quorumfs): {q['rsync_again_transferred']}")
    if "seq" in only and not q.get("cold_read"):
        print("note: page cache not dropped (not root): reads may be warm")
    return 0


if __name__ == "__main__":
    sys.exit(main())
