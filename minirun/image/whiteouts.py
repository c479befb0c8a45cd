"""Whiteouts: `.wh.NAME` deletes NAME from lower layers, `.wh..wh..opq` empties
a directory of what lower layers put there; neither touches entries of the
same layer, and both are resolved inside the root.  A mixin of unpack.Extractor."""
import os

from minirun.image.layerstream import UnpackError
from minirun.image.tarheader import OPAQUE, WHITEOUT_PREFIX, _lstat, _rmtree, show
from minirun.linux.paths import open_in_root


class Whiteouts:
    """Extractor's whiteout handling (uses its _layer, _parent, _remove, _touch)."""

    def _whiteout(self, parent, base):
        self._drain()
        if base == OPAQUE:
            return self._opaque(parent)
        victim = base[len(WHITEOUT_PREFIX):]
        if victim in (b"", b".", b".."):
            raise UnpackError(f"invalid whiteout {show(parent)}/{show(base)}")
        vpath = parent + b"/" + victim if parent else victim
        if vpath in self._layer:
            return  # a whiteout only hides lower layers, never its own layer
        pfd = self._parent(parent, create=False)
        if pfd is None:
            return
        existing = _lstat(victim, pfd)
        if existing is not None:
            self._touch(parent, pfd)
            self._remove(pfd, victim, existing)

    def _opaque(self, parent):
        try:
            fd = open_in_root(self.root_fd, parent, os.O_RDONLY | os.O_DIRECTORY)
        except (FileNotFoundError, NotADirectoryError):
            return
        try:
            self._touch(parent, fd)
            self._clear_lower(fd, parent)
        finally:
            os.close(fd)

    def _clear_lower(self, dfd, dpath):
        """Remove what lower layers put in a directory, keeping this layer's."""
        removed = False
        with os.scandir(dfd) as entries:  # str names from an fd: back to bytes
            names = [(os.fsencode(e.name), e.is_dir(follow_symlinks=False)) for e in entries]
        for name, is_dir in names:
            cpath = dpath + b"/" + name if dpath else name
            if cpath in self._layer:
                if is_dir:
                    sub = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=dfd)
                    try:
                        self._clear_lower(sub, cpath)
                    finally:
                        os.close(sub)
                continue
            self._fresh = False
            if is_dir:
                _rmtree(name, dfd)
            else:
                os.unlink(name, dir_fd=dfd)
            removed = True
        if removed:
            self._forget_dirs()
