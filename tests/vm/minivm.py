#!/usr/bin/env python3
"""minivm: run one command as root in a throw-away QEMU guest whose kernel
has nothing but cgroup v2 (`cgroup_no_v1=all`), then power it off.

    python3 tests/vm/minivm.py [--disk 64M] [--mem 1G] [--cpus 2]
                               [--timeout SECS] [--verbose] -- COMMAND [ARG...]

Why: minirun has a cgroup v1 and a cgroup v2 driver, and a developer's
machine (or a CI runner) has only one of the two.  The guest proves the v2
driver on any host that has QEMU, without a disk image to maintain:

  * kernel  a stock Debian kernel: the host's own if /boot has one with its
            modules, else the package linux-image-amd64 depends on, fetched
            once with `apt-get download` and unpacked into the cache;
  * initrd  static busybox, guest_init.sh and the few modules needed to reach
            the root (virtio-pci, 9p, overlay, virtio-blk), built as a newc
            cpio archive and cached under a hash of its contents (both in
            vmimage.py);
  * root    the host's / exported read-only over virtio-9p, under an overlay
            whose upper layer is a tmpfs: the guest runs the same interpreter,
            venv and checkout as the host, and forgets its writes;
  * job     a per-run directory on the host, exported read-write, carries the
            command in and its stdout, stderr and exit status out.

The exit status is the command's; 124 when --timeout expired, 125 for a
setup error, 255 when the guest stopped without reporting a status (the end
of its console log is printed).  Output is copied to ours while it runs.

Without hardware virtualisation (kvm_intel/kvm_amd), QEMU emulates the CPU
(TCG): boot takes a few seconds and Python runs 20-40x slower than natively.

Environment: MINIRUN_VM_CACHE (default /var/cache/minirun-vm),
MINIRUN_VM_KERNEL + MINIRUN_VM_MODULES (a kernel image and its
/lib/modules/VERSION directory), MINIRUN_VM_QEMU, MINIRUN_VM_APPEND (more
kernel command line).
"""
import argparse
import contextlib
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vmimage import (  # noqa: E402
    SetupError, Unavailable, bootable_image, build_initrd, cache_dir, find_kernel, locked, log,
    read_bytes, static_busybox)

# Variables of ours that mean nothing (or something wrong) in the guest.
ENV_SKIP = {"PWD", "OLDPWD", "SHLVL", "_", "TERM", "DISPLAY", "SSH_AUTH_SOCK",
            "SSH_CONNECTION", "SSH_CLIENT", "SSH_TTY"}
EXIT_TIMEOUT, EXIT_SETUP, EXIT_NO_STATUS = 124, 125, 255


# --- the host's QEMU ------------------------------------------------------------
def qemu_binary():
    name = os.environ.get("MINIRUN_VM_QEMU", "qemu-system-x86_64")
    path = shutil.which(name)
    if not path:
        raise Unavailable(f"{name} not found (apt-get install qemu-system-x86)")
    return path


# --- one run ---------------------------------------------------------------------------
def accel_args():
    """KVM only with real hardware virtualisation: a software /dev/kvm (e.g.
    kvm_pvm in nested sandboxes) boots a stock kernel far slower than TCG."""
    hardware = os.path.isdir("/sys/module/kvm_intel") or os.path.isdir("/sys/module/kvm_amd")
    if hardware and os.access("/dev/kvm", os.R_OK | os.W_OK):
        return ["-accel", "kvm", "-cpu", "host"]
    return ["-accel", "tcg,thread=multi", "-cpu", os.environ.get("MINIRUN_VM_CPU", "max")]


def command_script(argv, cwd, env):
    """The shell script the guest runs: our environment, our directory, argv."""
    lines = ["# written by minivm"]
    for key, value in sorted(env.items()):
        if key not in ENV_SKIP and key.replace("_", "a").isalnum() and not key[0].isdigit():
            lines.append(f"export {key}={shlex.quote(value)}")
    lines.append(f"cd {shlex.quote(cwd)} || exit {EXIT_SETUP}")
    lines.append("exec " + " ".join(shlex.quote(a) for a in argv))
    return "\n".join(lines) + "\n"


def parse_size(text):
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    text = text.strip().upper()
    if text[-1:] in units:
        return int(text[:-1]) * units[text[-1]]
    return int(text)


def qemu_command(qemu, image, initrd, job, *, mem, cpus, disk):
    append = ["console=ttyS0", "quiet", "loglevel=4", "panic=-1", "rdinit=/init",
              "cgroup_no_v1=all", "8250.nr_uarts=1", "random.trust_cpu=on", "mitigations=off",
              "cryptomgr.notests", "tsc=reliable"]
    if disk:
        append.append("minivm.disk=1")
    append += os.environ.get("MINIRUN_VM_APPEND", "").split()
    cmd = [qemu, "-name", "minivm", "-nodefaults", "-no-user-config", "-display", "none",
           "-no-reboot", "-machine", "pc", *accel_args(), "-m", mem, "-smp", str(cpus),
           "-kernel", image, "-initrd", initrd, "-append", " ".join(append),
           "-chardev", f"file,id=console,path={_qemu_escape(job)}/console.log",
           "-serial", "chardev:console", "-nic", "none",
           # Both shares on one PCI slot: fewer interrupt links to set up at boot.
           "-fsdev", "local,id=hostroot,path=/,security_model=none,readonly=on,multidevs=remap",
           "-device", "virtio-9p-pci,fsdev=hostroot,mount_tag=hostroot,addr=04.0,"
                      "multifunction=on",
           "-fsdev", f"local,id=job,path={_qemu_escape(job)},security_model=none",
           "-device", "virtio-9p-pci,fsdev=job,mount_tag=job,addr=04.1"]
    if disk:
        cmd += ["-drive", f"file={_qemu_escape(job)}/disk.img,format=raw,if=none,id=scratch,"
                          f"cache=unsafe",
                "-device", "virtio-blk-pci,drive=scratch,addr=05.0"]
    return cmd


