#!/usr/bin/env python3
"""fsx-style exerciser for quorumfs: random writes (also past EOF), reads
compared byte for byte, truncates up and down, fsync, close/reopen, renames
to a new name and back, and whole-file reads, all checked against an
in-memory model of the file.

Writes also go through a second handle and O_APPEND handles opened for the
one write. Reproducible: every choice comes from random.Random(seed); the seed is
printed at the start and on failure, with the tail of the operation log.
Single-threaded; one file per exerciser, in a directory it is given.

Used by tests/integration/test_fuse_posix.py, and standalone:
    fsx.py [--seed N] [--ops N] [--maxlen BYTES] DIR
"""
import argparse
import collections
import os
import random
import sys
import time


class FsxError(AssertionError):
    pass


def _first_diff(a, b):
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


class Fsx:
    OPS = (("write", 30), ("read", 25), ("truncate", 8), ("fsync", 5), ("reopen", 6),
           ("rename", 4), ("readall", 4), ("append", 8), ("stat", 10), ("write2", 4))

    def __init__(self, directory, seed, maxlen=300000, log=sys.stdout):
        self.dir = directory
        self.seed = seed
        self.rng = random.Random(seed)
        self.maxlen = maxlen
        self.out = log
        self.names = ("fsx.file", "fsx.renamed")
        self.name = 0
        self.path = os.path.join(directory, self.names[0])
        self.model = bytearray()
        self.tail = collections.deque(maxlen=40)
        self.done = 0
        self.fd = os.open(self.path, os.O_CREAT | os.O_TRUNC | os.O_RDWR, 0o644)
        self._choices = [n for n, w in self.OPS for _ in range(w)]
        print(f"fsx: seed {seed} file {self.path}", file=self.out, flush=True)

    # -- failure reporting
    def fail(self, msg):
        lines = "\n".join(self.tail)
        raise FsxError(f"fsx: {msg}\nseed {self.seed}, after {self.done} ops; last ops:\n{lines}")

    def note(self, s):
        self.tail.append(f"{self.done:7d} {s}")

    def _expect(self, off, got, want, what):
        if got != want:
            i = _first_diff(got, want)
            self.fail(f"{what}: {len(got)} bytes read, {len(want)} expected; first difference "
                      f"at file offset {off + i}: got {got[i:i + 16].hex()} "
                      f"want {want[i:i + 16].hex()}")

    # -- the operations
    def _data(self, n):
        # recognisable: the op number and position, so a misplaced block shows
        tag = (self.done & 0xFF)
        return bytes((tag + i * 31 + (i >> 8)) & 0xFF or 1 for i in range(n))

    def op_write(self):
        size = len(self.model)
        # offsets inside, at, and beyond EOF (holes); lengths small to large
        off = self.rng.randrange(0, max(1, min(self.maxlen, size + size // 4 + 70000)))
        n = self.rng.choice((1, 7, 512, 4096, 5000, 65536, 70000, self.rng.randrange(1, 20000)))
        n = max(1, min(n, self.maxlen - off))
        data = self._data(n)
        self.note(f"write off={off} len={n} (size {size})")
        if os.pwrite(self.fd, data, off) != n:
            self.fail("short write")
        if off > size:
            self.model.extend(bytes(off - size))
        self.model[off:off + n] = data

    def op_write2(self):
        """A write through a second handle while the first stays open."""
        size = len(self.model)
        off = self.rng.randrange(0, min(self.maxlen - 1, size + 5000) + 1)
        n = max(1, min(self.rng.randrange(1, 10000), self.maxlen - off))
        data = self._data(n)
        self.note(f"write2 off={off} len={n} (size {size}, second handle)")
        fd = os.open(self.path, os.O_WRONLY)
        try:
            if os.pwrite(fd, data, off) != n:
                self.fail("short write")
        finally:
            os.close(fd)
        if off > size:
            self.model.extend(bytes(off - size))
        self.model[off:off + n] = data

    def op_append(self):
        n = self.rng.randrange(1, 9000)
        n = min(n, max(0, self.maxlen - len(self.model)))
        if n == 0:
            return self.op_truncate()
        data = self._data(n)
        self.note(f"append len={n} (size {len(self.model)})")
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        try:
            if os.write(fd, data) != n:
                self.fail("short append")
        finally:
            os.close(fd)
        self.model.extend(data)

    def op_read(self):
        size = len(self.model)
        off = self.rng.randrange(0, size + 100)
        n = self.rng.choice((1, 100, 4096, 65536, 70000, self.rng.randrange(1, 30000)))
        self.note(f"read off={off} len={n} (size {size})")
        got = os.pread(self.fd, n, off)
        self._expect(off, got, bytes(self.model[off:off + n]), "read")

    def op_readall(self):
        self.note(f"readall (size {len(self.model)})")
        with open(self.path, "rb") as f:
            got = f.read()
        self._expect(0, got, bytes(self.model), "whole-file read")

    def op_truncate(self):
        size = len(self.model)
        r = self.rng.random()
        if r < 0.1:
            new = 0
        elif r < 0.55:
            new = self.rng.randrange(0, size + 1)  # down
        else:
            new = self.rng.randrange(size, min(self.maxlen, size + 100000) + 1)  # up
        self.note(f"truncate {size} -> {new}")
        os.ftruncate(self.fd, new)
        if new < size:
            del self.model[new:]
        else:
            self.model.extend(bytes(new - size))

    def op_fsync(self):
        self.note("fsync")
        os.fsync(self.fd)

    def op_stat(self):
        st = os.fstat(self.fd)
        self.note(f"fstat size={st.st_size}")
        if st.st_size != len(self.model):
            self.fail(f"fstat size {st.st_size}, model {len(self.model)}")

    def op_reopen(self):
        self.note("close+reopen")
        os.close(self.fd)
        self.fd = -1
        self.fd = os.open(self.path, os.O_RDWR)
        st = os.stat(self.path)
        if st.st_size != len(self.model):
            self.fail(f"size after reopen {st.st_size}, model {len(self.model)}")

    def op_rename(self):
        other = 1 - self.name
        dst = os.path.join(self.dir, self.names[other])
        keep_open = self.rng.random() < 0.5
        self.note(f"rename {self.names[self.name]} -> {self.names[other]}"
                  f"{' (open)' if keep_open else ''}")
        if not keep_open:
            os.close(self.fd)
            self.fd = -1
        os.rename(self.path, dst)
        if os.path.exists(self.path):
            self.fail(f"{self.path} still exists after rename")
        self.path, self.name = dst, other
        if not keep_open:
            self.fd = os.open(self.path, os.O_RDWR)

    def step(self):
        getattr(self, "op_" + self.rng.choice(self._choices))()
        self.done += 1

    def run(self, ops, time_budget=None, progress_every=10000):
        t0 = time.monotonic()
        try:
            while self.done < ops:
                if time_budget is not None and time.monotonic() - t0 > time_budget:
                    break
                self.step()
                if progress_every and self.done % progress_every == 0:
                    print(f"fsx: {self.done} ops, {time.monotonic() - t0:.1f} s",
                          file=self.out, flush=True)
            self.op_readall()
        except OSError as e:
            self.fail(f"unexpected error {e!r}")
        dt = time.monotonic() - t0
        print(f"fsx: seed {self.seed}: {self.done} ops in {dt:.1f} s, final size "
              f"{len(self.model)}", file=self.out, flush=True)
        return dt

    def close(self):
        if self.fd >= 0:
            os.fsync(self.fd)
            os.close(self.fd)
            self.fd = -1


def check_file(path, model, seed):
    """After a remount: the file must equal the model."""
    with open(path, "rb") as f:
        got = f.read()
    if got != model:
        i = _first_diff(got, model)
        raise FsxError(f"fsx: after remount {path} has {len(got)} bytes, model {len(model)}; "
                       f"first difference at {i} (seed {seed})")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--ops", type=int, default=10000)
    ap.add_argument("--maxlen", type=int, default=300000)
    ap.add_argument("dir")
    a = ap.parse_args(argv)
    seed = a.seed or int.from_bytes(os.urandom(4), "little")
    ex = Fsx(a.dir, seed, a.maxlen)
    try:
        ex.run(a.ops)
    except FsxError as e:
        print(e, file=sys.stderr)
        return 1
    ex.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
