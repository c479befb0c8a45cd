"""What minivm's guest boots: the kernel and the initramfs, found, fetched
and built on the host, and cached (tests/vm/minivm.py runs them).

  kernel  the host's own Debian kernel (/boot/vmlinuz-V with /lib/modules/V),
          else one unpacked in the cache, else the package linux-image-amd64
          depends on, fetched with `apt-get download` (nothing is installed);
          with PVH support, its ELF payload is extracted once so that QEMU
          boots it without the bzImage's decompressor
  initrd  static busybox, guest_init.sh and the modules that reach the root
          (virtio-pci, 9p, overlay, virtio-blk), as a newc cpio archive named
          by a hash of its contents

Unavailable means QEMU cannot run a guest here (a reason to skip a test);
SetupError is a bug or a broken host.
"""
import contextlib
import fcntl
import glob
import hashlib
import lzma
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
GUEST_INIT = os.path.join(HERE, "guest_init.sh")
# What the guest's stage 1 loads before it can mount its root (dependencies
# are added from modules.dep); virtio_blk only when a --disk is attached.
INITRD_MODULES = ("virtio_pci", "9pnet_virtio", "9p", "overlay", "virtio_blk")


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
    vmlinux = decompress_payload(data)
    if vmlinux is None:
        log(verbose, "no ELF payload found in the bzImage: booting it as it is")
        return kernel.image
    os.makedirs(os.path.dirname(out), exist_ok=True)
    write_atomic(out, vmlinux)
    return out


def _pvh_rom_present():
    return any(os.path.exists(os.path.join(d, "pvh.bin"))
               for d in ("/usr/share/qemu", "/usr/share/seabios", "/usr/local/share/qemu"))


def decompress_payload(data):
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


def read_module(path):
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
    contents = [("init", read_bytes(GUEST_INIT)), ("busybox", read_bytes(busybox))]
    contents += [(m, read_module(os.path.join(kernel.modules, m))) for m in modules]
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


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()