def _qemu_escape(value):
    return value.replace(",", ",,")


class _Follower(threading.Thread):
    """Copies what the guest appends to job/stdout and job/stderr to our streams."""

    def __init__(self, job, out, err):
        super().__init__(daemon=True)
        self.pairs = [(os.path.join(job, "stdout"), out, 0), (os.path.join(job, "stderr"), err, 0)]
        self.finished = threading.Event()

    def run(self):
        while not self.finished.wait(0.2):
            self.copy()
        self.copy()

    def copy(self):
        for i, (path, stream, offset) in enumerate(self.pairs):
            try:
                with open(path, "rb") as f:
                    f.seek(offset)
                    data = f.read()
            except FileNotFoundError:
                continue
            if data:
                stream.write(data)
                stream.flush()
                self.pairs[i] = (path, stream, offset + len(data))

    def stop(self):
        self.finished.set()
        self.join()


def prepare(verbose=False):
    """(qemu, image, initrd, kernel) ready to boot; Unavailable if QEMU cannot run here."""
    qemu = qemu_binary()
    busybox = static_busybox()
    kernel = find_kernel(verbose)
    with locked(os.path.join(cache_dir(), ".build.lock")):
        initrd = build_initrd(kernel, busybox, verbose)
        image = bootable_image(kernel, verbose)
    log(verbose, f"kernel {image} ({kernel.version}), modules {kernel.modules}, initrd {initrd}")
    return qemu, image, initrd, kernel


def run(argv, *, cwd=None, env=None, mem="1G", cpus=2, disk=None, timeout=600,
        out=None, err=None, verbose=False):
    """Run argv in a fresh guest; returns its exit status (see the module doc).
    Raises Unavailable when QEMU cannot run here."""
    out = out or sys.stdout.buffer
    err = err or sys.stderr.buffer
    qemu, image, initrd, kernel = prepare(verbose)
    cwd = os.path.abspath(cwd or os.getcwd())
    env = os.environ if env is None else env
    job = tempfile.mkdtemp(prefix="minivm-")
    try:
        with open(os.path.join(job, "command"), "w") as f:
            f.write(command_script(argv, cwd, env))
        with open(os.path.join(job, "modules"), "w") as f:
            f.write(kernel.modules)
        if disk:
            with open(os.path.join(job, "disk.img"), "wb") as f:
                f.truncate(parse_size(disk))   # sparse: costs nothing until written
        cmd = qemu_command(qemu, image, initrd, job, mem=mem, cpus=cpus, disk=disk)
        log(verbose, " ".join(shlex.quote(c) for c in cmd))
        follower = _Follower(job, out, err)
        follower.start()
        started = time.monotonic()
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)
        timed_out = False
        try:
            _, qemu_err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            proc.kill()
            _, qemu_err = proc.communicate()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            follower.stop()
        log(verbose, f"guest ran {time.monotonic() - started:.1f} s")
        status = _read_status(job)
        if status is not None and not timed_out:
            if verbose:
                err.write(read_bytes(os.path.join(job, "console.log")))
            return status
        if timed_out:
            err.write(f"minivm: timed out after {timeout} s\n".encode())
            code = EXIT_TIMEOUT
        else:
            err.write(f"minivm: the guest stopped without an exit status (qemu exit "
                      f"{proc.returncode}) {qemu_err.decode(errors='replace')}\n".encode())
            code = EXIT_NO_STATUS
        err.write(b"minivm: ---- end of the guest console ----\n")
        with contextlib.suppress(OSError):
            console = read_bytes(os.path.join(job, "console.log"))
            err.write(b"\n".join(console.splitlines()[-40:]) + b"\n")
        return code
    finally:
        shutil.rmtree(job, ignore_errors=True)


def _read_status(job):
    try:
        with open(os.path.join(job, "status")) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def main(args=None):
    parser = argparse.ArgumentParser(prog="minivm", description=__doc__.split("\n\n")[0])
    parser.add_argument("--mem", default="1G")
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument("--disk", help="attach an empty scratch disk of this size as /dev/vda")
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--verbose", "-v", action="store_true")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    opts = parser.parse_args(args)
    command = opts.command[1:] if opts.command[:1] == ["--"] else opts.command
    if not command:
        parser.error("a command to run is required")
    if os.geteuid() != 0:
        print("minivm: run as root (the guest's root is the host's / over 9p)", file=sys.stderr)
        return EXIT_SETUP
    # SIGTERM unwinds like Ctrl-C, so that QEMU is stopped and the job removed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    try:
        return run(command, mem=opts.mem, cpus=opts.cpus, disk=opts.disk,
                   timeout=opts.timeout, verbose=opts.verbose)
    except (Unavailable, SetupError, subprocess.CalledProcessError, OSError) as e:
        print(f"minivm: {e}", file=sys.stderr)
        return EXIT_SETUP


if __name__ == "__main__":
    sys.exit(main())
