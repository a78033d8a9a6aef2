"""quorumfs on one node: real mounts of the real daemon (embedded node, real
files with fsync), driven with ordinary tools and system calls.

Sizes: the make-check form keeps data small enough for an ASan build
(a /usr/include subtree, a 24 MiB file); QFS_LONG=1 runs the issue's full
sizes (all of /usr/include, a 200 MB file).
"""
import errno
import hashlib
import os
import shutil
import signal
import stat
import subprocess
import time

import pytest

from conftest import bin_path, free_port, wait_for

LONG = os.environ.get("QFS_LONG") == "1"


def have(tool):
    return shutil.which(tool) is not None


def mount(procs, tmp_path, name="m", data=None, listen=None, extra=(), opts=()):
    """Starts quorumfs -f on a fresh mount point; returns (proc, mountpoint)."""
    mnt = os.path.join(str(tmp_path), name)
    os.makedirs(mnt, exist_ok=True)
    data = data or os.path.join(str(tmp_path), name + "-data")
    listen = listen or f"127.0.0.1:{free_port()}"
    o = ["attr_timeout=0.5", "entry_timeout=0.5"] + list(opts)
    args = [bin_path("quorumfs"), "-f", "--data", data, "--listen", listen,
            "-o", ",".join(o)] + list(extra) + [mnt]
    p = procs.start(name, args)
    procs.add_mount(mnt)
    wait_for(lambda: os.path.ismount(mnt) or not p.alive(), timeout=60, what=f"{name} mounted")
    if not p.alive():
        pytest.fail(f"quorumfs exited: {p.log()[-3000:]}")
    return p, mnt


def held_elsewhere(mnt):
    """PIDs of processes in other mount namespaces holding a copy of mnt. A
    namespace made while mnt was mounted (`ip netns exec` of another test
    running at the same time on a shared machine) keeps the FUSE connection
    alive after mnt is unmounted here, so the daemon never sees the
    unmount."""
    own = os.readlink("/proc/self/ns/mnt")
    held = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            if os.readlink(f"/proc/{pid}/ns/mnt") == own:
                continue
            with open(f"/proc/{pid}/mountinfo") as f:
                if any(line.split()[4] == mnt for line in f):
                    held.append(int(pid))
        except (OSError, IndexError):
            continue
    return held


def unmount(p, mnt, timeout=60):
    """Unmounts and expects the daemon to exit cleanly. If another mount
    namespace holds a copy of the mount (see held_elsewhere), the daemon is
    told by SIGTERM instead, which stores everything as an unmount does."""
    subprocess.run(["fusermount3", "-u", mnt], check=True)
    try:
        p.popen.wait(timeout=5)
    except subprocess.TimeoutExpired:
        if held_elsewhere(mnt):
            p.popen.send_signal(signal.SIGTERM)
        p.popen.wait(timeout=timeout)
    assert p.popen.returncode == 0, p.log()[-3000:]


