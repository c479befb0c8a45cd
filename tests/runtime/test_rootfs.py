"""root, mounts, devices, maskedPaths, readonlyPaths, propagation, pivot."""
import os

from minirun_testlib import run_in


def test_readonly_root(runtime, bundle, cid):
    out = run_in(runtime, bundle, cid, "touch /x 2>&1; echo rc=$?; grep ' / ' /proc/mounts")
    assert "rc=1" in out.stdout and "Read-only" in out.stdout
    assert " ro," in out.stdout.splitlines()[-1] or " ro " in out.stdout.splitlines()[-1]


def test_writable_root(runtime, private_bundle, cid):
    out = run_in(runtime, private_bundle, cid, "echo data > /created && cat /created")
    assert out.stdout == "data\n"
    assert open(os.path.join(private_bundle.path, "rootfs/created")).read() == "data\n"


def test_pivot_root_hides_the_host(runtime, bundle, cid):
    marker = f"/tmp/minirun-host-marker-{cid}"
    open(marker, "w").close()
    try:
        out = run_in(runtime, bundle, cid, f"ls {marker} 2>&1; cat /proc/self/mountinfo")
        assert "No such file" in out.stdout
        assert "/work" not in out.stdout.split("No such file")[1]
    finally:
        os.unlink(marker)


def test_no_pivot(runtime, bundle, cid):
    bundle.process["args"] = ["sh", "-c", "ls /bin/busybox && echo ok"]
    bundle.save()
    out = runtime("run", "--no-pivot", "--bundle", bundle.path, cid)
    assert out.stdout.split()[-1] == "ok"


def test_mounts_tmpfs_bind_and_options(runtime, bundle, cid, tmp_path):
    host_dir = tmp_path / "shared"
    host_dir.mkdir()
    (host_dir / "f").write_text("from-host")
    host_file = tmp_path / "single"
    host_file.write_text("one file")
    bundle.config["mounts"] += [
        {"destination": "/data", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "nodev", "size=1m", "mode=700"]},
        {"destination": "/mnt/ro", "type": "bind", "source": str(host_dir),
         "options": ["rbind", "ro"]},
        {"destination": "/mnt/rw", "source": str(host_dir), "options": ["bind"]},
        {"destination": "/etc/single", "type": "bind", "source": str(host_file),
         "options": ["bind", "ro"]},
    ]
    out = run_in(runtime, bundle, cid,
                 "grep -E ' /(data|mnt/ro|mnt/rw|etc/single) ' /proc/self/mountinfo; "
                 "stat -c %a /data; cat /mnt/ro/f; echo; cat /etc/single; echo; "
                 "touch /mnt/ro/x 2>/dev/null || echo ro-refused; echo w > /mnt/rw/new")
    text = out.stdout
    assert "ro-refused" in text and "from-host" in text and "one file" in text
    lines = {ln.split()[4]: ln for ln in text.splitlines() if ln.count(" ") > 6}
    assert "nosuid" in lines["/data"] and "nodev" in lines["/data"]
    assert " ro" in lines["/mnt/ro"] and " rw" in lines["/mnt/rw"]
    assert "700" in text
    assert (host_dir / "new").read_text() == "w\n"


def test_mount_destination_symlink_stays_inside_rootfs(runtime, private_bundle, cid, tmp_path):
    """An image symlink pointing at a host path must not redirect a mount."""
    victim = tmp_path / "victim"
    victim.mkdir()
    rootfs = os.path.join(private_bundle.path, "rootfs")
    os.symlink(str(victim), os.path.join(rootfs, "evil"))
    os.symlink("../../../../../../" + str(victim), os.path.join(rootfs, "evil2"))
    private_bundle.config["mounts"] += [
        {"destination": "/evil", "type": "tmpfs", "source": "tmpfs"},
        {"destination": "/evil2/sub", "type": "tmpfs", "source": "tmpfs"},
    ]
    run_in(runtime, private_bundle, cid, "touch /evil/inside /evil2/sub/inside2")
    assert os.listdir(victim) == [], "a mount or file escaped to the host"
    # Both were resolved as if / were the rootfs: they landed inside it.
    assert os.path.isdir(os.path.join(rootfs, str(victim).lstrip("/")))


