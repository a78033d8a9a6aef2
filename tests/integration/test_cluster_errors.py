"""Bad input against real quorumd processes: oversized values and keys, bad
contexts, malformed and oversized frames, abrupt disconnects. Every request
gets a clear error, nothing is lost, and the node keeps serving. Also the
exit codes of quorumctl that scripts rely on."""
import base64
import socket
import struct
import time

from conftest import free_port
from test_cluster_node import Cluster, ctl, get_json, live_values

FRAME_MAGIC = b"QFN1"
MSG_ERROR = 0x05
MSG_KV_PUT = 0x12


def raw_exchange(port, data, read_timeout=5.0):
    """Sends data on a fresh connection, returns what the node answers
    until it closes the connection or read_timeout passes."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    got = b""
    try:
        s.sendall(data)
        s.settimeout(read_timeout)
        deadline = time.monotonic() + read_timeout
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                break
            if not chunk:
                break
            got += chunk
    finally:
        s.close()
    return got


def assert_error_frame(resp):
    assert len(resp) >= 24, resp
    assert resp[:4] == FRAME_MAGIC
    assert resp[5] == MSG_ERROR
    flags, = struct.unpack_from("<H", resp, 6)
    assert flags & 1  # a response


def header(msg_type, length, reqid=7, csum=0):
    return FRAME_MAGIC + bytes([1, msg_type]) + struct.pack("<HQII", 0, reqid, length, csum)


def test_bad_requests_get_errors_and_node_keeps_serving(procs, tmp_path):
    c = Cluster(procs, tmp_path, opts=["max_value_size=64k", "max_key_size=256"]).start_all()
    a0 = c.addr(0)
    assert ctl(a0, "put", "keep", "me").returncode == 0

    # a value over max_value_size: ETOOBIG, exit 4, nothing written
    r = ctl(a0, "put", "big", "-", stdin=b"x" * (64 * 1024 + 1))
    assert r.returncode == 4 and b"ETOOBIG" in r.stderr, r.stderr
    assert ctl(c.addr(1), "get", "big").returncode == 1
    # exactly at the limit is fine
    assert ctl(a0, "put", "big", "-", stdin=b"y" * (64 * 1024)).returncode == 0
    # a key over max_key_size
    r = ctl(a0, "put", "k" * 257, "v")
    assert r.returncode == 4 and b"ETOOBIG" in r.stderr
    r = ctl(a0, "get", "k" * 257)
    assert r.returncode == 4 and b"ETOOBIG" in r.stderr

    # a context token that is not a token: refused before sending
    r = ctl(a0, "put", "keep", "x", "--context", "not a token!")
    assert r.returncode == 4 and b"EBADCTX" in r.stderr
    # a well-formed token whose bytes are not a context: the node says EBADCTX
    junk = base64.urlsafe_b64encode(b"\x01\x02garbage-context").rstrip(b"=").decode()
    r = ctl(a0, "put", "keep", "x", "--context", junk)
    assert r.returncode == 4 and b"EBADCTX" in r.stderr, r.stderr
    rc, doc = get_json(c.addr(2), "keep")
    assert rc == 0 and live_values(doc) == ["me"]

    port = c.ports[0]
    # garbage bytes: an ERROR frame back, then the connection closes
    resp = raw_exchange(port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" * 4)
    assert_error_frame(resp)
    # a header announcing a huge payload is refused before the payload
    resp = raw_exchange(port, header(MSG_KV_PUT, 0xFFFFFFF0))
    assert_error_frame(resp)
    # a frame with a wrong checksum
    payload = b"\x00" * 40
    resp = raw_exchange(port, header(MSG_KV_PUT, len(payload), csum=0xDEADBEEF) + payload)
    assert_error_frame(resp)
    # half a frame, then an abrupt disconnect
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(header(MSG_KV_PUT, 1000)[:10])
    s.close()
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(header(MSG_KV_PUT, 100) + b"\x00" * 50)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()  # RST
    # many idle connections that just go away
    socks = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(50)]
    for s in socks:
        s.close()

    # the node still serves, and nothing was lost
    for i in range(3):
        rc, doc = get_json(c.addr(i), "keep")
        assert rc == 0 and live_values(doc) == ["me"]
    assert ctl(a0, "put", "after", "ok").returncode == 0
    rc, doc = get_json(c.addr(1), "after")
    assert rc == 0 and live_values(doc) == ["ok"]
    for p in c.proc:
        assert p.alive()


def test_quorumctl_exit_codes(procs, tmp_path):
    c = Cluster(procs, tmp_path, n=1, ids=["solo"])
    c.start(0)
    a = c.addr(0)
    assert ctl(a, "put", "x", "1").returncode == 0
    assert ctl(a, "get", "x").returncode == 0
    assert ctl(a, "get", "missing").returncode == 1
    # usage errors: 2
    assert ctl(a, "get").returncode == 2
    assert ctl(a, "frobnicate").returncode == 2
    assert ctl(a, "get", "x", "--r", "zero").returncode == 2
    assert ctl(a, "put", "x", "1", "--bogus").returncode == 2
    # nobody listening: 4, with the reason
    dead = f"127.0.0.1:{free_port()}"
    r = ctl(dead, "get", "x")
    assert r.returncode == 4 and b"ECONNREFUSED" in r.stderr, r.stderr
    # status works and is JSON with --json
    r = ctl(a, "status", "--json")
    assert r.returncode == 0 and b'"node_id":"solo"' in r.stdout
    r = ctl(a, "--help")
    assert r.returncode == 0 and b"Exit status" in r.stdout
