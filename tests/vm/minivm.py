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
            the root (virtio-pci, 9p, overlay, virtio-blk), built here as a
            newc cpio archive and cached under a hash of its contents;
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
import fcntl
import glob
import hashlib
import lzma
import os
import shlex
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
GUEST_INIT = os.path.join(HERE, "guest_init.sh")
# What the guest's stage 1 loads before it can mount its root (dependencies
# are added from modules.dep); virtio_blk only when a --disk is attached.
INITRD_MODULES = ("virtio_pci", "9pnet_virtio", "9p", "overlay", "virtio_blk")
# Variables of ours that mean nothing (or something wrong) in the guest.
ENV_SKIP = {"PWD", "OLDPWD", "SHLVL", "_", "TERM", "DISPLAY", "SSH_AUTH_SOCK",
            "SSH_CONNECTION", "SSH_CLIENT", "SSH_TTY"}
EXIT_TIMEOUT, EXIT_SETUP, EXIT_NO_STATUS = 124, 125, 255


class Unavailable(Exception):
    """QEMU cannot run here (no binary, no kernel to boot): a reason to skip."""


class SetupError(Exception):
    """The guest could have run but preparing it failed: a bug to report."""


def cache_dir():
    return os.environ.get("MINIRUN_VM_CACHE", "/var/cache/minirun-vm")


