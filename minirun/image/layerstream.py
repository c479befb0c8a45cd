"""One layer blob as a forward-only stream of its uncompressed tar.

The blob is read, checked and decompressed on a background thread (zlib,
zstandard and hashlib release the GIL), so inflating overlaps with the file
writes of the extractor's thread.  What is checked, before or while a single
file is written:

* the compression, sniffed from the content (gzip, zstd, or a plain tar),
  must be the one the descriptor's media type names;
* the blob may not be longer than its descriptor's size, and when the
  stream ends it must be exactly that long and hash to its digest;
* the uncompressed tar must hash to the config's diff_id;
* the uncompressed size may not pass Limits.max_bytes (a compression bomb
  stops at the limit, not when the disk is full).
"""
import errno
import hashlib
import os
import queue
import threading
import zlib

from minirun.errors import MinirunError

_CHUNK = 1 << 20
_QUEUE_DEPTH = 6

class UnpackError(MinirunError):
    pass


class DigestMismatch(UnpackError):
    pass


class LimitExceeded(UnpackError):
    pass


def parse_size(text):
    """'512M', '10G', '1000000' -> bytes."""
    text = str(text).strip()
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
    mult = units.get(text[-1:].lower(), 1)
    number = text[:-1] if mult > 1 else text
    if not number.isdigit():
        raise UnpackError(f"invalid size {text!r} (want a number with an optional K, M, G or T)")
    return int(number) * mult


class Limits:
    """What one layer may expand to: uncompressed bytes (the tar stream, and
    each file's size, sparse ones included) and tar entries.  Defaults are
    far above any real image and far below what fills a disk or an inode
    table by surprise; $MINIRUN_UNPACK_MAX_SIZE and $MINIRUN_UNPACK_MAX_ENTRIES
    change them."""

    DEFAULT_BYTES = 64 << 30
    DEFAULT_ENTRIES = 4_000_000

    def __init__(self, max_bytes=DEFAULT_BYTES, max_entries=DEFAULT_ENTRIES):
        if max_bytes < 1 or max_entries < 1:
            raise UnpackError("unpack limits must be positive")
        self.max_bytes, self.max_entries = max_bytes, max_entries

    @classmethod
    def from_env(cls):
        size = os.environ.get("MINIRUN_UNPACK_MAX_SIZE")
        entries = os.environ.get("MINIRUN_UNPACK_MAX_ENTRIES")
        if entries is not None and not entries.strip().isdigit():
            raise UnpackError(f"MINIRUN_UNPACK_MAX_ENTRIES: not a number: {entries!r}")
        return cls(parse_size(size) if size else cls.DEFAULT_BYTES,
                   int(entries) if entries else cls.DEFAULT_ENTRIES)

    def too_big(self, what):
        return LimitExceeded(f"{what} is larger than the unpack limit of "
                             f"{_human(self.max_bytes)} (MINIRUN_UNPACK_MAX_SIZE)")

    def too_many(self, what):
        return LimitExceeded(f"{what} has more than {self.max_entries} entries, the unpack "
                             f"limit (MINIRUN_UNPACK_MAX_ENTRIES)")


def _human(n):
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:g} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024


# The compression each layer media type promises (None: a plain tar).
def expected_compression(media_type):
    if media_type.endswith("+zstd"):
        return "zstd"
    if media_type.endswith(("+gzip", ".gzip")):
        return "gzip"
    return None


# --- decompress + hash, on a thread ---------------------------------------------------------

def sniff_compression(head):
    if head[:2] == b"\x1f\x8b":
        return "gzip"
    # A zstd frame, or a skippable frame (0x184D2A5?) that zstd readers pass over.
    if head[:4] == b"\x28\xb5\x2f\xfd" or (head[1:4] == b"\x2a\x4d\x18" and
                                         head[:1] and head[0] & 0xF0 == 0x50):
        return "zstd"
    return None


