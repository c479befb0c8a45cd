"""Container root filesystems from cached layers: overlayfs, or a plain unpack.

Each layer is unpacked once into the store (layers/<chain id>), in overlayfs
form (whiteouts as 0/0 character devices, opaque dirs as trusted.overlay.opaque).
A container's rootfs is then one mount:

    overlay  lowerdir=<layer N>:...:<layer 1>, upperdir=containers/<id>/upper,
             workdir=containers/<id>/work  on  containers/<id>/rootfs

so the second container from an image costs two mkdirs and a mount(2).  Where
overlayfs is unavailable (or refused, e.g. the store sits on an overlay or a
filesystem without trusted xattrs), the layers are applied to a plain directory
instead ("apply" mode of unpack.py).
"""
import errno
import json
import os
import re
import shutil

from minirun.errors import MinirunError
from minirun.image import unpack
from minirun.image.store import Store
from minirun.linux import syscalls

_CONTAINER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}\Z")
# mount(2) data is limited to one page.
_MAX_MOUNT_DATA = 4000


def ensure_layers(store, image, progress=None):
    """Unpack every layer of image that is not cached yet; returns the layer
    directories, bottom layer first.  Caller holds store.shared()."""
    store.ensure()
    dirs = []
    for n, (layer, diff_id, chain_id) in enumerate(
            zip(image.layers, image.diff_ids, image.chain_ids), 1):
        final = store.layer_dir(chain_id)
        if not os.path.isdir(final):
            with store.lock_for(chain_id):
                if not os.path.isdir(final):  # another process may have done it meanwhile
                    if progress:
                        progress(f"unpacking layer {n}/{len(image.layers)} {layer['digest'][:19]}")
                    _unpack_layer(store, image, layer, diff_id, final, dirs, n)
        dirs.append(final)
    return dirs


def _unpack_layer(store, image, layer, diff_id, final, lower_dirs, n):
    tmp = store._tmp_name("layer")
    os.mkdir(tmp, 0o755)
    lower_fds = []
    root_fd = None
    try:
        # Lower layers, top first, for hard links that point into them.
        for d in reversed(lower_dirs):
            lower_fds.append(os.open(d, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC))
        root_fd = unpack.open_root(tmp)
        with image.source.open_blob(layer["digest"]) as raw:
            unpack.apply_layer(root_fd, raw, layer["digest"], diff_id,
                               name=f"layer {n} ({layer['digest'][:19]})", overlay=True,
                               lower_fds=lower_fds)
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        for fd in lower_fds:
            os.close(fd)
        if root_fd is not None:
            os.close(root_fd)


def check_container_id(container_id):
    if not isinstance(container_id, str) or not _CONTAINER_ID.match(container_id):
        raise MinirunError(f"invalid container id {container_id!r}")
    return container_id


def container_dir(store, container_id):
    return store.path("containers", check_container_id(container_id))


def prepare_rootfs(image, container_id, store=None, use_overlay=None, progress=None):
    """Make a writable rootfs for a new container from `image` (an Image from
    the store).  Returns (rootfs_path, cleanup); cleanup() unmounts and removes
    everything this made.  use_overlay: None = try overlayfs, fall back to a
    plain unpack; False = plain unpack ($MINIRUN_NO_OVERLAY=1 too); True = must."""
    store = store or image.source
    if not isinstance(store, Store):
        raise MinirunError("prepare_rootfs needs an image from the store")
    if use_overlay is None and os.environ.get("MINIRUN_NO_OVERLAY") == "1":
        use_overlay = False
    cdir = container_dir(store, container_id)
    store.ensure()
    try:
        os.mkdir(cdir, 0o700)
    except FileExistsError:
        raise MinirunError(f"container rootfs {container_id} already exists") from None
    rootfs = os.path.join(cdir, "rootfs")
    mounted = False

    def cleanup():
        nonlocal mounted
        if mounted:
            try:
                syscalls.umount2(rootfs, syscalls.MNT_DETACH)
            except OSError as e:
                if e.errno not in (errno.EINVAL, errno.ENOENT):
                    raise
            mounted = False
        shutil.rmtree(cdir, ignore_errors=True)

    try:
        with open(os.path.join(cdir, "image.json"), "w") as f:
            json.dump({"manifest": image.digest, "config": image.id, "names": image.names}, f)
        os.mkdir(rootfs, 0o755)
        with store.shared():
            if use_overlay is not False and image.layers:
                layer_dirs = ensure_layers(store, image, progress)
                mounted = _mount_overlay(cdir, rootfs, layer_dirs, required=use_overlay is True)
            if not mounted:
                unpack.unpack_image(image, rootfs)
                with open(os.path.join(cdir, "mode"), "w") as f:
                    f.write("plain\n")
    except BaseException:
        cleanup()
        raise
    return rootfs, cleanup


def _mount_overlay(cdir, rootfs, layer_dirs, required):
    upper, work = os.path.join(cdir, "upper"), os.path.join(cdir, "work")
    os.mkdir(upper, 0o755)
    os.mkdir(work, 0o700)
    # overlayfs lists lowerdirs top first; an upper dir's root takes its
    # owner/mode from the mount, so copy them from the top layer's root.
    top = os.stat(layer_dirs[-1])
    os.chown(upper, top.st_uid, top.st_gid)
    os.chmod(upper, top.st_mode & 0o7777)
    data = (f"lowerdir={':'.join(reversed(layer_dirs))},upperdir={upper},workdir={work}")
    if len(data) > _MAX_MOUNT_DATA:
        if required:
            raise MinirunError("too many layers for one overlay mount")
        return False
    try:
        syscalls.mount("overlay", rootfs, "overlay", 0, data,
                       why="container rootfs: cached image layers + a private upper dir")
    except OSError as e:
        if required:
            raise MinirunError(f"cannot mount overlay rootfs: {e.strerror}") from None
        shutil.rmtree(upper, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)
        return False
    return True


def release_rootfs(container_id, store=None):
    """Cleanup for a rootfs prepared by an earlier process (e.g. `minirun rm`)."""
    store = store or Store()
    cdir = container_dir(store, container_id)
    rootfs = os.path.join(cdir, "rootfs")
    try:
        syscalls.umount2(rootfs, syscalls.MNT_DETACH)
    except OSError as e:
        if e.errno not in (errno.EINVAL, errno.ENOENT):
            raise
    shutil.rmtree(cdir, ignore_errors=True)
