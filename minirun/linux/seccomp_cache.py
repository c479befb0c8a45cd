"""Compiled seccomp programs, kept per profile in the runtime's state root.

Compiling Docker's default profile takes libseccomp ~20 ms, and an engine
(podman, the front end) passes the same profile for every container: the
program is compiled once and read back afterwards.
"""
import os
import struct

from minirun.linux import seccomp
from minirun.linux.trace import step

_CACHE_MAGIC = b"minirun-seccomp-1\n"
_MAX_ENTRIES = 256


def cached_compile(seccomp_obj, cache_dir):
    """compile_filter(seccomp_obj), remembered in cache_dir (root-only, in the
    runtime's state root).

    The key is a SHA-256 of the profile's text and of everything else the
    program depends on: the libseccomp version, its API level (what the
    running kernel supports), the kernel and the machine.  Only a profile that
    compiled is stored, written whole and renamed into place: a cached program
    is one that compile_filter made."""
    if not seccomp_obj or not isinstance(seccomp_obj, dict):
        return seccomp.compile_filter(seccomp_obj)
    import _sha256

    from minirun import jsonio

    _, lib = seccomp._load()
    uname = os.uname()
    text = jsonio.dumps(seccomp_obj)
    key = _sha256.sha256("\0".join((text, seccomp.library_version(), str(lib.seccomp_api_get()),
                                     uname.release, uname.machine)).encode()).hexdigest()
    path = os.path.join(cache_dir, key)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        fd = -1
    if fd >= 0:
        try:
            data = os.read(fd, 1 << 20)
        finally:
            os.close(fd)
        head = len(_CACHE_MAGIC) + 4
        if data.startswith(_CACHE_MAGIC) and len(data) > head and (len(data) - head) % 8 == 0:
            flags = struct.unpack("=I", data[len(_CACHE_MAGIC):head])[0]
            step("seccomp", f"compiled program from {path} insns={(len(data) - head) // 8} "
                 f"flags={flags:#x}", "the same profile, libseccomp and kernel as when it "
                 "was compiled", "seccomp(2)")
            return data[head:], flags
    program, flags = seccomp.compile_filter(seccomp_obj)
    if program is not None:
        _store(cache_dir, path, _CACHE_MAGIC + struct.pack("=I", flags) + program)
    return program, flags


def _store(cache_dir, path, data):
    """Best effort: a read-only or full state root only costs the next compile."""
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        os.makedirs(cache_dir, mode=0o700, exist_ok=True)
        names = os.listdir(cache_dir)
        if len(names) >= _MAX_ENTRIES:  # profiles that vary per container: start over
            for name in names:
                try:
                    os.unlink(os.path.join(cache_dir, name))
                except OSError:
                    pass
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass
