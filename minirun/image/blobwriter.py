"""A blob on its way into the store: written to tmp/, hashed as it is
written, and renamed under blobs/ only once its digest and size are checked
(store.py: nothing partial is ever under blobs/)."""
import hashlib
import os

from minirun.errors import MinirunError


class BlobWriter:
    """Write a blob to tmp/, hashing as it goes; commit() verifies and renames.

    Used as a context manager: leaving it without commit() (an error) removes
    the temporary file."""

    def __init__(self, store, digest=None, size=None, what="blob"):
        self.store = store
        self.expected = digest
        self.expected_size = size
        self.what = what
        algo = (digest or "sha256:").partition(":")[0]
        self.hasher = hashlib.new(algo)
        self.size = 0
        self.path = store._tmp_name("blob")
        self.file = open(self.path, "xb", buffering=0)
        self.digest = None

    def write(self, data):
        self.hasher.update(data)
        self.size += len(data)
        view = memoryview(data)
        while view:
            n = self.file.write(view)
            view = view[n:]

    def truncate(self):
        """Start over (a resumed download the server restarted from 0)."""
        self.file.seek(0)
        self.file.truncate()
        algo = self.hasher.name
        self.hasher = hashlib.new(algo)
        self.size = 0

    def commit(self):
        self.file.close()
        digest = f"{self.hasher.name}:{self.hasher.hexdigest()}"
        if self.expected and digest != self.expected:
            raise MinirunError(f"{self.what} {self.expected}: digest mismatch "
                               f"(content hashes to {digest})")
        if self.expected_size is not None and self.size != self.expected_size:
            raise MinirunError(f"{self.what} {self.expected or digest}: size {self.size}, "
                               f"expected {self.expected_size}")
        final = self.store.blob_path(digest)
        os.makedirs(os.path.dirname(final), exist_ok=True)
        os.rename(self.path, final)
        self.path = None
        self.digest = digest
        return digest

    def discard(self):
        if not self.file.closed:
            self.file.close()
        if self.path:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass
            self.path = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.discard()
