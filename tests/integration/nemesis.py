"""Nemesis harness: a 5-node quorumd cluster where every node has its own
address in its own network namespace, and the faults the reliability tests
inject into it.

Topology (needs CAP_NET_ADMIN; ``available()`` says whether it can run):

    root namespace: bridge qb<tag> 10.88.<s>.1/24  (clients run here)
       |-- veth qv<tag>_<i> == eth0 in netns qn<tag>_<i>, 10.88.<s>.<11+i>/24
    each quorumd runs inside its namespace (ip netns exec) on <addr>:7070

Faults, each one undone by ``heal_all()``:
  - partitions: every node's namespace holds an nftables table
    ``inet qfs_nemesis`` with a set of blocked peer addresses dropped on
    input and output, so a partition is a real packet drop on that node's
    link (TCP sees silence, not a reset). Shapes: halves (2/3), one node
    isolated, bridge (two halves that both see one middle node).
  - kill -9 and restart (same data directory, same address);
  - SIGSTOP / SIGCONT;
  - clock skew: every node runs under libfaketime with
    FAKETIME_TIMESTAMP_FILE; writing "+30s" into a node's file shifts its
    wall clock within a second, "+0" puts it back (monotonic time is not
    faked: timers keep working).

Invariants: every fault loop is bounded in count and in time; the cluster
object is a context manager whose exit heals everything, stops every node
it started by PID (SIGCONT, SIGTERM, SIGKILL after a grace period) and
deletes the namespaces, veths and bridge it created, also when the test
failed. Names carry the pytest process id, so runs never share them.

Threading: the Cluster methods are called from the test's main thread;
``ctl()`` (a quorumctl run) is safe from any thread.
"""
import json
import os
import random
import signal
import subprocess
import time

from conftest import port_open, sanitizer_env, wait_for
from test_cluster_node import quorumctl, quorumd

FAKETIME_LIBS = ("/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1",
                 "/usr/lib/faketime/libfaketimeMT.so.1")
PORT = 7070

# cluster secret of the running Cluster (nodes off loopback need one when
# the build has protected mode); quorumctl gets it through the environment
_SECRET = {"file": None}

FAST_GOSSIP = ["gossip_interval=200ms", "gossip_suspect_after=1s", "gossip_down_after=2s"]


def _run(args, check=True, **kw):
    r = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30, **kw)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: {r.stderr.decode(errors='replace').strip()}")
    return r


def faketime_lib():
    for p in FAKETIME_LIBS:
        if os.path.exists(p):
            return p
    return None


def available():
    """(True, "") when namespaces, veths and nftables work here; else
    (False, why) so a test can skip with the reason."""
    if os.geteuid() != 0:
        return False, "needs root (network namespaces, nftables)"
    for tool in ("ip", "nft"):
        if _run(["sh", "-c", f"command -v {tool}"], check=False).returncode != 0:
            return False, f"{tool} not installed"
    name = f"qnprobe{os.getpid()}"
    r = _run(["ip", "netns", "add", name], check=False)
    if r.returncode != 0:
        return False, "ip netns add failed: " + r.stderr.decode(errors="replace").strip()
    try:
        r = _run(["ip", "netns", "exec", name, "nft", "add", "table", "inet", "qfs_nemesis"],
                 check=False)
        if r.returncode != 0:
            return False, "nft in a namespace failed: " + r.stderr.decode(errors="replace")
    finally:
        _run(["ip", "netns", "del", name], check=False)
    if faketime_lib() is None:
        return False, "libfaketime not installed"
    return True, ""


def ctl(addr, *args, timeout_s="3s", stdin=None):
    """quorumctl against addr; returns (exit code, stdout str, stderr str)."""
    cmd = [quorumctl(), "--node", addr, "--timeout", timeout_s] + [str(a) for a in args]
    env = sanitizer_env()
    if _SECRET["file"]:
        env["QUORUM_SECRET_FILE"] = _SECRET["file"]
    try:
        r = subprocess.run(cmd, input=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           env=env, timeout=60)
    except subprocess.TimeoutExpired:
        return 124, "", "quorumctl did not finish in 60s"
    return r.returncode, r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace")


def get_json(addr, key, *extra):
    rc, out, err = ctl(addr, "get", key, "--json", *extra)
    doc = None
    if out.strip():
        try:
            doc = json.loads(out)
        except ValueError:
            doc = None
    return rc, doc, err


