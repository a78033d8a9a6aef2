"""Metrics endpoint and `quorumctl ring` against real quorumd processes: the
Prometheus text is scraped with urllib and its counters move with puts and
gets; other paths get 404, malformed requests 400; a client that connects
and sends nothing does not stall scrapes; ring ownership adds up."""
import json
import re
import socket
import subprocess
import time
import urllib.error
import urllib.request

from conftest import free_port, sanitizer_env, wait_for
from test_cluster_node import Cluster, ctl, quorumctl

LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$')


def scrape(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = r.read().decode()
    out = {}
    for ln in text.splitlines():
        if not ln or ln.startswith("#"):
            continue
        m = LINE.match(ln)
        assert m, f"not a Prometheus sample line: {ln!r}"
        out[m.group(1) + (m.group(2) or "")] = float(m.group(3))
    return out


def raw_http(port, data, timeout=8.0):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(data)
    s.settimeout(timeout)
    got = b""
    try:
        while True:
            d = s.recv(65536)
            if not d:
                break
            got += d
    except socket.timeout:
        pass
    s.close()
    return got


def test_metrics_scrape_counts_requests(procs, tmp_path):
    mport = free_port()
    c = Cluster(procs, tmp_path, n=1, opts=[f"metrics_listen=127.0.0.1:{mport}"]).start_all()
    a0 = c.addr(0)
    wait_for(lambda: scrape(mport), timeout=20, what="metrics endpoint")
    before = scrape(mport)
    for i in range(5):
        assert ctl(a0, "put", f"k{i}", "v").returncode == 0
    for i in range(3):
        assert ctl(a0, "get", f"k{i}").returncode == 0
    assert ctl(a0, "get", "absent").returncode == 1
    tok = json.loads(ctl(a0, "get", "k0", "--json").stdout)["context"]
    assert ctl(a0, "delete", "k0", "--context", tok).returncode == 0
    after = scrape(mport)

    def d(name):
        return after.get(name, 0) - before.get(name, 0)

    assert d('quorum_requests_total{op="kv_put"}') == 5
    assert d('quorum_requests_total{op="kv_get"}') == 5  # 3 + absent + the --json get
    assert d('quorum_requests_total{op="kv_delete"}') == 1
    assert d('quorum_request_errors_total{op="kv_get"}') == 0  # not-found is no error
    assert d('quorum_get_siblings_total{siblings="1"}') == 4
    assert d('quorum_get_siblings_total{siblings="0"}') == 1
    assert d('quorum_request_duration_seconds_count{op="kv_put"}') == 5
    assert after['quorum_request_duration_seconds_bucket{op="kv_put",le="+Inf"}'] == \
        after['quorum_request_duration_seconds_count{op="kv_put"}']
    # buckets are cumulative
    prev = -1
    for k in sorted((k for k in after if k.startswith('quorum_request_duration_seconds_bucket{op="kv_get"')),
                    key=lambda k: float("inf") if "+Inf" in k else float(re.search(r'le="([^"]+)"', k).group(1))):
        assert after[k] >= prev
        prev = after[k]
    assert after['quorum_request_duration_seconds_sum{op="kv_put"}'] > 0
    assert d("quorum_coord_puts_total") == 6  # puts and the delete
    assert d("quorum_coord_gets_total") == 5
    assert after["quorum_storage_disk_bytes"] > 0
    assert after['quorum_gossip_members{state="alive"}'] >= 1
    assert after["quorum_hints"] == 0
    assert after["quorum_auth_enabled"] == 0
    # status fields appear as gauges too (subsystems that add to the status)
    assert after["quorum_status_ops_puts"] >= 6
    assert "quorum_status_storage_tables" in after
    assert after["quorum_metrics_scrapes_total"] >= 2

    # two blind writes to one key make two siblings; a get counts them
    assert ctl(a0, "put", "sib", "a").returncode == 0
    assert ctl(a0, "put", "sib", "b").returncode == 0
    s1 = scrape(mport)
    assert ctl(a0, "get", "sib").returncode == 0
    s2 = scrape(mport)
    assert s2['quorum_get_siblings_total{siblings="2"}'] - \
        s1.get('quorum_get_siblings_total{siblings="2"}', 0) == 1

    # status shows where metrics are served
    r = ctl(a0, "--json", "status")
    assert r.returncode == 0
    doc = json.loads(r.stdout)
    assert doc["metrics"]["listen"] == f"127.0.0.1:{mport}"


def test_metrics_http_edge_cases(procs, tmp_path):
    mport = free_port()
    c = Cluster(procs, tmp_path, n=1, opts=[f"metrics_listen=127.0.0.1:{mport}"]).start_all()
    wait_for(lambda: scrape(mport), timeout=20, what="metrics endpoint")
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{mport}/other", timeout=10)
        raise AssertionError("404 expected")
    except urllib.error.HTTPError as e:
        assert e.code == 404
    assert raw_http(mport, b"garbage\r\n\r\n").startswith(b"HTTP/1.0 400 ")
    assert raw_http(mport, b"POST /metrics HTTP/1.0\r\n\r\n").startswith(b"HTTP/1.0 405 ")
    assert raw_http(mport, b"GET /metrics HTTP/2.0\r\n\r\n").startswith(b"HTTP/1.0 505 ")
    big = b"GET /metrics HTTP/1.0\r\n" + b"X-Pad: " + b"a" * 8000 + b"\r\n\r\n"
    assert raw_http(mport, big).startswith(b"HTTP/1.0 413 ")
    head = raw_http(mport, b"HEAD /metrics HTTP/1.0\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 200 ") and head.endswith(b"\r\n\r\n")
    # a client that connects and sends half a request: the loop keeps
    # serving scrapes and the node keeps serving requests; the idle
    # connection is closed by the endpoint's own time limit
    idle = socket.create_connection(("127.0.0.1", mport), timeout=5)
    idle.sendall(b"GET /metr")
    t0 = time.monotonic()
    assert scrape(mport)
    assert ctl(c.addr(0), "put", "x", "y").returncode == 0
    idle.settimeout(30)
    assert idle.recv(100) == b""  # closed by the server
    assert time.monotonic() - t0 < 30
    idle.close()
    assert c.proc[0].alive()


def test_ring_output(procs, tmp_path):
    c = Cluster(procs, tmp_path, n=3, opts=["ring_tokens=32"]).start_all()
    a0 = c.addr(0)

    def ring_json():
        r = ctl(a0, "ring", "--json")
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)

    doc = wait_for(lambda: (lambda d: d if d["members"] == 3 else None)(ring_json()),
                   timeout=30, what="three members in the ring")
    assert doc["n"] == 3 and doc["tokens"] == 96
    assert re.fullmatch(r"[0-9a-f]{16}", doc["ring_digest"])
    ids = sorted(nd["id"] for nd in doc["nodes"])
    assert ids == ["n1", "n2", "n3"]
    assert abs(sum(nd["owned_share"] for nd in doc["nodes"]) - 1.0) < 1e-3
    for nd in doc["nodes"]:
        assert nd["tokens"] == 32
        assert 0 < nd["owned_share"] < 1
        assert abs(nd["replicated_share"] - 1.0) < 1e-6  # n=3 of 3 nodes: everything
        assert nd["addr"].startswith("127.0.0.1:")
    assert [nd["self"] for nd in doc["nodes"] if nd["id"] == "n1"] == [True]
    # every node computes the same ring
    for i in (1, 2):
        r = ctl(c.addr(i), "ring", "--json")
        assert json.loads(r.stdout)["ring_digest"] == doc["ring_digest"]
    # the table
    r = ctl(a0, "ring")
    assert r.returncode == 0
    out = r.stdout.decode()
    assert "ring version" in out and "3 members" in out
    for i in ids:
        assert re.search(rf"^{i}\s+default\s+up\s+32\s", out, re.M), out
    assert "(this node)" in out
    # with n=2 on 3 nodes each node replicates about two thirds
    c2 = Cluster(procs, tmp_path / "b", n=3, opts=["ring_tokens=32", "n=2", "r=1", "w=1"])
    c2.start_all()
    d2 = wait_for(lambda: (lambda d: d if d["members"] == 3 else None)(
        json.loads(ctl(c2.addr(0), "ring", "--json").stdout)), timeout=30, what="ring of c2")
    assert abs(sum(nd["replicated_share"] for nd in d2["nodes"]) - 2.0) < 1e-3
    # usage errors
    assert ctl(a0, "ring", "extra").returncode == 2
    r = subprocess.run([quorumctl(), "--node", a0, "ring"], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, env=sanitizer_env(), timeout=60)
    assert r.returncode == 0
