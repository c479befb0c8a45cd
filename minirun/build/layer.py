"""An OCI layer from an overlayfs upper directory.

The upper dir of a step's overlay holds exactly what the step changed, in
overlayfs form; the layer tar holds it in OCI form:

    character device 0:0 `name`           ->  empty file `.wh.name` (deleted)
    dir with trusted.overlay.opaque=y      ->  the dir, then `dir/.wh..wh..opq`
                                               (a replaced directory)
    other trusted.overlay.* xattrs         ->  dropped (overlay bookkeeping)

Entries are written depth first in byte order of their names, with uid/gid,
mode, xattrs and hard links; owner names, atimes and the gzip header's time
and file name are left out, and with SOURCE_DATE_EPOCH every mtime is
clamped to it, so equal trees give equal digests.  The tar is hashed
(diff_id) and gzipped straight into a store blob (digest) in one pass.
"""
import gzip
import hashlib
import os
import stat
import tarfile

from minirun.image import manifest as mf

WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"
_OVERLAY_XATTR = ("trusted.overlay.", "user.overlay.")


class DiffSink:
    """The uncompressed tar stream: hash it, gzip it into the blob writer."""

    def __init__(self, blob):
        self.diff = hashlib.sha256()
        self.size = 0
        self.gz = gzip.GzipFile(filename="", mode="wb", fileobj=blob, mtime=0, compresslevel=6)

    def write(self, data):
        self.diff.update(data)
        self.size += len(data)
        self.gz.write(data)
        return len(data)


def _xattrs(path):
    out = {}
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return out
    for name in sorted(names):
        if name.startswith(_OVERLAY_XATTR):
            continue
        try:
            value = os.getxattr(path, name, follow_symlinks=False)
        except OSError:
            continue
        out["SCHILY.xattr." + name] = value.decode("utf-8", "surrogateescape")
    return out


def _is_opaque(path):
    for name in ("trusted.overlay.opaque", "user.overlay.opaque"):
        try:
            if os.getxattr(path, name, follow_symlinks=False) == b"y":
                return True
        except OSError:
            pass
    return False


def _is_whiteout(st):
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def is_empty(upper):
    with os.scandir(upper) as it:
        return next(it, None) is None


class _Writer:
    def __init__(self, tar, epoch, exclude=()):
        self.tar = tar
        self.epoch = epoch
        self.exclude = set(exclude)
        self.links = {}  # (dev, ino) -> first name in this layer

    def _info(self, name, st):
        info = tarfile.TarInfo(name)
        info.uid, info.gid = st.st_uid, st.st_gid
        info.uname = info.gname = ""
        info.mode = stat.S_IMODE(st.st_mode)
        mtime = int(st.st_mtime)
        info.mtime = min(mtime, self.epoch) if self.epoch is not None else mtime
        return info

    def walk(self, top, prefix=""):
        with os.scandir(top) as it:
            entries = sorted(it, key=lambda e: os.fsencode(e.name))
        for entry in entries:
            path = entry.path
            name = f"{prefix}{entry.name}"
            if name in self.exclude:
                continue
            st = os.lstat(path)
            if _is_whiteout(st):
                info = self._info(f"{prefix}{WHITEOUT}{entry.name}", st)
                info.type, info.mode, info.uid, info.gid, info.size = tarfile.REGTYPE, 0, 0, 0, 0
                self.tar.addfile(info)
                continue
            info = self._info(name, st)
            info.pax_headers = _xattrs(path)
            if stat.S_ISDIR(st.st_mode):
                info.type = tarfile.DIRTYPE
                self.tar.addfile(info)
                if _is_opaque(path):
                    wh = self._info(f"{name}/{OPAQUE}", st)
                    wh.type, wh.mode, wh.uid, wh.gid = tarfile.REGTYPE, 0, 0, 0
                    self.tar.addfile(wh)
                self.walk(path, name + "/")
                continue
            key = (st.st_dev, st.st_ino)
            if st.st_nlink > 1 and not stat.S_ISDIR(st.st_mode) and key in self.links:
                info.type, info.linkname = tarfile.LNKTYPE, self.links[key]
                self.tar.addfile(info)
                continue
            if st.st_nlink > 1:
                self.links[key] = name
            if stat.S_ISREG(st.st_mode):
                info.size = st.st_size
                fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
                with os.fdopen(fd, "rb") as f:
                    self.tar.addfile(info, f)
            elif stat.S_ISLNK(st.st_mode):
                info.type, info.linkname = tarfile.SYMTYPE, os.readlink(path)
                self.tar.addfile(info)
            elif stat.S_ISFIFO(st.st_mode):
                info.type = tarfile.FIFOTYPE
                self.tar.addfile(info)
            elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                info.type = tarfile.CHRTYPE if stat.S_ISCHR(st.st_mode) else tarfile.BLKTYPE
                info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
                self.tar.addfile(info)
            # sockets are not carried in layers (as in Docker)


def source_date_epoch():
    """SOURCE_DATE_EPOCH as an int, or None."""
    from minirun.errors import MinirunError

    value = os.environ.get("SOURCE_DATE_EPOCH")
    if not value:
        return None
    if not value.isdigit():
        raise MinirunError(f"SOURCE_DATE_EPOCH={value!r}: want seconds since 1970")
    return int(value)


def write_layer(store, upper, epoch=None, exclude=()):
    """Tar+gzip the upper dir into a store blob (leaving out the relative
    paths in `exclude`).  Returns the layer descriptor and its diff_id."""
    with store.blob_writer(what="layer") as blob:
        sink = DiffSink(blob)
        with tarfile.open(fileobj=sink, mode="w|", format=tarfile.PAX_FORMAT,
                          encoding="utf-8", errors="surrogateescape") as tar:
            _Writer(tar, epoch, exclude).walk(upper)
        sink.gz.close()
        digest = blob.commit()
        size = blob.size
    diff_id = "sha256:" + sink.diff.hexdigest()
    return {"mediaType": mf.OCI_LAYER_GZIP, "digest": digest, "size": size}, diff_id


def install_layer_dir(store, upper, chain_id):
    """Keep the step's upper dir as the unpacked layer (layers/<chain id>), so
    the next step needs no unpack.  Returns False when it already exists."""
    final = store.layer_dir(chain_id)
    if os.path.isdir(final):
        return False
    with store.lock_for(chain_id):
        if os.path.isdir(final):
            return False
        os.rename(upper, final)
    return True
