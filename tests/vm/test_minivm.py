"""minivm, the cgroup v2 guest.  Without root: its pure pieces (vmimage.py's
initramfs archive, module order and kernel extraction; minivm.py's command
script).  As root, real boots that check what the tests rely on: cgroup v2
only, output and exit status back on the host, a timeout that stops the guest."""
import io
import lzma
import os
import shutil
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import minivm  # noqa: E402
import vmimage  # noqa: E402

unprivileged = pytest.mark.unprivileged


def _parse_newc(data):
    """[(name, mode, rdev, body)] of a newc archive, checking its alignment."""
    out, pos = [], 0
    while True:
        assert pos % 4 == 0 and data[pos:pos + 6] == b"070701", pos
        fields = [int(data[pos + 6 + 8 * i:pos + 14 + 8 * i], 16) for i in range(13)]
        mode, size, rmaj, rmin, namesize = fields[1], fields[6], fields[9], fields[10], fields[11]
        name_at = pos + 110
        name = data[name_at:name_at + namesize - 1].decode()
        assert data[name_at + namesize - 1] == 0
        body_at = name_at + namesize + (-(110 + namesize) % 4)
        if name == "TRAILER!!!":
            return out
        out.append((name, mode, (rmaj, rmin), data[body_at:body_at + size]))
        pos = body_at + size + (-size % 4)


@unprivileged
def test_cpio_newc_archive_round_trips():
    archive = vmimage.Cpio()
    archive.dir("bin")
    archive.file("bin/busybox", b"\x7fELF" + b"x" * 5, 0o755)
    archive.add("bin/sh", 0o120777, b"busybox")
    archive.add("dev/console", 0o020600, rdev=(5, 1))
    entries = _parse_newc(archive.bytes())
    assert [(n, oct(m)) for n, m, _, _ in entries] == [
        ("bin", "0o40755"), ("bin/busybox", "0o100755"), ("bin/sh", "0o120777"),
        ("dev/console", "0o20600")]
    assert entries[1][3] == b"\x7fELFxxxxx" and entries[2][3] == b"busybox"
    assert entries[3][2] == (5, 1)


@unprivileged
def test_module_closure_puts_dependencies_first(tmp_path):
    (tmp_path / "modules.dep").write_text(
        "kernel/fs/9p/9p.ko.xz: kernel/net/9p/9pnet.ko.xz kernel/fs/netfs/netfs.ko\n"
        "kernel/net/9p/9pnet.ko.xz:\n"
        "kernel/net/9p/9pnet_virtio.ko.xz: kernel/net/9p/9pnet.ko.xz kernel/virtio.ko\n"
        "kernel/fs/netfs/netfs.ko:\n"
        "kernel/virtio.ko:\n")
    (tmp_path / "modules.builtin").write_text("kernel/fs/overlayfs/overlay.ko\n")
    order = vmimage.module_closure(str(tmp_path), ["9pnet_virtio", "9p", "overlay"])
    assert order == ["kernel/net/9p/9pnet.ko.xz", "kernel/virtio.ko",
                     "kernel/net/9p/9pnet_virtio.ko.xz", "kernel/fs/netfs/netfs.ko",
                     "kernel/fs/9p/9p.ko.xz"]
    with pytest.raises(vmimage.SetupError, match="virtio_blk not in"):
        vmimage.module_closure(str(tmp_path), ["virtio_blk"])
    (tmp_path / "m.ko.xz").write_bytes(lzma.compress(b"module"))
    assert vmimage.read_module(str(tmp_path / "m.ko.xz")) == b"module"


@unprivileged
def test_command_script_keeps_arguments_and_environment(tmp_path):
    argv = ["printf", "<%s>\\n", "two words", "it's", "$HOME", ""]
    env = {"GREETING": "a b 'c'", "PWD": "/elsewhere", "BAD-NAME": "x"}
    script = minivm.command_script(argv, str(tmp_path), env)
    assert "PWD" not in script and "BAD-NAME" not in script
    out = subprocess.run(["sh", "-c", script + 'echo "[$GREETING] $(pwd)"'],
                         capture_output=True, text=True, env={"PATH": os.environ["PATH"]})
    assert out.stdout == "<two words>\n<it's>\n<$HOME>\n<>\n"  # exec: the echo never runs
    script = minivm.command_script(["sh", "-c", 'echo "[$GREETING] $(pwd)"'], str(tmp_path), env)
    out = subprocess.run(["sh", "-c", script], capture_output=True, text=True,
                         env={"PATH": os.environ["PATH"]})
    assert out.stdout == f"[a b 'c'] {tmp_path}\n"


@unprivileged
def test_static_busybox_and_kernel_payload(tmp_path):
    assert not vmimage.is_static_elf(__file__)
    python = os.path.realpath(sys.executable)
    assert not vmimage.is_static_elf(python)            # has a dynamic loader
    busybox = shutil.which("busybox")
    if busybox and shutil.which("readelf"):
        headers = subprocess.run(["readelf", "-lW", busybox], capture_output=True, text=True)
        assert vmimage.is_static_elf(busybox) == ("INTERP" not in headers.stdout)
    elf = b"\x7fELF\x02\x01\x01" + bytes(100)
    bzimage = b"MZ boot code \x1f\x8b\x08 not really gzip " + lzma.compress(elf) + b"relocs"
    assert vmimage.decompress_payload(bzimage) == elf
    assert vmimage.decompress_payload(b"MZ nothing here") is None


@unprivileged
def test_no_qemu_is_a_reason_to_skip(monkeypatch):
    monkeypatch.setenv("MINIRUN_VM_QEMU", "no-such-qemu-binary")
    with pytest.raises(minivm.Unavailable, match="no-such-qemu-binary not found"):
        minivm.qemu_binary()


@pytest.fixture
def guest_ready():
    try:
        minivm.prepare()
    except minivm.Unavailable as e:
        pytest.skip(f"QEMU cannot run a guest here: {e}")


@pytest.mark.vm
def test_guest_has_only_cgroup_v2_and_reports_back(guest_ready, tmp_path):
    out, err = io.BytesIO(), io.BytesIO()
    status = minivm.run(["sh", "-c", 'grep -c " cgroup " /proc/mounts; '
                                     "cat /sys/fs/cgroup/cgroup.subtree_control; "
                                     "pwd; echo to-stderr >&2; exit 7"],
                        cwd=str(tmp_path), out=out, err=err, timeout=300)
    assert status == 7, err.getvalue()
    lines = out.getvalue().decode().splitlines()
    assert lines[0] == "0"                               # no v1 hierarchy at all
    assert {"cpu", "io", "memory", "pids"} <= set(lines[1].split())
    assert lines[2] == str(tmp_path)
    assert err.getvalue() == b"to-stderr\n"


@pytest.mark.vm
def test_timeout_stops_the_guest(guest_ready):
    err = io.BytesIO()
    status = minivm.run(["sleep", "600"], out=io.BytesIO(), err=err, timeout=1)
    assert status == minivm.EXIT_TIMEOUT
    assert b"timed out after 1 s" in err.getvalue()


@pytest.mark.vm
def test_a_guest_that_dies_says_so(guest_ready, monkeypatch):
    monkeypatch.setenv("MINIRUN_VM_APPEND", "rdinit=/no-such-init")   # the kernel panics
    err = io.BytesIO()
    status = minivm.run(["true"], out=io.BytesIO(), err=err, timeout=300)
    assert status == minivm.EXIT_NO_STATUS
    assert b"without an exit status" in err.getvalue()
    assert b"Kernel panic" in err.getvalue()    # the end of the guest's console
