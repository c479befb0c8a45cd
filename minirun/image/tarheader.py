"""What one tar member says, read safely: its name as bytes (cleaned as if
chrooted), its xattrs (minus overlayfs metadata a layer must not forge), and
the header numbers the kernel could not take.  Shared by unpack.py and the
modules its Extractor is made of (dirtimes.py, whiteouts.py)."""
import os
import shutil

from minirun.image.layerstream import UnpackError

# Names are bytes from the tar header to the syscall: never decoded, so any
# name a layer holds (UTF-8 or not) is written as it is.
WHITEOUT_PREFIX = b".wh."
OPAQUE = b".wh..wh..opq"


def raw_name(text):
    """A name as tarfile decoded it (utf-8, surrogateescape) -> its bytes."""
    return text.encode("utf-8", "surrogateescape")


def show(name):
    """A bytes name for a message (never for a syscall): bad UTF-8 and control
    characters escaped, so one error stays one printable line."""
    text = name.decode("utf-8", "backslashreplace")
    return text if text.isprintable() else \
        "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def clean_name(name):
    """Lexically clean a member name (bytes) relative to the root (b'' is the
    root).  `..` at the top stays at the top, as in a chroot."""
    parts = []
    for part in name.split(b"/"):
        if part in (b"", b"."):
            continue
        if part == b"..":
            if parts:
                parts.pop()
            continue
        parts.append(part)
    return b"/".join(parts)


def _lstat(name, dir_fd):
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def _xattrs(member):
    """The xattrs a member carries in PAX headers (GNU/star and libarchive forms)."""
    out = {}
    for key, value in member.pax_headers.items():
        if key.startswith("SCHILY.xattr."):
            name = key[len("SCHILY.xattr."):]
            out[name] = value.encode("utf-8", "surrogateescape")
        elif key.startswith("LIBARCHIVE.xattr."):
            import base64
            import urllib.parse

            name = urllib.parse.unquote(key[len("LIBARCHIVE.xattr."):])
            out[name] = base64.b64decode(value + "=" * (-len(value) % 4))
    # An image must not be able to forge overlayfs metadata (redirects,
    # whiteouts, metacopy) that minirun's own mounts would then honour.
    return {k: v for k, v in out.items()
            if not k.startswith(("trusted.overlay.", "user.overlay."))}


def _ns(seconds):
    return int(round(float(seconds) * 1_000_000_000))


_ID_MAX = (1 << 32) - 1
_NS_MAX = (1 << 63) - 1


def check_header(m, shown):
    """Numbers a header may carry (base-256 and PAX allow any) that the
    kernel cannot take: an invalid header, as Go's archive/tar (umoci) says."""
    if m.size < 0:
        raise UnpackError(f"/{shown}: invalid tar header: negative size")
    if "\0" in m.name or "\0" in m.linkname:  # only PAX records can carry one
        raise UnpackError(f"/{shown}: invalid tar header: NUL byte in a name")
    if not (0 <= m.uid <= _ID_MAX and 0 <= m.gid <= _ID_MAX):
        raise UnpackError(f"/{shown}: invalid tar header: owner {m.uid}:{m.gid} out of range")
    for field in ("mtime", "atime"):
        value = m.mtime if field == "mtime" else m.pax_headers.get("atime")
        if value is None:
            continue
        try:
            ok = -_NS_MAX <= _ns(value) <= _NS_MAX
        except (ValueError, OverflowError):  # nan, inf, not a number
            ok = False
        if not ok:
            raise UnpackError(f"/{shown}: invalid tar header: {field} {value!r} out of range")
    if (m.ischr() or m.isblk()) and not (0 <= m.devmajor <= _ID_MAX and
                                         0 <= m.devminor <= _ID_MAX):
        raise UnpackError(f"/{shown}: invalid tar header: device {m.devmajor}:{m.devminor}")


def _proc(fd):
    return f"/proc/self/fd/{fd}"


def _rmtree(name, dir_fd):
    # shutil joins str names for its messages; fsdecode/fsencode round-trip
    # any bytes exactly, so the name reaching the kernel is unchanged.
    shutil.rmtree(os.fsdecode(name), dir_fd=dir_fd)
