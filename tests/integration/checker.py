"""Sibling-aware set checker for the nemesis tests (Jepsen's set checker in
spirit, adapted to a store that keeps concurrent writes as siblings).

Clients (``Workload``, a few threads) loop over a small key set: read the
key (get --json, R as configured), then write a unique value with the
context they read, or now and then delete with it. Every operation is
recorded with the values its read returned, so the history says which
values each write causally replaced.

Outcomes of a write: ``ok`` (acknowledged), ``unknown`` (no quorum or
timeout: it may or may not have been applied), ``failed`` (the node
refused the connection: nothing was written).

After the faults are healed and the cluster converged, ``check()`` reads
every key with R=N (the merge of all primaries) and every node's own copy
(--replica-only), and classifies:

- an acknowledged write is *safe* if its value is a live sibling of the
  final state, or if it was observed (its value was among the siblings
  read) by a later write or delete that is itself safe, transitively; an
  acknowledged delete is safe by construction (its effect is absence; the
  resurrection check below covers it);
- *lost*: acknowledged writes that are not safe;
- *unexpected*: final siblings no client ever wrote, or whose write
  failed outright;
- *revived*: final siblings that an acknowledged write had already
  replaced (their value was in that write's read);
- *resurrected*: final siblings that an acknowledged delete had replaced;
- *recovered*: unknown-outcome writes whose value was seen (final state or
  any read);
- *max_siblings*: most live siblings of one key in the final state;
- *converged*: for every key, at least N nodes hold a copy identical
  (same siblings: node, counter, deleted, value) to the R=N read. Copies
  kept by fallback nodes of hinted writes may be older; they are counted
  in ``stale_fallback_copies`` and do not fail the check;
- *roots agree* (``roots_agreement``, driven by ``converge_roots``): every
  node's status lists the Merkle root of each arc it replicates; for every
  arc, the N replicas report ready trees with one depth and one root. A
  fallback's older copy of a foreign key is in no tree of its own, so it
  does not count, but a stale primary hiding behind a matching fallback
  does. ``converge_roots`` allows a bounded number of repair rounds (and
  time) for anti-entropy to finish before it judges.

Pass: lost = unexpected = revived = resurrected = 0, converged, and the
roots agree.

Threading: Workload runs its own threads; record lists are appended under
a lock; check() runs after the workload stopped.
"""
import random
import threading
import time

from nemesis import ctl, get_json


class Op:
    __slots__ = ("client", "seq", "kind", "key", "value", "read", "status", "node", "t0", "t1")

    def __init__(self, client, seq, kind, key, value, read, node):
        self.client = client
        self.seq = seq
        self.kind = kind          # "write" or "delete"
        self.key = key
        self.value = value        # unique value (delete: None)
        self.read = read          # live sibling values the read returned
        self.node = node
        self.status = None        # "ok", "unknown", "failed"
        self.t0 = time.monotonic()
        self.t1 = None


def classify_rc(rc, err):
    if rc == 0:
        return "ok"
    if rc == 4 and ("ECONNREFUSED" in err or "refused" in err.lower()):
        return "failed"
    return "unknown"


class Workload:
    def __init__(self, addrs, keys, clients=4, r=2, w=2, delete_ratio=0.08, seed=1,
                 max_ops=100000):
        self.addrs = list(addrs)
        self.keys = list(keys)
        self.nclients = clients
        self.r = r
        self.w = w
        self.delete_ratio = delete_ratio
        self.seed = seed
        self.max_ops = max_ops
        self.ops = []
        self.reads = {"ok": 0, "notfound": 0, "failed": 0}
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.threads = []

    def start(self):
        for c in range(self.nclients):
            t = threading.Thread(target=self._client, args=(c,), daemon=True)
            t.start()
            self.threads.append(t)

    def finish(self, timeout=120):
        self.stop.set()
        for t in self.threads:
            t.join(timeout)
        assert not any(t.is_alive() for t in self.threads), "client threads did not stop"

    def _client(self, c):
        rng = random.Random(self.seed * 1000 + c)
        seq = 0
        while not self.stop.is_set() and seq < self.max_ops:
            key = rng.choice(self.keys)
            node = rng.choice(self.addrs)
            rc, doc, err = get_json(node, key, "--r", self.r)
            if rc not in (0, 1) or doc is None:
                with self.lock:
                    self.reads["failed"] += 1
                time.sleep(0.05)
                continue
            read = sorted(s["value"] for s in doc["siblings"] if not s["deleted"])
            ctx = doc.get("context", "")
            with self.lock:
                self.reads["ok" if rc == 0 else "notfound"] += 1
            seq += 1
            ctxargs = ["--context", ctx] if ctx else []
            if read and rng.random() < self.delete_ratio:
                op = Op(c, seq, "delete", key, None, read, node)
                with self.lock:
                    self.ops.append(op)
                rc, _, err = ctl(node, "delete", key, *ctxargs, "--w", self.w)
            else:
                value = f"c{c}-{seq}"
                op = Op(c, seq, "write", key, value, read, node)
                with self.lock:
                    self.ops.append(op)
                rc, _, err = ctl(node, "put", key, value, *ctxargs, "--w", self.w)
            op.status = classify_rc(rc, err)
            op.t1 = time.monotonic()