class _HashingReader:
    """A raw file wrapper that hashes what is read through it."""

    def __init__(self, raw, hasher, head=b"", limit=None, name="blob"):
        self.raw, self.hasher, self.head = raw, hasher, head
        self.limit, self.name = limit, name
        self.size = 0
        if head:
            hasher.update(head)
            self.size += len(head)

    def read(self, n=-1):
        if self.head:
            out, self.head = self.head, b""
            return out
        data = self.raw.read(n if n and n > 0 else _CHUNK)
        self.hasher.update(data)
        self.size += len(data)
        if self.limit is not None and self.size > self.limit:
            raise UnpackError(f"{self.name}: blob is larger than its descriptor's size "
                              f"{self.limit}")
        return data


class LayerStream:
    """A forward-only file object over the uncompressed tar of one layer.

    Reads `raw` (a binary file object of the blob as stored) on a thread,
    decompresses it (gzip, zstd or none, sniffed from the magic bytes), hashes
    the compressed bytes with the algorithm of `digest` and the uncompressed
    ones with sha256.  Supports what tarfile needs: read, tell, forward seek.
    """

    def __init__(self, raw, digest=None, diff_id=None, name="layer", size=None,
                 media_type=None, limits=None):
        self.name = name
        self.expected_digest = digest
        self.expected_diff_id = diff_id
        self.expected_size = size
        self.media_type = media_type
        self.limits = limits or Limits()
        self.uncompressed_size = 0
        algo = (digest or "sha256:").partition(":")[0]
        self._compressed_hash = hashlib.new(algo)
        self._diff_hash = hashlib.sha256()
        self._raw = raw
        self._queue = queue.Queue(_QUEUE_DEPTH)
        self._stop = False
        self._chunk = b""
        self._off = 0           # offset inside _chunk
        self._pos = 0           # stream position of _chunk[_off]
        self._eof = False
        self.compressed_size = 0
        self.compression = None
        self._thread = threading.Thread(target=self._produce, name=f"inflate {name}", daemon=True)
        self._thread.start()

    # producer side (thread)
    def _put(self, item):
        while not self._stop:
            try:
                self._queue.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def _produce(self):
        try:
            head = self._raw.read(4)
            self.compression = sniff_compression(head)
            if self.media_type is not None and \
                    self.compression != expected_compression(self.media_type):
                raise UnpackError(f"{self.name}: media type {self.media_type} but the content "
                                  f"is {self.compression or 'not compressed'}")
            reader = _HashingReader(self._raw, self._compressed_hash, head,
                                    self.expected_size, self.name)
            if self.expected_size is not None and reader.size > self.expected_size:
                raise UnpackError(f"{self.name}: blob is larger than its descriptor's size "
                                  f"{self.expected_size}")
            diff_hash = self._diff_hash
            if self.compression == "gzip":
                self._inflate_gzip(reader, diff_hash)
            elif self.compression == "zstd":
                import zstandard

                dec = zstandard.ZstdDecompressor().stream_reader(
                    reader, read_size=_CHUNK, read_across_frames=True)
                while not self._stop:
                    out = dec.read(_CHUNK)
                    if not out:
                        break
                    if not self._emit(out, diff_hash):
                        return
            else:
                while not self._stop:
                    out = reader.read(_CHUNK)
                    if not out:
                        break
                    if not self._emit(out, diff_hash):
                        return
            self.compressed_size = reader.size
            self._put(None)
        except BaseException as e:  # handed to the consumer, which raises it
            self._put(e)

    def _emit(self, out, diff_hash):
        diff_hash.update(out)
        self.uncompressed_size += len(out)
        if self.uncompressed_size > self.limits.max_bytes:
            raise self.limits.too_big(f"{self.name}: the uncompressed layer")
        return self._put(out)

    def _inflate_gzip(self, reader, diff_hash):
        dec = zlib.decompressobj(31)
        pending = b""
        while not self._stop:
            if not pending:
                pending = reader.read(_CHUNK)
                if not pending:
                    while not dec.eof:  # output zlib still holds back
                        out = dec.decompress(b"", _CHUNK)
                        if not out:
                            break
                        if not self._emit(out, diff_hash):
                            return
                    if not dec.eof:
                        raise UnpackError(f"{self.name}: truncated gzip stream")
                    return
            if dec.eof:
                # Another gzip member follows (pigz, concatenated streams), or padding.
                if not pending.strip(b"\0"):
                    pending = b""
                    continue
                dec = zlib.decompressobj(31)
            # max_length bounds memory against compression bombs.
            out = dec.decompress(pending, _CHUNK)
            pending = dec.unused_data if dec.eof else dec.unconsumed_tail
            if out and not self._emit(out, diff_hash):
                return

    # consumer side
    def _next_chunk(self):
        if self._eof:
            return False
        item = self._queue.get()
        if item is None:
            self._eof = True
            self._thread.join()
            return False
        if isinstance(item, BaseException):
            self._eof = True
            if isinstance(item, (zlib.error, OSError)) or type(item).__name__ == "ZstdError":
                raise UnpackError(f"{self.name}: cannot decompress: {item}") from item
            raise item
        self._chunk, self._off = item, 0
        return True

    def read(self, n=-1):
        if n is None or n < 0:
            parts = [self._chunk[self._off:]]
            self._pos += len(parts[0])
            self._chunk, self._off = b"", 0
            while self._next_chunk():
                parts.append(self._chunk)
                self._pos += len(self._chunk)
                self._chunk = b""
            return b"".join(parts)
        avail = len(self._chunk) - self._off
        if n <= avail:
            out = self._chunk[self._off:self._off + n]
            self._off += n
            self._pos += n
            return out
        parts = []
        while n > 0:
            avail = len(self._chunk) - self._off
            if avail == 0:
                if not self._next_chunk():
                    break
                continue
            take = min(avail, n)
            parts.append(self._chunk[self._off:self._off + take])
            self._off += take
            self._pos += take
            n -= take
        return b"".join(parts)

    def tell(self):
        return self._pos

    def seek(self, pos, whence=0):
        if whence != 0 or pos < self._pos:
            raise OSError(errno.ESPIPE, "layer stream only seeks forward")
        self.skip(pos - self._pos)
        return self._pos

    def skip(self, n):
        while n > 0:
            avail = len(self._chunk) - self._off
            if avail == 0:
                if not self._next_chunk():
                    raise UnpackError(f"{self.name}: unexpected end of tar data")
                continue
            take = min(avail, n)
            self._off += take
            self._pos += take
            n -= take

    def copy_to_fd(self, fd, n):
        """Write the next n bytes of the stream to fd."""
        while n > 0:
            avail = len(self._chunk) - self._off
            if avail == 0:
                if not self._next_chunk():
                    raise UnpackError(f"{self.name}: unexpected end of tar data")
                continue
            take = min(avail, n)
            view = memoryview(self._chunk)[self._off:self._off + take]
            while view:
                written = os.write(fd, view)
                view = view[written:]
            self._off += take
            self._pos += take
            n -= take

    def finish(self):
        """Drain the stream (tar padding after the end marker counts too) and
        check both digests; returns (digest, diff_id)."""
        self._chunk, self._off = b"", 0
        while self._next_chunk():
            self._pos += len(self._chunk)
            self._chunk = b""
        if self.expected_size is not None and self.compressed_size != self.expected_size:
            raise DigestMismatch(f"{self.name}: blob is {self.compressed_size} bytes, its "
                                 f"descriptor says {self.expected_size}")
        digest = f"{self._compressed_hash.name}:{self._compressed_hash.hexdigest()}"
        diff_id = f"sha256:{self._diff_hash.hexdigest()}"
        if self.expected_digest and digest != self.expected_digest:
            raise DigestMismatch(f"{self.name}: blob {self.expected_digest} digest mismatch "
                                 f"(content hashes to {digest})")
        if self.expected_diff_id and diff_id != self.expected_diff_id:
            raise DigestMismatch(f"{self.name}: uncompressed layer does not match diff_id "
                                 f"{self.expected_diff_id} (hashes to {diff_id})")
        return digest, diff_id

    def close(self):
        self._stop = True
        try:
            while True:
                self._queue.get_nowait()
        except queue.Empty:
            pass
        self._thread.join(timeout=5)
