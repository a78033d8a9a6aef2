"""Shared fixtures for the integration tests: real processes, real ports,
real mounts, always cleaned up.

- ``procs``: starts programs with their output in a per-test log file, keeps
  their PIDs, and at teardown stops every one still running (SIGTERM, then
  SIGKILL after a grace period) and unmounts every mount it made. Then it
  scans every log for sanitizer reports and fails the test on one.
- ``free_port()``: a TCP port on 127.0.0.1 nothing listens on right now.
- ``bin_path(name)``: a program from the build tree (QFS_BUILDDIR).
"""
import os
import random
import re
import signal
import socket
import subprocess
import time

import pytest

BUILDDIR = os.environ.get("QFS_BUILDDIR", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
SRCDIR = os.environ.get("QFS_SRCDIR", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))

SANITIZER_PATTERNS = re.compile(
    r"ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:|"
    r"SUMMARY: UndefinedBehaviorSanitizer|SUMMARY: AddressSanitizer|ThreadSanitizer")


def bin_path(name):
    for sub in ("src", "fuse", "."):
        p = os.path.join(BUILDDIR, sub, name)
        if os.path.exists(p):
            return p
    raise FileNotFoundError(f"{name} not built in {BUILDDIR}")


def _ephemeral_range():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            lo, hi = (int(x) for x in f.read().split())
        return lo, hi
    except (OSError, ValueError):
        return 32768, 60999


def free_port(host="127.0.0.1"):
    """A port nothing listens on, chosen below the kernel's ephemeral range:
    a port the kernel handed out (bind to 0) can be taken again as the local
    port of an outgoing connection (the nodes' own connections to each
    other) before the daemon that was to listen on it binds it."""
    lo, _ = _ephemeral_range()
    top = lo if lo > 11000 else 65536
    for _ in range(200):
        port = random.randrange(10000, top)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((host, port))
            except OSError:
                continue
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_for(pred, timeout=30.0, interval=0.05, what="condition"):
    """Polls pred() until it returns truthy; fails the test after timeout."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = pred()
            if last:
                return last
        except Exception as e:  # noqa: BLE001 - keep polling, report at the end
            last = e
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def port_open(port, host="127.0.0.1"):
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


def sanitizer_env():
    env = dict(os.environ)
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=1")
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
    return env


class Proc:
    def __init__(self, name, popen, log_path):
        self.name = name
        self.popen = popen
        self.log_path = log_path

    @property
    def pid(self):
        return self.popen.pid

    def alive(self):
        return self.popen.poll() is None

    def log(self):
        with open(self.log_path, "r", errors="replace") as f:
            return f.read()

    def signal(self, sig):
        if self.alive():
            os.kill(self.popen.pid, sig)

    def kill9(self):
        self.signal(signal.SIGKILL)
        self.popen.wait(timeout=30)

    def stop(self, timeout=30):
        """SIGTERM and wait; returns the exit code."""
        if self.alive():
            os.kill(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.popen.pid, signal.SIGKILL)
                self.popen.wait(timeout=30)
                pytest.fail(f"{self.name} (pid {self.pid}) ignored SIGTERM for {timeout}s")
        return self.popen.returncode


class Procs:
    def __init__(self, tmp_path):
        self.tmp = tmp_path
        self.all = []
        self.mounts = []
        self.expected_sanitizer = set()

    def start(self, name, args, env=None, cwd=None):
        log_path = os.path.join(self.tmp, f"{name}.log")
        logf = open(log_path, "ab")
        p = subprocess.Popen(args, stdout=logf, stderr=subprocess.STDOUT,
                             env=env or sanitizer_env(), cwd=cwd,
                             start_new_session=True)
        logf.close()
        proc = Proc(name, p, log_path)
        self.all.append(proc)
        return proc

    def add_mount(self, path):
        self.mounts.append(path)

    def cleanup(self):
        for m in reversed(self.mounts):
            if os.path.ismount(m):
                subprocess.run(["fusermount3", "-u", "-z", m], check=False,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for p in self.all:
            if p.alive():
                try:
                    os.kill(p.pid, signal.SIGCONT)
                    os.kill(p.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + 20
        for p in self.all:
            while p.alive() and time.monotonic() < deadline:
                time.sleep(0.05)
            if p.alive():
                os.kill(p.pid, signal.SIGKILL)
                p.popen.wait(timeout=30)

    def sanitizer_reports(self):
        found = []
        for p in self.all:
            if p.name in self.expected_sanitizer:
                continue
            try:
                text = p.log()
            except OSError:
                continue
            m = SANITIZER_PATTERNS.search(text)
            if m:
                start = max(0, m.start() - 200)
                found.append(f"{p.name} (pid {p.pid}): {text[start:m.start() + 2000]}")
        return found


@pytest.fixture
def procs(tmp_path):
    ps = Procs(str(tmp_path))
    try:
        yield ps
    finally:
        ps.cleanup()
    reports = ps.sanitizer_reports()
    if reports:
        pytest.fail("sanitizer report in daemon log:\n" + "\n\n".join(reports))