def sha(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(1 << 20)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def test_echo_cat_and_posix_basics(procs, tmp_path):
    p, m = mount(procs, tmp_path)
    f = os.path.join(m, "hello.txt")
    subprocess.run(f"echo hello > {f}", shell=True, check=True)
    assert subprocess.run(["cat", f], capture_output=True, check=True).stdout == b"hello\n"
    # append and write at an offset
    with open(f, "ab") as fh:
        fh.write(b"world\n")
    with open(f, "r+b") as fh:
        fh.seek(1)
        fh.write(b"E")
    assert open(f, "rb").read() == b"hEllo\nworld\n"
    # O_EXCL on an existing name
    with pytest.raises(FileExistsError):
        os.open(f, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    # truncate down and up (the extension reads as zeroes)
    os.truncate(f, 3)
    os.truncate(f, 6)
    assert open(f, "rb").read() == b"hEl\0\0\0"
    # rename over an existing file (rsync's temp-then-rename)
    tmp = os.path.join(m, ".hello.txt.XXXX")
    with open(tmp, "wb") as fh:
        fh.write(b"new content")
    os.rename(tmp, f)
    assert open(f, "rb").read() == b"new content"
    assert not os.path.exists(tmp)
    # unlink of an open file: the handle keeps working
    fd = os.open(f, os.O_RDWR)
    os.unlink(f)
    assert not os.path.exists(f)
    os.write(fd, b"X")
    os.lseek(fd, 0, 0)
    assert os.read(fd, 100) == b"Xew content"
    os.close(fd)
    assert "hello.txt" not in os.listdir(m)
    # rename of an open file: the handle follows it
    fd = os.open(os.path.join(m, "moving"), os.O_CREAT | os.O_RDWR)
    os.write(fd, b"before ")
    os.fsync(fd)
    os.rename(os.path.join(m, "moving"), os.path.join(m, "moved"))
    os.write(fd, b"after")
    os.close(fd)
    assert open(os.path.join(m, "moved"), "rb").read() == b"before after"
    assert not os.path.exists(os.path.join(m, "moving"))
    # directories
    d = os.path.join(m, "dir")
    os.mkdir(d)
    with pytest.raises(FileExistsError):
        os.mkdir(d)
    open(os.path.join(d, "f"), "w").close()
    with pytest.raises(OSError) as e:
        os.rmdir(d)
    assert e.value.errno == errno.ENOTEMPTY
    os.unlink(os.path.join(d, "f"))
    os.rmdir(d)
    assert not os.path.exists(d)
    # symlinks
    os.symlink("target/path", os.path.join(m, "ln"))
    assert os.readlink(os.path.join(m, "ln")) == "target/path"
    assert stat.S_ISLNK(os.lstat(os.path.join(m, "ln")).st_mode)
    # hard links are refused (documented)
    g = os.path.join(m, "g")
    open(g, "w").close()
    with pytest.raises(PermissionError):
        os.link(g, os.path.join(m, "g2"))
    # chmod, chown, utimens with nanoseconds
    os.chmod(g, 0o640)
    os.chown(g, 1234, 5678)
    os.utime(g, ns=(1000000000123456789, 1100000000987654321))
    st = os.stat(g)
    assert stat.S_IMODE(st.st_mode) == 0o640
    assert (st.st_uid, st.st_gid) == (1234, 5678)
    assert st.st_mtime_ns == 1100000000987654321
    assert st.st_atime_ns == 1000000000123456789
    # fsync and statfs
    fd = os.open(g, os.O_WRONLY)
    os.write(fd, b"synced")
    os.fsync(fd)
    os.close(fd)
    sv = os.statvfs(m)
    assert sv.f_blocks > 0 and sv.f_namemax == 255
    # extended attributes
    os.setxattr(g, "user.colour", b"blue")
    assert os.getxattr(g, "user.colour") == b"blue"
    assert "user.colour" in os.listxattr(g)
    with pytest.raises(OSError) as e:
        os.setxattr(g, "user.colour", b"red", os.XATTR_CREATE)
    assert e.value.errno == errno.EEXIST
    os.removexattr(g, "user.colour")
    with pytest.raises(OSError) as e:
        os.getxattr(g, "user.colour")
    assert e.value.errno == errno.ENODATA
    # bad names get clear errors and change nothing
    with pytest.raises(OSError) as e:
        open(os.path.join(m, "x" * 256), "w")
    assert e.value.errno == errno.ENAMETOOLONG
    unmount(p, m)


def test_data_survives_remount_and_sigterm(procs, tmp_path):
    data = os.path.join(str(tmp_path), "data")
    listen = f"127.0.0.1:{free_port()}"
    p, m = mount(procs, tmp_path, data=data, listen=listen)
    os.makedirs(os.path.join(m, "a", "b"))
    with open(os.path.join(m, "a", "b", "f"), "wb") as fh:
        fh.write(b"persist me")
    os.utime(os.path.join(m, "a", "b", "f"), ns=(5, 7))
    unmount(p, m)
    p, m = mount(procs, tmp_path, name="m2", data=data, listen=listen)
    assert open(os.path.join(m, "a", "b", "f"), "rb").read() == b"persist me"
    assert os.stat(os.path.join(m, "a", "b", "f")).st_mtime_ns == 7
    # SIGTERM while a file is open with buffered writes: flushed, unmounted
    fd = os.open(os.path.join(m, "open.txt"), os.O_CREAT | os.O_WRONLY)
    os.write(fd, b"buffered before SIGTERM")
    p.signal(signal.SIGTERM)
    p.popen.wait(timeout=60)
    assert p.popen.returncode == 0, p.log()[-3000:]
    assert not os.path.ismount(m)
    try:
        os.close(fd)
    except OSError:
        pass
    p, m = mount(procs, tmp_path, name="m3", data=data, listen=listen)
    assert open(os.path.join(m, "open.txt"), "rb").read() == b"buffered before SIGTERM"
    unmount(p, m)


def test_large_file_checksum_and_partial_rewrite(procs, tmp_path):
    # small chunks so the make-check size still spans many of them
    p, m = mount(procs, tmp_path, opts=["chunk_size=256k"])
    mb = 200 if LONG else 24
    src = os.path.join(str(tmp_path), "src.bin")
    subprocess.run(["dd", "if=/dev/urandom", f"of={src}", "bs=1M", f"count={mb}", "status=none"],
                   check=True)
    dst = os.path.join(m, "big.bin")
    subprocess.run(["dd", f"if={src}", f"of={dst}", "bs=1M", "conv=fsync", "status=none"],
                   check=True)
    assert os.stat(dst).st_size == mb << 20
    assert sha(dst) == sha(src)
    # rewrite 10 bytes in the middle of both; only those change
    for path in (src, dst):
        with open(path, "r+b") as fh:
            fh.seek((mb << 20) // 2 + 3)
            fh.write(b"0123456789")
    assert sha(dst) == sha(src)
    # append
    for path in (src, dst):
        with open(path, "ab") as fh:
            fh.write(b"tail")
    assert sha(dst) == sha(src)
    # a sparse file reads zeroes in its hole
    sp = os.path.join(m, "sparse")
    with open(sp, "wb") as fh:
        fh.seek(3 << 20)
        fh.write(b"end")
    with open(sp, "rb") as fh:
        assert fh.read(1 << 20) == bytes(1 << 20)
    unmount(p, m)
    # still equal after a remount
    p, m = mount(procs, tmp_path, name="m2", data=os.path.join(str(tmp_path), "m-data"))
    assert sha(os.path.join(m, "big.bin")) == sha(src)
    unmount(p, m)


@pytest.mark.skipif(not have("rsync"), reason="rsync not installed")
def test_rsync_tree_twice(procs, tmp_path):
    p, m = mount(procs, tmp_path)
    src = "/usr/include/" if LONG else "/usr/include/linux/"
    dst = os.path.join(m, "inc") + "/"
    subprocess.run(["rsync", "-a", src, dst], check=True)
    subprocess.run(["diff", "-r", "--no-dereference", src, dst], check=True)
    out = subprocess.run(["rsync", "-a", "--stats", src, dst], check=True,
                         capture_output=True, text=True).stdout
    assert "Number of regular files transferred: 0" in out, out
    unmount(p, m)


def test_readdir_many_entries_batched(procs, tmp_path):
    p, m = mount(procs, tmp_path)
    d = os.path.join(m, "many")
    os.mkdir(d)
    names = {f"f{i:04d}" for i in range(600)}
    for n in names:
        with open(os.path.join(d, n), "w") as fh:
            fh.write(n)
    time.sleep(1)  # let the attribute cache expire
    ls = subprocess.run(["ls", "-l", d], capture_output=True, text=True, check=True).stdout
    assert len([ln for ln in ls.splitlines() if ln.startswith("-")]) == 600
    assert set(os.listdir(d)) == names
    unmount(p, m)


def test_bad_options_fail_clearly(tmp_path):
    q = bin_path("quorumfs")
    r = subprocess.run([q, "--bogus", str(tmp_path)], capture_output=True, text=True)
    assert r.returncode == 2 and "--bogus" in r.stderr
    r = subprocess.run([q, "-f", "-o", "chunk_size=1", str(tmp_path)], capture_output=True,
                       text=True)
    assert r.returncode == 2 and "chunk_size" in r.stderr
    r = subprocess.run([q, "-f", os.path.join(str(tmp_path), "missing")], capture_output=True,
                       text=True)
    assert r.returncode == 1 and "mount point" in r.stderr
    r = subprocess.run([q, "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "--join" in r.stdout


def _pids_with_arg(arg):
    pids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                if arg.encode() in f.read().split(b"\0"):
                    pids.append(int(d))
        except OSError:
            pass
    return pids


def _end_background_daemon(mnt, pids):
    """Cleanup of a daemon started in the background (not by procs):
    unmount if still mounted, wait (bounded) for the PIDs this test started
    to exit, kill the ones that did not."""
    if os.path.ismount(mnt):
        subprocess.run(["fusermount3", "-u", mnt], check=False)
    deadline = time.monotonic() + 60
    while any(os.path.exists(f"/proc/{p}") for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    for p in pids:
        if os.path.exists(f"/proc/{p}"):
            os.kill(p, signal.SIGKILL)


def test_fstab_helper_mounts_in_background(tmp_path):
    helper = os.path.join(os.environ.get("QFS_SRCDIR", "../.."), "contrib", "mount.quorumfs")
    mnt = os.path.join(str(tmp_path), "fstab-mnt")
    os.makedirs(mnt)
    data = os.path.join(str(tmp_path), "fstab-data")
    env = dict(os.environ, QUORUMFS=bin_path("quorumfs"))
    opts = f"defaults,_netdev,noauto,data={data},listen=127.0.0.1:{free_port()},attr_timeout=1"
    r = subprocess.run(["sh", helper, "quorumfs", mnt, "-o", opts], env=env,
                       capture_output=True, text=True, timeout=120)
    pids = _pids_with_arg(mnt)
    try:
        assert r.returncode == 0, r.stderr
        assert os.path.ismount(mnt)  # mounted when the helper returns
        with open(os.path.join(mnt, "f"), "w") as f:
            f.write("via fstab")
        assert open(os.path.join(mnt, "f")).read() == "via fstab"
    finally:
        _end_background_daemon(mnt, pids)
    log = open(os.path.join(data, "quorumfs.log"), errors="replace").read()
    assert "ERROR: AddressSanitizer" not in log and "runtime error:" not in log, log
    # a bad SPEC is refused before anything starts
    r = subprocess.run(["sh", helper, "bogus", mnt], env=env, capture_output=True, text=True)
    assert r.returncode != 0 and "SPEC" in r.stderr


def test_background_mount_with_relative_paths(procs, tmp_path):
    """A daemon started in the background from a directory with relative
    paths (`quorumfs --data d m`) leaves that directory for /: the store must
    go on creating its files in the data directory it was given (memtable
    flushes, new commit logs, the manifest at stop), and SIGTERM must unmount
    the mount point it was given, not a path relative to /."""
    cwd = str(tmp_path)
    os.makedirs(os.path.join(cwd, "rel-mnt"))
    listen = f"127.0.0.1:{free_port()}"
    mnt = os.path.join(cwd, "rel-mnt")
    data = os.path.join(cwd, "rel-data")
    pids = []
    try:
        # output to a file: a daemon that kept a pipe open would hang run()
        with open(os.path.join(cwd, "start.out"), "w+") as out:
            r = subprocess.run([bin_path("quorumfs"), "--data", "rel-data", "--listen", listen,
                                "-o", "memtable_size=256k,attr_timeout=0.5", "rel-mnt"],
                               cwd=cwd, stdout=out, stderr=out, timeout=120)
            pids = _pids_with_arg(listen)
            out.seek(0)
            assert r.returncode == 0, out.read()
        assert os.path.ismount(mnt) and len(pids) == 1, pids
        want = {}
        for i in range(24):  # 1.5 MiB: several memtable flushes after the chdir
            want[f"f{i:02d}"] = os.urandom(64 << 10)
            with open(os.path.join(mnt, f"f{i:02d}"), "wb") as f:
                f.write(want[f"f{i:02d}"])
        os.kill(pids[0], signal.SIGTERM)
        deadline = time.monotonic() + 60
        while os.path.exists(f"/proc/{pids[0]}") and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not os.path.exists(f"/proc/{pids[0]}"), "the daemon did not exit on SIGTERM"
        assert not os.path.ismount(mnt), "SIGTERM left the mount in place"
    finally:
        _end_background_daemon(mnt, pids)
    log = open(os.path.join(data, "quorumfs.log"), errors="replace").read()
    assert " ERROR " not in log and " WARN " not in log, log
    assert "ERROR: AddressSanitizer" not in log and "runtime error:" not in log, log
    assert any(n.endswith(".sst") for n in os.listdir(os.path.join(data, "db"))), log
    # everything written is there after a remount of the same data
    p, m = mount(procs, tmp_path, name="again", data=data)
    for name, b in want.items():
        with open(os.path.join(m, name), "rb") as f:
            assert f.read() == b, name
    unmount(p, m)
