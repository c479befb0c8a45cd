"""Directory times while a layer is applied: adding or removing a child
changes a directory's mtime, so the times of every directory a layer touches
are saved first and put back at the end (umoci does the same), and the layer's
own directory entries get the times they carry.  A mixin of unpack.Extractor."""
import os
import stat

from minirun.image.tarheader import _lstat, _proc
from minirun.linux.paths import open_in_root


class DirTimes:
    """Extractor's directory-time bookkeeping (uses its _ids, _parent, _times)."""

    def _touch(self, path, fd):
        """Remember a directory's times before this layer first changes it.
        Keyed by the directory itself, not the name: `lib/x` with lib ->
        usr/lib changes usr/lib, whose times must come back."""
        if path in self._touched_names:
            return
        self._touched_names.add(path)
        key = self._ids.get(fd)
        st = os.fstat(fd)
        key = key or (st.st_dev, st.st_ino)
        if key not in self._touched:
            self._touched[key] = (path, (st.st_atime_ns, st.st_mtime_ns))

    def _touch_existing_ancestor(self, path):
        """Before implicit parents are made: the nearest existing directory
        above them gets a new child, so its times are saved too."""
        while path:
            path = path.rpartition(b"/")[0]
            try:
                fd = open_in_root(self.root_fd, path, os.O_PATH | os.O_DIRECTORY)
            except OSError:
                continue
            try:
                self._touch(path, fd)
            finally:
                os.close(fd)
            return

    def _restore_dir_times(self):
        # Adding and removing children changed the directories' mtimes: put
        # back the times of directories this layer has no entry for (as umoci
        # does), then set those of the layer's own directory entries.  The
        # saved name is resolved inside the root again (it may go through
        # symlinks), and the times are set on what it resolves to.
        own = {path for path, _ in self._dir_times}
        for path, times in self._touched.values():
            if path in own:
                continue  # set below anyway
            try:
                fd = open_in_root(self.root_fd, path, os.O_PATH | os.O_DIRECTORY)
            except OSError:
                continue  # removed, or no longer a directory
            try:
                os.utime(_proc(fd), ns=times)
            finally:
                os.close(fd)
        for path, m in reversed(self._dir_times):
            if not path:
                os.utime(self.root_fd, ns=self._times(m))
                continue
            parent, _, base = path.rpartition(b"/")
            pfd = self._parent(parent, create=False)
            if pfd is None:
                continue
            st = _lstat(base, pfd)
            if st is not None and stat.S_ISDIR(st.st_mode):
                os.utime(base, ns=self._times(m), dir_fd=pfd, follow_symlinks=False)
