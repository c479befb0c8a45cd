"""Helpers for the image tests (a module name of its own: conftest.py names
clash across test directories)."""
import hashlib
import json
import os
import shutil
import stat
import subprocess
import tempfile
import traceback

import pytest

from minirun.linux import syscalls


def tree(root, mtimes=True, nlink=True):
    """A comparable listing of a directory tree: path -> attributes."""
    out = {}
    root = os.fspath(root)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, root)
            st = os.lstat(full)
            item = {"mode": oct(st.st_mode), "uid": st.st_uid, "gid": st.st_gid}
            if stat.S_ISLNK(st.st_mode):
                item["target"] = os.readlink(full)
            elif stat.S_ISREG(st.st_mode):
                with open(full, "rb") as f:
                    item["sha256"] = hashlib.sha256(f.read()).hexdigest()
                if nlink:
                    item["nlink"] = st.st_nlink
                if mtimes:
                    item["mtime"] = int(st.st_mtime)
            elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                item["rdev"] = (os.major(st.st_rdev), os.minor(st.st_rdev))
            try:
                names = os.listxattr(full, follow_symlinks=False)
            except OSError:
                names = []
            xattrs = {n: os.getxattr(full, n, follow_symlinks=False).hex() for n in names
                      if not n.startswith(("trusted.overlay.", "security.selinux"))}
            if xattrs:
                item["xattrs"] = xattrs
            out[rel] = item
    return out


def diff_trees(a, b):
    lines = []
    for path in sorted(set(a) | set(b)):
        if a.get(path) != b.get(path):
            lines.append(f"{path}: {a.get(path)} != {b.get(path)}")
    return lines


def umoci_unpack(layout, tag, dest):
    subprocess.run(["umoci", "unpack", "--image", f"{layout}:{tag}", dest], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return os.path.join(dest, "rootfs")


def run_sandboxed(fn, setup=None):
    """Run fn() in a forked child that has its own mount namespace, a fresh
    tmpfs as its root (chroot) and nothing else, so an extractor bug can only
    touch that tmpfs.  setup(root) prepares files before the chroot.
    Returns fn's JSON-able result; an exception in fn is returned as
    {"error": class name, "message": str}."""
    import minirun.image.unpack  # noqa: F401  (import everything before the chroot)
    import minirun.image.layout  # noqa: F401
    import minirun.image.overlay  # noqa: F401
    import minirun.image.store  # noqa: F401
    import zstandard  # noqa: F401
    from concurrent.futures import ThreadPoolExecutor  # noqa: F401  (the writer pool)

    sandbox = tempfile.mkdtemp(prefix="minirun-sbx-")
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        result = None
        try:
            syscalls.unshare(syscalls.CLONE_NEWNS)
            syscalls.mount(None, "/", None, syscalls.MS_REC | syscalls.MS_PRIVATE)
            syscalls.mount("tmpfs", sandbox, "tmpfs", 0, "mode=755,size=64m")
            os.mkdir(os.path.join(sandbox, "proc"))
            syscalls.mount("proc", os.path.join(sandbox, "proc"), "proc", 0)
            if setup:
                setup(sandbox)
            os.chroot(sandbox)
            os.chdir("/")
            try:
                result = {"ok": fn()}
            except Exception as e:  # reported to the parent
                result = {"error": type(e).__name__, "message": str(e),
                          "trace": traceback.format_exc()}
        except BaseException as e:
            result = {"setup_error": repr(e), "trace": traceback.format_exc()}
        finally:
            try:
                os.write(w, json.dumps(result).encode())
            finally:
                os._exit(0)
    os.close(w)
    chunks = []
    while True:
        data = os.read(r, 65536)
        if not data:
            break
        chunks.append(data)
    os.close(r)
    os.waitpid(pid, 0)
    os.rmdir(sandbox)
    result = json.loads(b"".join(chunks) or b"null")
    assert result is not None and "setup_error" not in result, result
    return result


def need(tool):
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} not installed")
