"""A step's writable root filesystem: an overlay of the image's cached layers
with a fresh upper directory, which then becomes the step's layer.

    <store>/tmp/build-.../upper    what the step changes (overlay form)
                         /work     overlayfs' work dir (same filesystem)
    <scratch>/<n>/rootfs           the mount point
                 /bundle           RUN only: config.json, hosts, hostname, ...
    <scratch>/init-<n>             RUN only: mount points the runtime needs
                                   (/proc, /sys, /dev, /etc/hosts, ...) as a
                                   lower layer, so they never enter the image
                                   (Docker's "init layer"); one per base

The scratch area is a tmpfs the build mounts once (Scratch): what only lives
for a step costs no disk I/O, which dominates a RUN step on a busy disk.

Mounted with index=off,metacopy=off,redirect_dir=off, as the store's own
layer unpacks are: the upper dir must stand alone as a layer.  On scratch
with nothing below, the upper dir is the rootfs itself.
"""
import os
import shutil
import stat

from minirun.build import layer as layermod
from minirun.errors import MinirunError
from minirun.image import manifest as mf
from minirun.image import overlay
from minirun.linux import syscalls

_OPTIONS = "index=off,metacopy=off,redirect_dir=off"
# Mount points a RUN container needs: (path, is_dir).
INIT_ENTRIES = (("proc", True), ("sys", True), ("dev", True), ("etc", True),
                ("etc/hosts", False), ("etc/resolv.conf", False), ("etc/hostname", False))


class Scratch:
    """A tmpfs for one build, at <store>/tmp/build-.../mnt (store.gc unmounts
    such a mount left by a killed process)."""

    def __init__(self, store):
        self.base = store._tmp_name("build")
        os.mkdir(self.base, 0o700)
        self.path = os.path.join(self.base, "mnt")
        os.mkdir(self.path, 0o700)
        self.mounted = False
        self.count = 0
        self.inits = {}  # layer dirs -> init layer
        try:
            syscalls.mount("tmpfs", self.path, "tmpfs", 0, "mode=0700",
                           why="the build's scratch space: step mount points, bundles")
            self.mounted = True
        except OSError:
            pass  # a plain directory then

    def new_dir(self):
        self.count += 1
        path = os.path.join(self.path, str(self.count))
        os.mkdir(path, 0o700)
        return path

    def close(self):
        if self.mounted:
            syscalls.umount2(self.path, syscalls.MNT_DETACH)
            self.mounted = False
        shutil.rmtree(self.base, ignore_errors=True)


class Workspace:
    def __init__(self, store, state, scratch=None):
        self.store = store
        self.state = state
        self.scratch = scratch
        self.tmp = store._tmp_name("build")
        os.mkdir(self.tmp, 0o700)
        self.upper = os.path.join(self.tmp, "upper")
        os.mkdir(self.upper, 0o755)
        self.step_dir = scratch.new_dir() if scratch else self.tmp
        self.rootfs = os.path.join(self.step_dir, "rootfs")
        os.mkdir(self.rootfs, 0o755)
        self.mounted = False
        self.layer_dirs = []
        if state.layers:
            image = mf.Image(store, state.digest)
            self.layer_dirs = overlay.ensure_layers(store, image)

    def _find(self, rel):
        """lstat of rel in the topmost layer that has it (None if absent or
        whited out) - enough for top-level directories."""
        for d in reversed(self.layer_dirs):
            try:
                st = os.lstat(os.path.join(d, rel))
            except (FileNotFoundError, NotADirectoryError):
                continue
            if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
                return None
            return st
        return None

    def make_init_layer(self):
        key = tuple(self.layer_dirs)
        if self.scratch and key in self.scratch.inits:
            return self.scratch.inits[key]
        if self.scratch:
            init = os.path.join(self.scratch.path, f"init-{len(self.scratch.inits)}")
        else:
            init = os.path.join(self.tmp, "init")
        os.mkdir(init, 0o755)
        if self.layer_dirs:
            top = os.stat(self.layer_dirs[-1])
            os.chown(init, top.st_uid, top.st_gid)
            os.chmod(init, stat.S_IMODE(top.st_mode))
        for rel, is_dir in INIT_ENTRIES:
            path = os.path.join(init, rel)
            if not os.path.isdir(os.path.dirname(path)):
                continue  # /etc is not a directory in this image
            st = self._find(rel)
            if st is not None and not stat.S_ISDIR(st.st_mode) and is_dir:
                continue  # e.g. /etc is a symlink: leave it alone
            if st is not None and stat.S_ISLNK(st.st_mode):
                continue
            if is_dir:
                os.mkdir(path, 0o755)
            else:
                os.close(os.open(path, os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o644))
            if st is not None:  # same owner and mode as the image's entry
                os.chown(path, st.st_uid, st.st_gid)
                os.chmod(path, stat.S_IMODE(st.st_mode))
        if self.scratch:
            self.scratch.inits[key] = init
        return init

    def mount(self, init=None):
        lowers = ([init] if init else []) + list(reversed(self.layer_dirs))
        if not lowers:
            os.rmdir(self.rootfs)
            os.symlink(self.upper, self.rootfs)
            return self.upper
        top = lowers[0]
        st = os.stat(top)
        os.chown(self.upper, st.st_uid, st.st_gid)
        os.chmod(self.upper, stat.S_IMODE(st.st_mode))
        work = os.path.join(self.tmp, "work")
        os.mkdir(work, 0o700)
        data = f"lowerdir={':'.join(lowers)},upperdir={self.upper},workdir={work},{_OPTIONS}"
        if len(data) > 4000:
            raise MinirunError("too many layers for one overlay mount")
        try:
            syscalls.mount("overlay", self.rootfs, "overlay", 0, data,
                           why="a build step's rootfs: the image's layers + a fresh upper dir")
        except OSError as e:
            raise MinirunError(f"cannot mount the build step's overlay: {e.strerror}") from None
        self.mounted = True
        return self.rootfs

    def unmount(self):
        if self.mounted:
            syscalls.umount2(self.rootfs, syscalls.MNT_DETACH)
            self.mounted = False

    def commit(self, state, epoch):
        """Turn the upper dir into a layer of `state`; False when nothing changed."""
        self.unmount()
        if layermod.is_empty(self.upper):
            return False
        descriptor, diff_id = layermod.write_layer(self.store, self.upper, epoch)
        state.add_layer(descriptor, diff_id)
        chain_id = mf.chain_ids(state.diff_ids)[-1]
        layermod.install_layer_dir(self.store, self.upper, chain_id)
        return True

    def cleanup(self):
        try:
            self.unmount()
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)
            if self.step_dir != self.tmp:
                shutil.rmtree(self.step_dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.cleanup()


def open_root(path):
    return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
