"""ADD <url>: files downloaded into a temp dir, then copied like local ones.

As Docker does: the file is named after the URL's last path element, gets
mode 0600 and the Last-Modified time, and is never unpacked; it is fetched
on every build, since only its content can tell whether the cache holds.
"""
import email.utils
import os
import posixpath
import shutil
import urllib.parse

from minirun.build.context import SourceTree
from minirun.errors import MinirunError

_TIMEOUT = 60


class Download:
    def __init__(self, tmp, names):
        self.tmp = tmp
        self.names = names
        self.tree = SourceTree(tmp, name="downloads")
        self.tree.remote = True

    def close(self):
        self.tree.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


def fetch_all(urls, store):
    import urllib.request

    tmp = store._tmp_name("add")
    os.mkdir(tmp, 0o700)
    names = []
    try:
        for url in urls:
            name = posixpath.basename(urllib.parse.urlsplit(url).path)
            if not name or name in (".", ".."):
                raise MinirunError(f"ADD failed: cannot determine a file name from {url}")
            if name in names:
                raise MinirunError(f"ADD failed: two URLs name the file {name}")
            path = os.path.join(tmp, name)
            try:
                with urllib.request.urlopen(url, timeout=_TIMEOUT) as resp, \
                        open(path, "xb") as out:
                    shutil.copyfileobj(resp, out, 1 << 20)
                    modified = resp.headers.get("Last-Modified")
            except OSError as e:
                raise MinirunError(f"ADD failed: {url}: {getattr(e, 'reason', None) or e}") \
                    from None
            os.chmod(path, 0o600)
            if modified:
                try:
                    when = email.utils.parsedate_to_datetime(modified).timestamp()
                    os.utime(path, (when, when))
                except (TypeError, ValueError):
                    pass
            names.append(name)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return Download(tmp, names)
