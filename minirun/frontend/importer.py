"""`minirun import FILE|- [REF]`: a filesystem tarball (e.g. from `export`) as a
one-layer image, as `docker import` makes it."""
import io

from minirun.errors import MinirunError


def import_tarball(fe, fileobj, ref=None, message="", source="-"):
    """Store the tar stream as a gzip layer of a new image; returns its id."""
    import tarfile
    import time

    from minirun.build import layer as layermod
    from minirun.build.images import State
    from minirun.image import manifest as mf
    from minirun.image import reference

    target = reference.parse(ref) if ref else None  # InvalidReference: one line, exit 1
    store = fe.image_store()
    store.ensure()
    with store.blob_writer(what="layer") as blob:
        sink = layermod.DiffSink(blob)
        head = fileobj.read(512)
        if len(head) < 512 or not _is_tar(head):
            raise MinirunError("the input is not a tar archive")
        stream = _Prefixed(head, fileobj)
        try:
            # Re-written entry by entry: a truncated or corrupt archive is refused.
            with tarfile.open(fileobj=stream, mode="r|*") as tin, \
                    tarfile.open(fileobj=sink, mode="w|", format=tarfile.PAX_FORMAT) as tout:
                for member in tin:
                    tout.addfile(member, tin.extractfile(member) if member.isreg() else None)
        except tarfile.TarError as e:
            raise MinirunError(f"the input is not a valid tar archive: {e}") from None
        sink.gz.close()
        digest = blob.commit()
        size = blob.size
    state = State.scratch()
    state.add_layer({"mediaType": mf.OCI_LAYER_GZIP, "digest": digest, "size": size},
                    "sha256:" + sink.diff.hexdigest())
    state.add_history(f"Imported from {source}", int(time.time()), empty_layer=False,
                      comment=message or None)
    manifest = state.write(store)
    if target is not None:
        store.tag(target, manifest)
    return mf.Image(store, manifest).id


def _is_tar(block):
    import tarfile

    try:
        tarfile.TarInfo.frombuf(block, "utf-8", "surrogateescape")
        return True
    except tarfile.HeaderError:
        return block[:2] == b"\x1f\x8b"  # gzip: tarfile decompresses it


class _Prefixed(io.RawIOBase):
    """A stream that gives `head` first, then the rest of `rest`."""

    def __init__(self, head, rest):
        self.head, self.rest = head, rest

    def readable(self):
        return True

    def readinto(self, b):
        if self.head:
            n = min(len(b), len(self.head))
            b[:n], self.head = self.head[:n], self.head[n:]
            return n
        data = self.rest.read(len(b))
        b[:len(data)] = data
        return len(data)