def sib_tuple(s):
    return (s["node"], s["counter"], bool(s["deleted"]), s.get("value", s.get("value_base64")))


def final_state(addrs, keys, n, log=print, attempts=20):
    """R=N read of every key (retried: the last read repair may still be
    travelling); returns {key: doc or None}."""
    out = {}
    for key in keys:
        doc = None
        for _ in range(attempts):
            rc, d, err = get_json(addrs[0], key, "--r", n, "--n", n)
            if rc in (0, 1) and d is not None:
                doc = d
                break
            if rc == 1 and d is None:
                doc = {"siblings": [], "found": False}
                break
            log(f"final read of {key}: rc={rc} {err.strip()}")
            time.sleep(0.5)
        out[key] = doc
    return out


def replica_copies(addrs, key):
    """{addr: set of sibling tuples} for every node that holds a copy."""
    out = {}
    for a in addrs:
        rc, d, _ = get_json(a, key, "--replica-only")
        if d is not None and (rc == 0 or d.get("siblings")):
            out[a] = frozenset(sib_tuple(s) for s in d["siblings"])
    return out


def check(ops, addrs, keys, n, log=print):
    """Classifies the history against the converged cluster; returns the
    result dict (see the module text)."""
    final = final_state(addrs, keys, n, log=log)
    res = {"attempted": 0, "acknowledged": 0, "unknown": 0, "failed": 0, "deletes_acked": 0,
           "lost": [], "unexpected": [], "revived": [], "resurrected": [], "recovered": 0,
           "max_siblings": 0, "converged": True, "not_converged": [],
           "stale_fallback_copies": 0, "final_unreadable": []}
    writes = {}           # value -> op
    for op in ops:
        res["attempted"] += 1
        if op.status is None:
            op.status = "unknown"
        if op.status == "ok":
            res["acknowledged"] += 1
            if op.kind == "delete":
                res["deletes_acked"] += 1
        elif op.status == "unknown":
            res["unknown"] += 1
        else:
            res["failed"] += 1
        if op.kind == "write":
            writes[op.value] = op

    present = {}          # key -> set of live values
    for key in keys:
        doc = final[key]
        if doc is None:
            res["final_unreadable"].append(key)
            present[key] = set()
            continue
        live = {s["value"] for s in doc["siblings"] if not s["deleted"]}
        present[key] = live
        res["max_siblings"] = max(res["max_siblings"], len(live))

    # who replaced what: value -> ops (same key) whose read held it
    readers = {}
    seen = set()
    for op in ops:
        for v in op.read:
            readers.setdefault(v, []).append(op)
            seen.add(v)

    # safe set: start from present values and acknowledged deletes, walk
    # back through reads
    safe_ops = set()
    stack = []
    for key in keys:
        for v in present[key]:
            if v in writes and writes[v].key == key:
                stack.append(writes[v])
    for op in ops:
        if op.kind == "delete" and op.status == "ok":
            stack.append(op)
    while stack:
        op = stack.pop()
        if id(op) in safe_ops:
            continue
        safe_ops.add(id(op))
        for v in op.read:
            w = writes.get(v)
            if w is not None and w.key == op.key:
                stack.append(w)

    for op in ops:
        if op.kind == "write" and op.status == "ok" and id(op) not in safe_ops:
            res["lost"].append((op.key, op.value))
        if op.kind == "write" and op.status == "unknown" and (
                op.value in seen or op.value in present[op.key]):
            res["recovered"] += 1

    for key in keys:
        for v in present[key]:
            w = writes.get(v)
            if w is None or w.key != key or w.status == "failed":
                res["unexpected"].append((key, v))
                continue
            for r in readers.get(v, []):
                if r.key != key or r.status != "ok":
                    continue
                if r.kind == "delete":
                    res["resurrected"].append((key, v))
                else:
                    res["revived"].append((key, v, r.value))
                break

    for key in keys:
        doc = final[key]
        if doc is None:
            res["converged"] = False
            res["not_converged"].append((key, "unreadable"))
            continue
        want = frozenset(sib_tuple(s) for s in doc["siblings"])
        copies = replica_copies(addrs, key)
        same = sum(1 for c in copies.values() if c == want)
        if not want:
            continue
        if same < n:
            res["converged"] = False
            res["not_converged"].append((key, f"{same} of {len(copies)} copies match"))
        res["stale_fallback_copies"] += len(copies) - same
    res["ok"] = (not res["lost"] and not res["unexpected"] and not res["revived"]
                 and not res["resurrected"] and res["converged"])
    return res


