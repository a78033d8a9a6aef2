"""Self-tests of the integration harness: it must stop what it started, by
PID, even when a test fails, and it must notice a sanitizer report."""
import os
import signal
import sys

import pytest

from conftest import Procs, free_port, port_open, wait_for


def test_procs_are_stopped_by_pid(tmp_path):
    ps = Procs(str(tmp_path))
    p = ps.start("sleeper", ["sleep", "300"])
    assert p.alive()
    ps.cleanup()
    assert not p.alive()
    with pytest.raises(ProcessLookupError):
        os.kill(p.pid, 0)


def test_stopped_process_is_killed_too(tmp_path):
    ps = Procs(str(tmp_path))
    p = ps.start("stopped", ["sleep", "300"])
    os.kill(p.pid, signal.SIGSTOP)
    ps.cleanup()
    assert not p.alive()


def test_sanitizer_report_is_found(tmp_path):
    ps = Procs(str(tmp_path))
    p = ps.start("fake", [sys.executable, "-c",
                          "print('==1==ERROR: AddressSanitizer: heap-use-after-free')"])
    p.popen.wait(timeout=30)
    assert ps.sanitizer_reports(), "the scan missed a sanitizer report"
    ps.expected_sanitizer.add("fake")
    assert not ps.sanitizer_reports()
    ps.cleanup()


def test_free_port_and_wait(tmp_path):
    ps = Procs(str(tmp_path))
    port = free_port()
    assert not port_open(port)
    ps.start("listener", [sys.executable, "-c",
                          f"import socket,time;s=socket.socket();s.bind(('127.0.0.1',{port}));"
                          "s.listen();time.sleep(300)"])
    wait_for(lambda: port_open(port), timeout=30, what="listener")
    ps.cleanup()