class Cluster:
    """n quorumd nodes, one per network namespace (see the module text)."""

    def __init__(self, procs, tmp, n=5, opts=(), log=print):
        self.procs = procs
        self.tmp = str(tmp)
        self.n = n
        self.opts = FAST_GOSSIP + ["request_timeout=2s"] + list(opts)
        self.log = log
        pid = os.getpid()
        self.tag = str(pid)
        s = pid % 250 + 1
        self.net = f"10.88.{s}"
        self.bridge = f"qb{self.tag}"
        self.ids = [f"q{i + 1}" for i in range(n)]
        self.ns = [f"qn{self.tag}_{i}" for i in range(n)]
        self.ips = [f"{self.net}.{11 + i}" for i in range(n)]
        self.proc = [None] * n
        self.gen = [0] * n
        self.paused = set()
        self.blocked = [set() for _ in range(n)]
        self.skew = ["+0"] * n
        self.made_ns = []
        self.made_bridge = False
        self.events = []          # (monotonic time, text) of every fault
        self.status_err = [""] * n  # why the last status of each node was not all-up
        self.counts = {}

    # -------------------------------------------------------------- setup
    def __enter__(self):
        try:
            self._secret_up()
            self._net_up()
        except BaseException:
            self._net_down()
            raise
        return self

    def __exit__(self, *exc):
        try:
            self.heal_all()
        finally:
            self.stop_all()
            self._net_down()
            _SECRET["file"] = None
        return False

    def _secret_up(self):
        """Builds with protected mode refuse a non-loopback listen address
        without a cluster secret: make one if quorumctl can."""
        r = _run([quorumctl(), "help"], check=False, env=sanitizer_env())
        if b"init-secret" not in r.stdout:
            return
        path = os.path.join(self.tmp, "cluster.key")
        _run([quorumctl(), "init-secret", path], env=sanitizer_env())
        self.opts.append(f"secret_file={path}")
        _SECRET["file"] = path

    def _net_up(self):
        _run(["ip", "link", "del", self.bridge], check=False)
        _run(["ip", "link", "add", self.bridge, "type", "bridge"])
        self.made_bridge = True
        _run(["ip", "addr", "add", f"{self.net}.1/24", "dev", self.bridge])
        _run(["ip", "link", "set", self.bridge, "up"])
        for i in range(self.n):
            ns = self.ns[i]
            _run(["ip", "netns", "del", ns], check=False)
            _run(["ip", "netns", "add", ns])
            self.made_ns.append(ns)
            host, peer = f"qv{self.tag}_{i}", f"qp{self.tag}_{i}"
            _run(["ip", "link", "del", host], check=False)
            _run(["ip", "link", "add", host, "type", "veth", "peer", "name", peer])
            _run(["ip", "link", "set", peer, "netns", ns])
            _run(["ip", "link", "set", host, "master", self.bridge])
            _run(["ip", "link", "set", host, "up"])
            ex = ["ip", "netns", "exec", ns]
            _run(ex + ["ip", "link", "set", "lo", "up"])
            _run(ex + ["ip", "link", "set", peer, "name", "eth0"])
            _run(ex + ["ip", "addr", "add", f"{self.ips[i]}/24", "dev", "eth0"])
            _run(ex + ["ip", "link", "set", "eth0", "up"])
            nft = ("table inet qfs_nemesis {\n"
                   " set blocked { type ipv4_addr; }\n"
                   " chain in { type filter hook input priority 0; policy accept;"
                   " ip saddr @blocked drop; }\n"
                   " chain out { type filter hook output priority 0; policy accept;"
                   " ip daddr @blocked drop; }\n"
                   "}\n")
            _run(ex + ["nft", "-f", "-"], input=nft.encode())
            with open(self.skew_file(i), "w") as f:
                f.write("+0\n")

    def _net_down(self):
        for ns in self.made_ns:
            _run(["ip", "netns", "del", ns], check=False)
        self.made_ns = []
        for i in range(self.n):
            _run(["ip", "link", "del", f"qv{self.tag}_{i}"], check=False)
        if self.made_bridge:
            _run(["ip", "link", "del", self.bridge], check=False)
            self.made_bridge = False

    # -------------------------------------------------------------- nodes
    def addr(self, i):
        return f"{self.ips[i]}:{PORT}"

    def data(self, i):
        return os.path.join(self.tmp, f"data-{self.ids[i]}")

    def skew_file(self, i):
        return os.path.join(self.tmp, f"faketime-{self.ids[i]}")

    def peers(self):
        return ",".join(f"{self.ids[j]}@{self.addr(j)}" for j in range(self.n))

    def start(self, i, wait=True):
        self.gen[i] += 1
        env = sanitizer_env()
        env["ASAN_OPTIONS"] = env.get("ASAN_OPTIONS", "") + ":verify_asan_link_order=0"
        env["LD_PRELOAD"] = faketime_lib()
        env["FAKETIME_TIMESTAMP_FILE"] = self.skew_file(i)
        env["FAKETIME_CACHE_DURATION"] = "1"
        env["FAKETIME_DONT_FAKE_MONOTONIC"] = "1"
        args = ["ip", "netns", "exec", self.ns[i], quorumd(), "--data", self.data(i),
                "--listen", self.addr(i), "--node-id", self.ids[i], "--peers", self.peers()]
        for o in self.opts:
            args += ["-o", o]
        p = self.procs.start(f"quorumd-{self.ids[i]}-{self.gen[i]}", args, env=env)
        self.proc[i] = p
        if wait:
            wait_for(lambda: port_open(PORT, self.ips[i]) or not p.alive(), timeout=60,
                     what=f"{self.ids[i]} listening")
            assert p.alive(), p.log()[-3000:]
        return p

    def start_all(self):
        for i in range(self.n):
            self.start(i)
        self.wait_all_up()
        return self

    def alive(self, i):
        return self.proc[i] is not None and self.proc[i].alive()

    def status(self, i):
        """Node i's status, or None (the reason kept in self.status_err[i])."""
        rc, out, err = ctl(self.addr(i), "status", "--json", timeout_s="2s")
        if rc != 0:
            self.status_err[i] = f"status rc={rc}: {err.strip()[:200]}"
            return None
        try:
            return json.loads(out)
        except ValueError as e:
            self.status_err[i] = f"status is not JSON: {e}"
            return None

    def sees_all_up(self, i):
        st = self.status(i)
        if st is None:
            return False
        states = {m["id"]: m["state"] for m in st["members"]}
        self.status_err[i] = f"member states {states}"
        return all(states.get(nid) == "up" for nid in self.ids)

    def wait_all_up(self, timeout=60):
        """Every node sees every member up, each within timeout seconds; a
        failure says what the node's last status answer was."""
        for i in range(self.n):
            deadline = time.monotonic() + timeout
            while not self.sees_all_up(i):
                if time.monotonic() > deadline:
                    raise AssertionError(
                        f"{self.ids[i]} does not see every member up after {timeout} s "
                        f"(alive={self.alive(i)}, paused={i in self.paused}, "
                        f"skew={self.skew[i]}): {self.status_err[i]}")
                time.sleep(0.2)

    def stop_all(self):
        for i in range(self.n):
            p = self.proc[i]
            if p is None or not p.alive():
                continue
            try:
                os.kill(p.pid, signal.SIGCONT)
                os.kill(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
            try:
                p.popen.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.kill(p.pid, signal.SIGKILL)
                p.popen.wait(timeout=30)

    # -------------------------------------------------------------- faults
    def _note(self, kind, text):
        self.counts[kind] = self.counts.get(kind, 0) + 1
        self.events.append((time.monotonic(), f"{kind}: {text}"))
        self.log(f"nemesis {kind}: {text}")

    def _apply_blocks(self):
        for i in range(self.n):
            ex = ["ip", "netns", "exec", self.ns[i], "nft"]
            _run(ex + ["flush", "set", "inet", "qfs_nemesis", "blocked"])
            if self.blocked[i]:
                elems = ", ".join(self.ips[j] for j in sorted(self.blocked[i]))
                _run(ex + ["add", "element", "inet", "qfs_nemesis", "blocked",
                           "{ " + elems + " }"])

    def partition(self, groups, kind="partition"):
        """groups: list of lists of node indexes; nodes in different groups
        cannot talk. A node may be in several groups (a bridge)."""
        member_of = [set() for _ in range(self.n)]
        for g, nodes in enumerate(groups):
            for i in nodes:
                member_of[i].add(g)
        for i in range(self.n):
            self.blocked[i] = {j for j in range(self.n)
                               if j != i and not (member_of[i] & member_of[j])}
        self._apply_blocks()
        self._note(kind, " | ".join(",".join(self.ids[i] for i in g) for g in groups))

    def partition_random(self, rng):
        order = list(range(self.n))
        rng.shuffle(order)
        shape = rng.choice(["halves", "isolate", "bridge"])
        if shape == "halves":
            cut = self.n // 2
            self.partition([order[:cut], order[cut:]], "partition-halves")
        elif shape == "isolate":
            self.partition([order[:1], order[1:]], "partition-isolate")
        else:
            mid = order[0]
            rest = order[1:]
            cut = len(rest) // 2
            self.partition([rest[:cut] + [mid], rest[cut:] + [mid]], "partition-bridge")

    def can_connect(self, i, j, timeout_s=1.0):
        """Whether node i's namespace can open a TCP connection to node j."""
        code = ("import socket,sys\n"
                "try:\n"
                f"    socket.create_connection(('{self.ips[j]}', {PORT}), timeout={timeout_s})\n"
                "except OSError:\n"
                "    sys.exit(1)\n")
        r = _run(["ip", "netns", "exec", self.ns[i], "python3", "-c", code], check=False)
        return r.returncode == 0

    def heal_net(self):
        if any(self.blocked):
            self.blocked = [set() for _ in range(self.n)]
            self._apply_blocks()
            self._note("heal", "network")

    def kill9(self, i):
        self._note("kill9", self.ids[i])
        self.proc[i].kill9()
        self.paused.discard(i)

    def pause(self, i):
        self._note("pause", self.ids[i])
        self.proc[i].signal(signal.SIGSTOP)
        self.paused.add(i)

    def resume(self, i):
        if i in self.paused:
            self.proc[i].signal(signal.SIGCONT)
            self.paused.discard(i)

    def set_skew(self, i, spec):
        with open(self.skew_file(i), "w") as f:
            f.write(spec + "\n")
        self.skew[i] = spec
        if spec != "+0":
            self._note("clock-skew", f"{self.ids[i]} {spec}")

    def heal_all(self):
        """Undoes every fault: network, pauses, clocks, dead nodes."""
        for i in list(self.paused):
            self.resume(i)
        if any(self.blocked):
            try:
                self.heal_net()
            except Exception as e:  # noqa: BLE001 - namespaces may be gone already
                self.log(f"heal_net: {e}")
        for i in range(self.n):
            if self.skew[i] != "+0":
                self.set_skew(i, "+0")

    def restart_dead(self):
        for i in range(self.n):
            if self.proc[i] is not None and not self.proc[i].alive():
                self.start(i)

    # ------------------------------------------------------------ schedule
    def run_faults(self, rng, duration_s, max_faults, hold=(2.0, 5.0), quiet=(1.0, 2.0),
                   kinds=("partition", "kill9", "pause", "clock-skew"), stop=None,
                   min_faults=3):
        """Injects random faults one at a time for duration_s (but at least
        min_faults and at most max_faults), healing each before the next;
        returns the count."""
        deadline = time.monotonic() + duration_s
        done = 0
        try:
            while done < max_faults and (time.monotonic() < deadline or done < min_faults):
                if stop is not None and stop.is_set():
                    break
                kind = rng.choice(kinds)
                victim = rng.randrange(self.n)
                if kind == "partition":
                    self.partition_random(rng)
                elif kind == "kill9":
                    self.kill9(victim)
                elif kind == "pause":
                    self.pause(victim)
                else:
                    self.set_skew(victim, rng.choice(["+30s", "-45s", "+300s", "-10s"]))
                done += 1
                time.sleep(rng.uniform(*hold))
                if kind == "partition":
                    self.heal_net()
                elif kind == "kill9":
                    self.start(victim)
                elif kind == "pause":
                    self.resume(victim)
                else:
                    self.set_skew(victim, "+0")
                time.sleep(rng.uniform(*quiet))
        finally:
            self.heal_all()
            self.restart_dead()
        return done


def make_rng(seed=None):
    if seed is None:
        seed = int(os.environ.get("QFS_NEMESIS_SEED", "0")) or random.randrange(1, 1 << 30)
    return seed, random.Random(seed)