def merkle_roots(statuses):
    """Per-arc Merkle roots of every replica, from each node's status
    (``quorumctl status --json``: aae.roots lists the arcs the node
    replicates with their tree's depth, readiness, key count and root).
    statuses: {node name: status dict or None}. Returns
    {(start, end): {node: (depth, ready, keys, root)}} and the nodes whose
    status could not be read."""
    arcs, unreadable = {}, []
    for node, st in statuses.items():
        if st is None or "aae" not in st:
            unreadable.append(node)
            continue
        for a in st["aae"].get("roots", []):
            arcs.setdefault((a["start"], a["end"]), {})[node] = (
                a["depth"], a["ready"], a["keys"], a["root"])
    return arcs, unreadable


def roots_agreement(statuses, n):
    """Whether all replicas' Merkle roots agree, arc by arc. An arc agrees
    when exactly n nodes report it, every one of them has a ready tree, and
    all have the same depth and root. Returns a dict: arcs, agreeing,
    disagreeing (list of (start, end, {node: (depth, ready, keys, root)})),
    not_ready (arcs where some tree is still building), wrong_count (arcs
    not reported by exactly n nodes: the nodes' ring views differ),
    unreadable (nodes without a status), keys (keys in the trees, the
    largest count among each arc's replicas, summed over arcs) and agree
    (all of it holds)."""
    arcs, unreadable = merkle_roots(statuses)
    out = {"arcs": len(arcs), "agreeing": 0, "disagreeing": [], "not_ready": [],
           "wrong_count": [], "unreadable": unreadable, "keys": 0}
    for (start, end), reps in sorted(arcs.items()):
        out["keys"] += max(r[2] for r in reps.values())
        if len(reps) != n:
            out["wrong_count"].append((start, end, sorted(reps)))
            continue
        if not all(r[1] for r in reps.values()):
            out["not_ready"].append((start, end, sorted(k for k, r in reps.items() if not r[1])))
            continue
        if len({(r[0], r[3]) for r in reps.values()}) == 1:
            out["agreeing"] += 1
        else:
            out["disagreeing"].append((start, end, reps))
    out["agree"] = (out["arcs"] > 0 and not out["disagreeing"] and not out["not_ready"]
                    and not out["wrong_count"] and not out["unreadable"])
    return out


def converge_roots(status_fn, repair_fn, n, rounds=6, timeout=300, settle=3.0, log=print):
    """Reads every node's roots (status_fn() -> {node: status or None})
    until they agree; between reads runs one repair round (repair_fn(), or
    just waits when it is None) and lets it settle. Bounded by rounds and by
    timeout seconds. Returns (the last roots_agreement, repair rounds run)."""
    deadline = time.monotonic() + timeout
    done = 0
    while True:
        ag = roots_agreement(status_fn(), n)
        log(f"roots after {done} repair rounds: {ag['agreeing']} of {ag['arcs']} arcs agree, "
            f"{len(ag['disagreeing'])} differ, {len(ag['not_ready'])} not ready, "
            f"{len(ag['wrong_count'])} with a replica count other than {n}, "
            f"unreadable {ag['unreadable']}")
        if ag["agree"] or done >= rounds or time.monotonic() > deadline:
            return ag, done
        if ag["not_ready"] and not ag["disagreeing"]:
            time.sleep(settle)          # trees still building: wait, no repair
            if time.monotonic() > deadline:
                return roots_agreement(status_fn(), n), done
            continue
        if repair_fn is not None:
            repair_fn()
        done += 1
        time.sleep(settle)


def summary(res):
    keys = ("attempted", "acknowledged", "unknown", "failed", "deletes_acked", "recovered",
            "max_siblings", "converged", "stale_fallback_copies")
    parts = [f"{k}={res[k]}" for k in keys]
    for k in ("lost", "unexpected", "revived", "resurrected", "not_converged",
              "final_unreadable"):
        parts.append(f"{k}={len(res[k])}")
    if "roots" in res:
        r = res["roots"]
        parts.append(f"roots_agree={r['agree']} arcs={r['arcs']} tree_keys={r['keys']} "
                     f"agreeing={r['agreeing']} "
                     f"disagreeing={len(r['disagreeing'])} not_ready={len(r['not_ready'])} "
                     f"repair_rounds={res.get('root_rounds')}")
    return " ".join(parts)
