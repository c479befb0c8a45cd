"""Container root filesystems from cached layers: overlayfs, or a plain unpack.

Each layer is unpacked once into the store (layers/<chain id>), in overlayfs
form.  As containerd's overlay snapshotter does, layer N is applied through a
temporary overlay mount whose lower dirs are layers 1..N-1 and whose upper dir
becomes layer N: paths resolve through the symlinks of lower layers exactly as
in a flat unpack, hard links to lower files work (copy-up), and the kernel
itself turns deletions into overlay whiteouts and opaque directories.
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


# No metacopy (a chown would leave a data-less upper file) and no redirects:
# each upper dir must stand alone as a layer.
_APPLY_OPTIONS = "index=off,metacopy=off,redirect_dir=off"


def _copy_root_attrs(src, dst):
    st = os.stat(src)
    os.chown(dst, st.st_uid, st.st_gid)
    os.chmod(dst, st.st_mode & 0o7777)


def _unpack_layer(store, image, layer, diff_id, final, lower_dirs, n):
    tmp = store._tmp_name("layer")
    os.mkdir(tmp, 0o700)
    diff, work, mnt = (os.path.join(tmp, d) for d in ("diff", "work", "mnt"))
    os.mkdir(diff, 0o755)
    mounted = False
    root_fd = None
    try:
        target = diff
        if lower_dirs:
            os.mkdir(work, 0o700)
            os.mkdir(mnt, 0o755)
            _copy_root_attrs(lower_dirs[-1], diff)
            data = f"lowerdir={':'.join(reversed(lower_dirs))},upperdir={diff},workdir={work}"
            if len(data) + len(_APPLY_OPTIONS) + 1 > _MAX_MOUNT_DATA:
                raise MinirunError("too many layers for one overlay mount")
            try:
                syscalls.mount("overlay", mnt, "overlay", 0, f"{data},{_APPLY_OPTIONS}",
                               why="apply a layer on top of the layers below it")
            except OSError as e:
                raise _NoOverlay(e.strerror) from None
            mounted = True
            target = mnt
        root_fd = unpack.open_root(target)
        with image.source.open_blob(layer["digest"]) as raw:
            unpack.apply_layer(root_fd, raw, layer["digest"], diff_id,
                               name=f"layer {n} ({layer['digest'][:19]})",
                               size=layer["size"], media_type=layer["mediaType"])
        os.close(root_fd)
        root_fd = None
        if mounted:
            syscalls.umount2(mnt)
            mounted = False
        os.rename(diff, final)
    finally:
        if root_fd is not None:
            os.close(root_fd)
        if mounted:
            syscalls.umount2(mnt, syscalls.MNT_DETACH)
        shutil.rmtree(tmp, ignore_errors=True)


class _NoOverlay(MinirunError):
    pass


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
                try:
                    layer_dirs = ensure_layers(store, image, progress)
                    mounted = _mount_overlay(cdir, rootfs, layer_dirs,
                                             required=use_overlay is True)
                except _NoOverlay as e:
                    if use_overlay:
                        raise MinirunError(f"cannot mount overlay: {e}") from None
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
    # The merged root takes its owner and mode from the upper dir.
    _copy_root_attrs(layer_dirs[-1], upper)
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