def log(verbose, message):
    if verbose:
        print(f"minivm: {message}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def locked(path):
    """An exclusive flock: parallel runs share one cache."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


def write_atomic(path, data):
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(data)
    os.rename(tmp, path)


# --- host programs -------------------------------------------------------------------
def qemu_binary():
    name = os.environ.get("MINIRUN_VM_QEMU", "qemu-system-x86_64")
    path = shutil.which(name)
    if not path:
        raise Unavailable(f"{name} not found (apt-get install qemu-system-x86)")
    return path


def is_static_elf(path):
    """An x86-64 ELF executable without a PT_INTERP header (no dynamic loader):
    it must run as PID 1 of an initramfs that has no libc."""
    try:
        with open(path, "rb") as f:
            head = f.read(64)
            if len(head) < 64 or head[:5] != b"\x7fELF\x02":
                return False
            phoff, = struct.unpack_from("<Q", head, 32)
            phentsize, phnum = struct.unpack_from("<HH", head, 54)
            f.seek(phoff)
            table = f.read(phentsize * phnum)
    except OSError:
        return False
    PT_INTERP = 3
    return all(struct.unpack_from("<I", table, i * phentsize)[0] != PT_INTERP
               for i in range(phnum))


def static_busybox():
    for path in ("/bin/busybox", "/usr/bin/busybox"):
        if is_static_elf(path):
            return path
    raise Unavailable("no static busybox for the guest's initramfs "
                      "(apt-get install busybox-static)")


# --- the kernel ------------------------------------------------------------------------
class Kernel:
    def __init__(self, image, modules):
        self.image = image          # bzImage
        self.modules = modules      # its /lib/modules/VERSION directory
        self.version = os.path.basename(modules.rstrip("/"))

    def config(self):
        path = os.path.join(os.path.dirname(self.image), f"config-{self.version}")
        try:
            with open(path) as f:
                return f.read()
        except OSError:
            return ""


def find_kernel(verbose=False):
    """The host's installed kernel, else one unpacked in the cache, else
    download the one linux-image-amd64 depends on."""
    image, modules = os.environ.get("MINIRUN_VM_KERNEL"), os.environ.get("MINIRUN_VM_MODULES")
    if image and modules:
        return Kernel(image, modules)
    for version in sorted(_listdir("/lib/modules"), reverse=True):
        image = f"/boot/vmlinuz-{version}"
        if os.path.exists(image) and os.path.exists(f"/lib/modules/{version}/modules.dep"):
            return Kernel(image, f"/lib/modules/{version}")
    kernels = os.path.join(cache_dir(), "kernel")
    cached = _cached_kernel(kernels)
    if cached:
        return cached
    with locked(os.path.join(kernels, ".lock")):
        return _cached_kernel(kernels) or _download_kernel(kernels, verbose)


def _listdir(path):
    try:
        return os.listdir(path)
    except OSError:
        return []


def _cached_kernel(kernels):
    for name in sorted(_listdir(kernels), reverse=True):
        root = os.path.join(kernels, name)
        if os.path.exists(os.path.join(root, ".complete")):
            return _kernel_in(root)
    return None


def _kernel_in(root):
    for moddir in ("lib/modules", "usr/lib/modules"):
        for version in _listdir(os.path.join(root, moddir)):
            image = os.path.join(root, "boot", f"vmlinuz-{version}")
            if os.path.exists(image):
                return Kernel(image, os.path.join(root, moddir, version))
    return None


def _download_kernel(kernels, verbose):
    if not shutil.which("apt-get") or not shutil.which("dpkg-deb"):
        raise Unavailable("no installed kernel (/boot/vmlinuz-*) and no apt-get to fetch one")
    deps = subprocess.run(["apt-cache", "depends", "linux-image-amd64"], capture_output=True,
                          text=True)
    package = next((line.split()[1] for line in deps.stdout.splitlines()
                    if line.strip().startswith("Depends: linux-image-")
                    and line.split()[1][len("linux-image-"):][:1].isdigit()), None)
    if not package:
        raise Unavailable("no installed kernel, and apt does not know linux-image-amd64 "
                          "(apt-get update?)")
    log(verbose, f"fetching {package} (apt-get download)")
    work = tempfile.mkdtemp(prefix=".fetch-", dir=kernels)
    try:
        # The sandbox user _apt could not write into this root-owned directory.
        got = subprocess.run(["apt-get", "download", "-q", "-o", "APT::Sandbox::User=root",
                              "-o", "DPkg::Lock::Timeout=300", package],
                             cwd=work, capture_output=True, text=True)
        debs = glob.glob(os.path.join(work, "*.deb"))
        if got.returncode != 0 or not debs:
            raise Unavailable(f"apt-get download {package} failed: "
                              f"{(got.stderr or got.stdout).strip()[-300:]}")
        tree = os.path.join(work, "tree")
        subprocess.run(["dpkg-deb", "-x", debs[0], tree], check=True)
        kernel = _kernel_in(tree)
        if not kernel:
            raise SetupError(f"{package} has no /boot/vmlinuz-* with its modules")
        if not os.path.exists(os.path.join(kernel.modules, "modules.dep")):
            # The package leaves modules.dep to its postinst (depmod).
            moddir_parent = os.path.dirname(os.path.dirname(os.path.dirname(kernel.modules)))
            subprocess.run([static_busybox(), "depmod", "-b", moddir_parent, kernel.version],
                           check=True)
        open(os.path.join(tree, ".complete"), "w").close()
        final = os.path.join(kernels, package)
        os.rename(tree, final)
        return _kernel_in(final)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def bootable_image(kernel, verbose=False):
    """The uncompressed vmlinux when the kernel supports PVH entry: QEMU then
    skips the bzImage's decompressor, which costs seconds under emulation."""
    if "CONFIG_PVH=y" not in kernel.config() or not _pvh_rom_present():
        return kernel.image
    st = os.stat(kernel.image)
    key = hashlib.sha256(f"{kernel.image}:{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()
    out = os.path.join(cache_dir(), "vmlinux", f"{kernel.version}-{key[:12]}")
    if os.path.exists(out):
        return out
    with open(kernel.image, "rb") as f:
        data = f.read()
    vmlinux = _decompress_payload(data)
    if vmlinux is None:
        log(verbose, "no ELF payload found in the bzImage: booting it as it is")
        return kernel.image
    os.makedirs(os.path.dirname(out), exist_ok=True)
    write_atomic(out, vmlinux)
    return out


def _pvh_rom_present():
    return any(os.path.exists(os.path.join(d, "pvh.bin"))
               for d in ("/usr/share/qemu", "/usr/share/seabios", "/usr/local/share/qemu"))


def _decompress_payload(data):
    """The ELF kernel inside a bzImage: the first stream, at the first magic
    that decompresses to an ELF file (xz and gzip here; zstd through the tool)."""
    magics = [(data.find(b"\xfd7zXZ\x00"), "xz"), (data.find(b"\x1f\x8b\x08"), "gzip"),
              (data.find(b"\x28\xb5\x2f\xfd"), "zstd")]
    for offset, kind in sorted(m for m in magics if m[0] >= 0):
        try:
            if kind == "xz":
                out = lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(data[offset:])
            elif kind == "gzip":
                out = zlib.decompressobj(wbits=31).decompress(data[offset:])
            elif shutil.which("zstd"):
                out = subprocess.run(["zstd", "-qdc"], input=data[offset:],
                                     capture_output=True).stdout
            else:
                continue
        except (lzma.LZMAError, zlib.error):
            continue
        if out[:4] == b"\x7fELF":
            return out
    return None


# --- the initramfs ---------------------------------------------------------------------
def module_closure(modules_dir, names):
    """Relative paths of the modules `names` and everything they depend on,
    dependencies first (the order insmod needs).  Built-in ones are left out."""
    deps, by_name = {}, {}
    with open(os.path.join(modules_dir, "modules.dep")) as f:
        for line in f:
            path, _, rest = line.partition(":")
            deps[path] = rest.split()
            by_name[_module_name(path)] = path
    builtin = set()
    with contextlib.suppress(OSError), open(os.path.join(modules_dir, "modules.builtin")) as f:
        builtin = {_module_name(line.strip()) for line in f}
    order, seen = [], set()

    def visit(path):
        if path in seen:
            return
        seen.add(path)
        for dep in deps.get(path, ()):
            visit(dep)
        order.append(path)

    for name in names:
        key = name.replace("-", "_")
        if key in builtin:
            continue
        if key not in by_name:
            raise SetupError(f"module {name} not in {modules_dir}/modules.dep")
        visit(by_name[key])
    return order


def _module_name(path):
    base = os.path.basename(path)
    return base[:base.index(".ko")].replace("-", "_") if ".ko" in base else base


def _read_module(path):
    """A module file, decompressed (busybox insmod takes plain .ko files)."""
    with open(path, "rb") as f:
        data = f.read()
    if path.endswith(".xz"):
        return lzma.decompress(data)
    if path.endswith(".gz"):
        return zlib.decompress(data, wbits=31)
    if path.endswith(".zst"):
        return subprocess.run(["zstd", "-qdc"], input=data, capture_output=True,
                              check=True).stdout
    return data


class Cpio:
    """Writer of the "newc" cpio format, the one the kernel unpacks as initramfs."""

    def __init__(self):
        self.parts, self.ino = [], 1

    def add(self, name, mode, data=b"", rdev=(0, 0)):
        self.ino += 1
        encoded = name.encode() + b"\0"
        fields = (self.ino, mode, 0, 0, 1, 0, len(data), 0, 0, rdev[0], rdev[1], len(encoded), 0)
        header = b"070701" + b"".join(b"%08X" % v for v in fields)
        self.parts += [header, encoded, _pad(len(header) + len(encoded)), data, _pad(len(data))]

    def dir(self, name):
        self.add(name, 0o040755)

    def file(self, name, data, perm=0o644):
        self.add(name, 0o100000 | perm, data)

    def bytes(self):
        self.add("TRAILER!!!", 0)
        return b"".join(self.parts)


def _pad(n):
    return b"\0" * (-n % 4)


def build_initrd(kernel, busybox, verbose=False):
    """The cached initramfs for this kernel, busybox and init script (built on
    first use; the file name is a hash of everything that goes in)."""
    modules = module_closure(kernel.modules, INITRD_MODULES)
    contents = [("init", _read(GUEST_INIT)), ("busybox", _read(busybox))]
    contents += [(m, _read_module(os.path.join(kernel.modules, m))) for m in modules]
    digest = hashlib.sha256()
    for name, data in contents:
        digest.update(b"%s\0%d\0" % (name.encode(), len(data)) + data)
    path = os.path.join(cache_dir(), "initrd", f"{kernel.version}-{digest.hexdigest()[:16]}.cpio")
    if os.path.exists(path):
        os.utime(path)   # in use: kept by _prune_initrds
        return path
    log(verbose, f"building {path}")
    archive = Cpio()
    for d in ("bin", "dev", "proc", "sys", "mnt", "newroot", "lib", "lib/modules"):
        archive.dir(d)
    archive.add("dev/console", 0o020600, rdev=(5, 1))
    archive.file("init", contents[0][1], 0o755)
    archive.file("bin/busybox", contents[1][1], 0o755)
    archive.add("bin/sh", 0o120777, b"busybox")
    order = []
    for name, data in contents[2:]:
        plain = name[:name.index(".ko") + 3]
        flat = os.path.basename(plain)
        archive.file(f"lib/modules/{flat}", data)
        order.append(flat)
    # Stage 1 loads these in order; virtio_blk is loaded only for --disk.
    archive.file("lib/modules/order", "".join(f"{m}\n" for m in order).encode())
    os.makedirs(os.path.dirname(path), exist_ok=True)
    write_atomic(path, archive.bytes())
    _prune_initrds(os.path.dirname(path), keep=path)
    return path


def _prune_initrds(directory, keep, max_age=86400):
    """Initramfs files of older scripts or kernels, unused for a day, go."""
    now = time.time()
    for name in _listdir(directory):
        path = os.path.join(directory, name)
        with contextlib.suppress(OSError):
            if path != keep and now - os.stat(path).st_mtime > max_age:
                os.unlink(path)


def _read(path):
    with open(path, "rb") as f:
        return f.read()


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
                err.write(_read(os.path.join(job, "console.log")))
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
            err.write(b"\n".join(_read(os.path.join(job, "console.log")).splitlines()[-40:])
                      + b"\n")
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