def test_proc_on_symlink_is_refused(runtime, private_bundle, cid):
    rootfs = os.path.join(private_bundle.path, "rootfs")
    os.rmdir(os.path.join(rootfs, "proc"))
    os.symlink("/tmp", os.path.join(rootfs, "proc"))
    out = run_in(runtime, private_bundle, cid, "true", check=False)
    assert out.returncode != 0 and "symlink" in out.stderr
    assert runtime.ids() == []


def test_default_devices_and_links(runtime, bundle, cid):
    out = run_in(runtime, bundle, cid,
                 "for d in null zero full random urandom tty; do stat -c '%n %F %t:%T %a' /dev/$d; done;"
                 " for l in ptmx fd stdin stdout stderr; do readlink /dev/$l; done;"
                 " test -d /dev/pts && test -d /dev/shm && test -d /dev/mqueue && echo dirs-ok")
    lines = out.stdout.splitlines()
    expect = {"null": "1:3", "zero": "1:5", "full": "1:7", "random": "1:8", "urandom": "1:9",
              "tty": "5:0"}
    for line in lines[:6]:
        name, kind, rest = line.split(" ", 2)
        assert "character special" in line
        assert rest.split()[-2] == expect[name.split("/")[-1]] and rest.split()[-1] == "666"
    assert lines[6:11] == ["pts/ptmx", "/proc/self/fd", "/proc/self/fd/0", "/proc/self/fd/1",
                           "/proc/self/fd/2"]
    assert lines[-1] == "dirs-ok"


def test_linux_devices(runtime, bundle, cid):
    bundle.linux["devices"] = [
        {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 0o640,
         "uid": 12, "gid": 34},
        {"path": "/dev/net/tun", "type": "c", "major": 10, "minor": 200},
        {"path": "/dev/myfifo", "type": "p"},
    ]
    out = run_in(runtime, bundle, cid, "stat -c '%n %F %t:%T %a %u %g' /dev/fuse /dev/net/tun /dev/myfifo")
    lines = out.stdout.splitlines()
    assert lines[0] == "/dev/fuse character special file a:e5 640 12 34"
    assert lines[1].startswith("/dev/net/tun character special file a:c8 666")
    assert "fifo" in lines[2]


def test_masked_paths(runtime, bundle, cid):
    bundle.linux["maskedPaths"] += ["/proc/self/does-not-exist"]
    out = run_in(runtime, bundle, cid,
                 "wc -c < /proc/keys; ls /sys/firmware | wc -l; "
                 "grep -E ' /proc/keys | /sys/firmware ' /proc/self/mountinfo")
    lines = out.stdout.splitlines()
    assert any(" /proc/keys " in ln for ln in lines), "/proc/keys is masked by /dev/null"
    assert lines[0].strip() == "0" and lines[1].strip() == "0"
    assert any("/sys/firmware" in ln and " ro" in ln and "tmpfs" in ln for ln in lines)


def test_readonly_paths(runtime, bundle, cid):
    out = run_in(runtime, bundle, cid,
                 "echo 1 > /proc/sys/kernel/domainname 2>/dev/null || echo refused; "
                 "grep ' /proc/sys ' /proc/self/mountinfo")
    assert out.stdout.splitlines()[0] == "refused"
    assert " ro," in out.stdout or " ro " in out.stdout


def test_rootfs_propagation_private(runtime, bundle, cid):
    bundle.linux["rootfsPropagation"] = "private"
    out = run_in(runtime, bundle, cid, "cat /proc/self/mountinfo")
    root = [ln for ln in out.stdout.splitlines() if ln.split()[4] == "/"]
    assert root and "shared:" not in root[0] and "master:" not in root[0]


def test_nothing_leaks_into_host_mount_table(runtime, bundle, cid):
    before = open("/proc/self/mountinfo").read().count("\n")
    bundle.process["args"] = ["sleep", "300"]
    bundle.save()
    runtime("run", "-d", "--bundle", bundle.path, cid)
    assert open("/proc/self/mountinfo").read().count("\n") == before
    runtime("delete", "--force", cid)
    assert open("/proc/self/mountinfo").read().count("\n") == before


def test_cgroup_mount_is_readonly_and_scoped(runtime, bundle, cid):
    out = run_in(runtime, bundle, cid, "ls /sys/fs/cgroup; touch /sys/fs/cgroup/x 2>/dev/null || echo ro")
    assert "ro" in out.stdout.split()
    assert "memory" in out.stdout or "cgroup.controllers" in out.stdout
