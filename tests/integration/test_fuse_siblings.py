"""quorumctl siblings PATH against a real mount's embedded node: siblings made
by two writes with the same causal context (the second one blind, as a
writer that read before the first write would), then listed by name, by
conflict-file name, as text and as JSON, with their digests; exit codes
like `get`. The two-node partition form is in test_fuse_cluster.py.
"""
import json
import os
import subprocess

import base64

from conftest import BUILDDIR, free_port, wait_for
from test_fuse_basic import mount


def ctl_path():
    return os.path.join(BUILDDIR, "src", "cli", "quorumctl")


def ctl(listen, *args):
    return subprocess.run([ctl_path(), "--node", listen, "--timeout", "10s"] + list(args),
                          capture_output=True, timeout=60)


def xxh3_hex_of(listen, path):
    r = ctl(listen, "siblings", path, "--json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_siblings_of_a_file(procs, tmp_path):
    listen = f"127.0.0.1:{free_port()}"
    p, m = mount(procs, tmp_path, listen=listen)
    d = os.path.join(m, "docs")
    os.mkdir(d)
    with open(os.path.join(d, "report.txt"), "w") as f:
        f.write("first version\n")
    big = os.urandom(3 * 1024 * 1024 + 123)  # chunked (past inline_max)
    with open(os.path.join(m, "big.bin"), "wb") as f:
        f.write(big)

    # one version: listed as shown, no conflict
    doc = xxh3_hex_of(listen, "docs/report.txt")
    assert doc["path"] == "/docs/report.txt" and doc["key"] == "f:/docs/report.txt"
    assert doc["live"] == 1 and len(doc["siblings"]) == 1
    s0 = doc["siblings"][0]
    assert s0["shown"] and s0["name"] == "report.txt" and s0["type"] == "file"
    assert s0["size"] == 14 and s0["layout"] == "inline" and s0["digest"].startswith("xxh3:")
    assert doc["context"]

    # a second version made with the same (empty, i.e. stale) context: the
    # old object's bytes written blind become a sibling of the current one
    with open(os.path.join(d, "report.txt"), "w") as f:
        f.write("second version, longer\n")
    r = ctl(listen, "get", "f:/docs/report.txt", "--json")
    assert r.returncode == 0, r.stderr
    cur = json.loads(r.stdout)["siblings"]
    assert len(cur) == 1
    # the current object's bytes put again with no context (a writer whose
    # context predates it): a second sibling with the same content; then
    # the mount writes the name, which descends from the shown sibling
    # only, so the blind copy stays as the conflict file
    val = cur[0].get("value")
    raw = val.encode("utf-8") if val is not None else base64.b64decode(cur[0]["value_base64"])
    r = subprocess.run([ctl_path(), "--node", listen, "put", "f:/docs/report.txt", "-"],
                       input=raw, capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr

    def two():
        return any(".sync-conflict-" in n for n in os.listdir(d))
    wait_for(two, timeout=30, interval=0.2, what="conflict file in the mount")
    with open(os.path.join(d, "report.txt"), "w") as f:
        f.write("third\n")
    wait_for(lambda: len(xxh3_hex_of(listen, "/docs/report.txt")["siblings"]) == 2,
             timeout=30, interval=0.2, what="two siblings")
    doc = xxh3_hex_of(listen, "/docs//report.txt/")
    sibs = doc["siblings"]
    shown = [s for s in sibs if s["shown"]]
    other = [s for s in sibs if not s["shown"]]
    assert len(shown) == 1 and len(other) == 1
    listing = sorted(os.listdir(d))
    assert shown[0]["name"] == "report.txt" and other[0]["name"] in listing, (sibs, listing)
    assert ".sync-conflict-" in other[0]["name"]
    # sizes and digests are those of what cat shows under each name
    with open(os.path.join(d, "report.txt")) as f:
        assert f.read() == "third\n"
    with open(os.path.join(d, other[0]["name"])) as f:
        assert f.read() == "second version, longer\n"
    assert shown[0]["size"] == 6 and other[0]["size"] == 23
    assert shown[0]["digest"] != other[0]["digest"]
    assert shown[0]["node"] and shown[0]["counter"] > 0 and other[0]["counter"] > 0
    assert (shown[0]["node"], shown[0]["counter"]) != (other[0]["node"], other[0]["counter"])

    # the conflict file's own name lists the same siblings
    doc2 = xxh3_hex_of(listen, "docs/" + other[0]["name"])
    assert doc2["path"] == "/docs/report.txt" and doc2["asked"] == other[0]["name"]
    assert len(doc2["siblings"]) == 2

    # text form: one line per sibling, '*' on the shown one, the context
    r = ctl(listen, "siblings", "docs/report.txt")
    assert r.returncode == 0, r.stderr
    out = r.stdout.decode()
    lines = out.splitlines()
    assert lines[0].startswith("/docs/report.txt: 2 siblings")
    assert any(line.startswith("* report.txt") for line in lines), out
    assert any(other[0]["name"] in line and "digest=xxh3:" in line for line in lines), out
    assert lines[-1].startswith("# context ")

    # a chunked file: the digest covers its content (equal bytes, equal
    # digest: a copy through the mount has the same one)
    with open(os.path.join(m, "big-copy.bin"), "wb") as f:
        f.write(big)
    a = xxh3_hex_of(listen, "big.bin")["siblings"][0]
    b = xxh3_hex_of(listen, "big-copy.bin")["siblings"][0]
    assert a["layout"] == "chunked" and a["size"] == len(big)
    assert a["digest"] == b["digest"]
    at = 2 * 1024 * 1024 + 5
    with open(os.path.join(m, "big-copy.bin"), "r+b") as f:
        f.seek(at)
        f.write(bytes([big[at] ^ 0xFF]))  # a byte that differs from the one there
    wait_for(lambda: xxh3_hex_of(listen, "big-copy.bin")["siblings"][0]["digest"] != a["digest"],
             timeout=30, interval=0.2, what="digest follows the content")

    # a directory: one shown entry, no digest
    dd = xxh3_hex_of(listen, "docs")["siblings"]
    assert len(dd) == 1 and dd[0]["type"] == "dir" and "digest" not in dd[0]

    # exit codes as get: 1 not found, 2 usage, 3 no node answering in time
    # is covered by get's own tests (same client and mapping)
    assert ctl(listen, "siblings", "docs/missing.txt").returncode == 1
    assert ctl(listen, "siblings", "docs/../x").returncode == 2
    assert ctl(listen, "siblings").returncode == 2
    assert ctl(listen, "siblings", "a", "b").returncode == 2
    assert ctl(listen, "siblings", "a", "--bogus").returncode == 2
