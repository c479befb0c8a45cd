"""Sparse tar members (GNU 'S', PAX 0.0, 0.1 and 1.0), written as sparse files.

tarfile parses all four forms into one map, `member.sparse`: a list of
(offset, length) data regions of a file of `member.size` bytes; the regions'
bytes follow the header back to back.  We check the map before writing a
byte (a hostile map could point data past the file's end, overlap, or claim
more data than the member holds and so swallow the next headers), then seek
to each region, copy its bytes, and set the size with ftruncate: the holes
are never written, so they take no disk space, as with GNU tar and umoci.
"""
import os

from minirun.image.layerstream import UnpackError


def check_map(member, data_start, data_end, shown):
    """The member's regions, after checking them against its size and the
    bytes it really holds (data_start..data_end in the tar stream)."""
    size = member.size
    regions = list(member.sparse or [])
    end = 0
    stored = 0
    for offset, length in regions:
        if offset < 0 or length < 0:
            raise UnpackError(f"/{shown}: sparse map has a negative offset or length")
        if offset < end:
            raise UnpackError(f"/{shown}: sparse map regions overlap or are out of order")
        if offset + length > size:
            raise UnpackError(f"/{shown}: sparse region {offset}+{length} lies beyond the "
                              f"file size {size}")
        end = offset + length
        stored += length
    if data_start + stored > data_end:
        raise UnpackError(f"/{shown}: sparse map claims {stored} bytes of data, the member "
                          f"holds {max(data_end - data_start, 0)}")
    return regions


def write_sparse(stream, member, dir_fd, name, data_end, shown):
    """Create `name` in dir_fd from a sparse member whose data is next in stream."""
    regions = check_map(member, stream.tell(), data_end, shown)
    fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                 0o600, dir_fd=dir_fd)
    try:
        for offset, length in regions:
            if length:
                os.lseek(fd, offset, os.SEEK_SET)
                stream.copy_to_fd(fd, length)
        os.ftruncate(fd, member.size)
    finally:
        os.close(fd)
