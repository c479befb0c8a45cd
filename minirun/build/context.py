"""Where COPY and ADD read from: the build context (minus .dockerignore) or
another stage's / image's root filesystem.

Every path is resolved inside its tree as if chrooted (openat2 with
RESOLVE_IN_ROOT), so `COPY ../../etc/passwd x` or a symlink in the context
cannot reach the host's files.  A source given explicitly follows a symlink
(inside the tree); symlinks met while copying a directory are copied as links.
"""
import fnmatch
import hashlib
import os
import posixpath
import stat

from minirun.build import dockerignore
from minirun.errors import MinirunError
from minirun.linux.paths import open_in_root


class SourceError(MinirunError):
    pass


def clean(path):
    """Lexically clean a source path relative to its tree ('' is the top)."""
    return posixpath.normpath("/" + path).lstrip("/")


class SourceTree:
    remote = False  # files ADD downloaded (never unpacked)

    def __init__(self, path, matcher=None, name="build context"):
        self.path = path
        self.name = name
        self.matcher = matcher
        try:
            self.fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as e:
            raise SourceError(f"{name} {path}: {e.strerror}") from None

    @classmethod
    def context(cls, path):
        try:
            patterns = dockerignore.read_patterns(path)
            matcher = dockerignore.Matcher(patterns) if patterns else None
        except (ValueError, OSError) as e:
            raise SourceError(f".dockerignore: {e}") from None
        return cls(path, matcher)

    def close(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def excluded(self, rel):
        return bool(self.matcher and rel and self.matcher.excluded(rel))

    # --- sources ---------------------------------------------------------------
    def expand(self, pattern):
        """Paths (relative, cleaned) a COPY source names: itself, or its glob matches."""
        rel = clean(pattern)
        if not any(c in rel for c in "*?["):
            if rel and (self.excluded(rel) or not self._exists(rel)):
                raise SourceError(self._missing(pattern))
            return [rel]
        found = [""]
        for part in rel.split("/"):
            nxt = []
            for base in found:
                if not any(c in part for c in "*?["):
                    cand = f"{base}/{part}" if base else part
                    if self._exists(cand):
                        nxt.append(cand)
                    continue
                for name in self._listdir(base):
                    if fnmatch.fnmatchcase(name, part):
                        nxt.append(f"{base}/{name}" if base else name)
            found = nxt
        found = sorted(p for p in found if not self.excluded(p))
        if not found:
            raise SourceError(self._missing(pattern))
        return found

    def _missing(self, pattern):
        if self.matcher is not None or self.name == "build context":
            return (f"COPY failed: file not found in build context or excluded by "
                    f".dockerignore: stat {pattern}: file does not exist")
        return f"COPY failed: stat {pattern}: file does not exist in {self.name}"

    def _exists(self, rel):
        try:
            os.close(open_in_root(self.fd, rel, os.O_PATH))
            return True
        except (FileNotFoundError, NotADirectoryError):
            return False

    def _listdir(self, rel):
        try:
            fd = open_in_root(self.fd, rel, os.O_RDONLY | os.O_DIRECTORY)
        except OSError:
            return []
        try:
            return sorted(os.listdir(fd))
        finally:
            os.close(fd)

    def open(self, rel):
        """(fd, stat) of a source, following a final symlink inside the tree."""
        try:
            fd = open_in_root(self.fd, rel, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
        except OSError:
            fd = open_in_root(self.fd, rel, os.O_PATH)
        return fd, os.fstat(fd)

    def walk(self, rel):
        """Yield (relative name below the source ('' first), stat, dir_fd, name)
        for a source and, if a directory, everything below it not ignored.
        dir_fd/name reach the entry (dir_fd None and name an fd for the top)."""
        fd, st = self.open(rel)
        try:
            yield "", st, None, fd
            if stat.S_ISDIR(st.st_mode):
                yield from self._walk_dir(fd, rel, "")
        finally:
            os.close(fd)

    def _walk_dir(self, dfd, ctx_rel, below):
        for name in sorted(os.listdir(dfd), key=os.fsencode):
            crel = f"{ctx_rel}/{name}" if ctx_rel else name
            brel = f"{below}/{name}" if below else name
            st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
            skip = self.excluded(crel)
            if stat.S_ISDIR(st.st_mode):
                if skip and not (self.matcher and self.matcher.may_contain_included(crel)):
                    continue
                if not skip:
                    yield brel, st, dfd, name
                sub = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                              dir_fd=dfd)
                try:
                    yield from self._walk_dir(sub, crel, brel)
                finally:
                    os.close(sub)
            elif not skip:
                yield brel, st, dfd, name

    # --- cache checksum --------------------------------------------------------
    def checksum(self, sources):
        """sha256 over the sources' names, types, modes, owners, link targets
        and contents (not mtimes: touching a file keeps the cache, as in Docker)."""
        h = hashlib.sha256()
        for src in sources:
            h.update(b"\0src\0" + os.fsencode(src))
            for brel, st, dfd, name in self.walk(src):
                kind = stat.S_IFMT(st.st_mode)
                h.update(b"\0%s\0%o %o %d %d %d" % (os.fsencode(brel), kind,
                                                     stat.S_IMODE(st.st_mode), st.st_uid,
                                                     st.st_gid, st.st_size))
                if stat.S_ISLNK(st.st_mode):
                    h.update(b"->" + os.fsencode(os.readlink(name, dir_fd=dfd)))
                elif stat.S_ISREG(st.st_mode):
                    h.update(_file_digest(dfd, name))
        return "sha256:" + h.hexdigest()


def open_entry(dfd, name):
    """A readable fd for a walked regular file."""
    if dfd is None:  # the top: name is its fd (maybe O_PATH)
        return os.open(f"/proc/self/fd/{name}", os.O_RDONLY | os.O_CLOEXEC)
    return os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dfd)


def _file_digest(dfd, name):
    fd = open_entry(dfd, name)
    h = hashlib.sha256()
    try:
        while True:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            h.update(chunk)
    finally:
        os.close(fd)
    return h.digest()
