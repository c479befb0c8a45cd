"""Helpers for the build tests: minirun and podman, each with a private
store under a temp dir, the same busybox base image in both, and a way to
unpack a built image into a tree and describe it (names, types, modes,
owners, contents, link targets - not times)."""
import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "frontend"))

from fe_helpers import build_layout  # noqa: E402,F401
from minirun_testlib import MINIRUN  # noqa: E402

BASE = "busybox:latest"
# Labels podman adds to every image it builds.
PODMAN_LABELS = ("io.buildah.version",)
CONFIG_FIELDS = ("Env", "Cmd", "Entrypoint", "WorkingDir", "User", "ExposedPorts", "Volumes",
                 "Labels", "Healthcheck", "StopSignal", "Shell", "OnBuild")


def run(cmd, env=None, check=True, timeout=300, input=None):
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        res = subprocess.run(cmd, stdout=out, stderr=err, env=env, timeout=timeout,
                             input=input.encode() if input else None,
                             stdin=None if input else subprocess.DEVNULL)
        out.seek(0)
        err.seek(0)
        res.stdout = out.read().decode(errors="replace")
        res.stderr = err.read().decode(errors="replace")
    if check and res.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, cmd))} exited {res.returncode}:\n"
                             f"{res.stdout}\n{res.stderr}")
    return res


class Minirun:
    """`minirun --root <tmp>/root ...` with MINIRUN_STORE=<tmp>/store."""

    def __init__(self, base):
        self.base = base
        self.store = os.path.join(base, "store")
        self.root = os.path.join(base, "root")
        self.env = dict(os.environ, MINIRUN_STORE=self.store)
        for var in ("MINIRUN_TRACE", "SOURCE_DATE_EPOCH"):
            self.env.pop(var, None)

    def __call__(self, *args, check=True, env=None, **kw):
        return run([MINIRUN, "--root", self.root, *map(str, args)],
                   env=dict(self.env, **(env or {})), check=check, **kw)

    def build(self, context, *args, check=True, env=None):
        return self("build", *args, context, check=check, env=env)

    def image(self, name):
        from minirun.image.store import Store

        return Store(self.store).resolve(name)

    def config(self, name):
        return self.image(name).config

    def unpack(self, name, dest):
        from minirun.image import unpack

        os.makedirs(dest)
        unpack.unpack_image(self.image(name), dest)
        return dest

    def leftovers(self):
        """What a finished build must not leave: temp dirs, container rootfs
        dirs, runtime state, overlay mounts under the store."""
        out = []
        for sub in ("tmp", "containers"):
            d = os.path.join(self.store, sub)
            if os.path.isdir(d):
                out += [f"{sub}/{n}" for n in os.listdir(d) if not n.endswith(".lock")]
        if os.path.isdir(self.root):
            out += [f"root/{n}" for n in os.listdir(self.root) if not n.startswith(".")]
        with open("/proc/self/mountinfo") as f:
            out += [line.split()[4] for line in f if self.base in line.split()[4]]
        return out


class Podman:
    """podman with private storage (overlay) and its own containers.conf."""

    def __init__(self, base):
        self.base = base
        conf = os.path.join(base, "containers.conf")
        with open(conf, "w") as f:
            f.write('[containers]\ndefault_ulimits = []\n[engine]\nruntime = "runc"\n')
        self.env = dict(os.environ, CONTAINERS_CONF=conf)
        self.env.pop("SOURCE_DATE_EPOCH", None)
        self.global_args = ["--root", os.path.join(base, "root"),
                            "--runroot", os.path.join(base, "runroot"),
                            "--storage-driver", "overlay", "--cgroup-manager", "cgroupfs"]

    def __call__(self, *args, check=True, **kw):
        return run(["podman", *self.global_args, *map(str, args)], env=self.env, check=check,
                   **kw)

    def load_layout(self, layout, name):
        ident = self("pull", "-q", f"oci:{layout}:latest").stdout.split()[-1]
        self("tag", ident, f"docker.io/library/{name}")

    def build(self, context, tag, *args):
        return self("build", "--format", "docker", "--network", "host", "--pull=never",
                    "--layers", "-t", tag, *args, context)

    def save(self, name, dest):
        self("save", "--format", "docker-dir", "-o", dest, name)
        with open(os.path.join(dest, "manifest.json")) as f:
            manifest = json.load(f)
        with open(os.path.join(dest, manifest["config"]["digest"].split(":")[1])) as f:
            config = json.load(f)
        return manifest, config

    def unpack(self, name, dest):
        from minirun.image import unpack

        saved = dest + ".saved"
        manifest, config = self.save(name, saved)
        os.makedirs(dest)
        fd = os.open(dest, os.O_RDONLY | os.O_DIRECTORY)
        try:
            for layer in manifest["layers"]:
                with open(os.path.join(saved, layer["digest"].split(":")[1]), "rb") as raw:
                    unpack.apply_layer(fd, raw)
        finally:
            os.close(fd)
        shutil.rmtree(saved)
        return dest, config

    def cleanup(self):
        """Containers and images go; then any mount podman keeps under its
        private root (overlay driver).  Not `system reset`: it would also
        remove the host's podman networks."""
        self("rm", "-af", check=False)
        self("rmi", "-af", check=False)
        unmount_below(self.base)


def unmount_below(base):
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    for point in sorted((p for p in points if p.startswith(base + "/")), key=len, reverse=True):
        subprocess.run(["umount", "-l", point], check=False)


def describe(root):
    """{path: (type, mode, uid, gid, content digest or link target)}."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root)
            st = os.lstat(path)
            kind = stat.S_IFMT(st.st_mode)
            if stat.S_ISREG(st.st_mode):
                with open(path, "rb") as f:
                    what = hashlib.sha256(f.read()).hexdigest()[:16]
            elif stat.S_ISLNK(st.st_mode):
                what = os.readlink(path)
            elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                what = st.st_rdev
            else:
                what = None
            out[rel] = (kind, oct(stat.S_IMODE(st.st_mode)), st.st_uid, st.st_gid, what)
    return out


def drop_podman_mountpoints(podman_tree, minirun_tree):
    """buildah leaves the empty files it bind-mounted over (/etc/hosts,
    /etc/resolv.conf) in the layer when the image had none; Docker does not."""
    for rel in ("etc/hosts", "etc/resolv.conf", "etc/hostname", "run/.containerenv"):
        entry = podman_tree.get(rel)
        if entry and rel not in minirun_tree and entry[4] == hashlib.sha256(b"").hexdigest()[:16]:
            del podman_tree[rel]
    return podman_tree


def config_fields(config):
    cfg = dict(config.get("config") or {})
    labels = {k: v for k, v in (cfg.get("Labels") or {}).items() if k not in PODMAN_LABELS}
    cfg["Labels"] = labels
    return {k: cfg.get(k) or None for k in CONFIG_FIELDS}


def write_tree(base, files):
    """files: {relative path: str content | bytes | ("link", target) |
    ("hardlink", earlier relative path) | ("dir",)}"""
    for rel, content in files.items():
        path = os.path.join(base, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if isinstance(content, tuple) and content[0] == "link":
            os.symlink(content[1], path)
        elif isinstance(content, tuple) and content[0] == "hardlink":
            os.link(os.path.join(base, content[1]), path)
        elif isinstance(content, tuple) and content[0] == "dir":
            os.makedirs(path, exist_ok=True)
        else:
            with open(path, "wb") as f:
                f.write(content.encode() if isinstance(content, str) else content)
    return base
