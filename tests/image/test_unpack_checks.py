"""Unpack every valid image, reject every invalid one.

Valid: names that are not UTF-8 (GNU and PAX headers), sparse files in the
four GNU forms (written by GNU tar, and PAX ones built here) which must land
as sparse files, directory mtimes after writes through a symlink.  Invalid:
a table of images whose blobs disagree with their descriptors (size, digest,
compression, media types) or pass the size and entry limits; each must fail
with one line, no traceback, and leave nothing behind - through the CLI
(`minirun unpack`) and through the store's overlay layer cache."""
import gzip
import hashlib
import io
import os
import shutil
import subprocess
import sys
import tarfile

import pytest
import zstandard
from imagebuild import (MTIME, compress, custom_layout, digest, entry, make_layout, opaque,
                        sparse_member, tar_bytes, whiteout)
from imagetest import diff_trees, need, tree, umoci_unpack

from minirun.image import layout as layoutmod
from minirun.image import overlay, unpack
from minirun.image.store import Store

ENV = dict(os.environ, PATH=f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}")
OCI_GZ = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_TAR = "application/vnd.oci.image.layer.v1.tar"
OCI_ZST = "application/vnd.oci.image.layer.v1.tar+zstd"
DOCKER_GZ = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"


def _unpack_cli(spec, dest, env=None):
    return subprocess.run(["minirun", "unpack", "--no-config", "--image", spec, str(dest)],
                          capture_output=True, text=True, env=dict(ENV, **(env or {})))


def _ours(layout, dest):
    dest.mkdir()
    unpack.unpack_image(layoutmod.OCILayout(str(layout)).resolve("latest"), str(dest))
    return dest


def _overlay_tree(layout, tmp_path):
    store = Store(str(tmp_path / "store")).ensure()
    name, _ = layoutmod.load_archive(store, str(layout), name="test/x")[0]
    rootfs, cleanup = overlay.prepare_rootfs(store.resolve(name), "c", store=store,
                                             use_overlay=True)
    try:
        return tree(rootfs, mtimes=False, nlink=False)
    finally:
        cleanup()


# --- names that are not UTF-8 ------------------------------------------------------------

def _name(raw):
    return raw.decode("utf-8", "surrogateescape")


def _raw_tar(entries, fmt):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt, encoding="utf-8",
                      errors="surrogateescape") as tf:
        for info, data in entries:
            tf.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return buf.getvalue()


@pytest.mark.parametrize("fmt", [tarfile.GNU_FORMAT, tarfile.PAX_FORMAT], ids=["gnu", "pax"])
def test_names_that_are_not_utf8(tmp_path, fmt):
    l1 = [entry("dir", _name(b"d\xff/")), entry("file", _name(b"d\xff/caf\xe9"), b"latin-1"),
          entry("file", _name(b"gone\xfe"), b"x"),
          entry("symlink", _name(b"ln\xfc"), target=_name(b"d\xff/caf\xe9")),
          entry("hardlink", _name(b"hl\xfd"), target=_name(b"d\xff/caf\xe9"))]
    l2 = [whiteout(_name(b"gone\xfe")), entry("file", _name(b"d\xff/new\x80"), b"2")]
    layout = tmp_path / "layout"
    blobs = [(compress(_raw_tar(l, fmt), "gzip"), OCI_GZ, _raw_tar(l, fmt)) for l in (l1, l2)]
    custom_layout(str(layout), blobs)
    dest = tmp_path / "cli"
    p = _unpack_cli(f"{layout}:latest", dest)
    assert p.returncode == 0, p.stderr
    root = os.fsencode(dest / "rootfs")
    assert sorted(os.listdir(root)) == [b"d\xff", b"hl\xfd", b"ln\xfc"]
    assert sorted(os.listdir(root + b"/d\xff")) == [b"caf\xe9", b"new\x80"]
    assert os.readlink(root + b"/ln\xfc") == b"d\xff/caf\xe9"
    assert os.stat(root + b"/hl\xfd").st_ino == os.stat(root + b"/d\xff/caf\xe9").st_ino
    need("umoci")
    theirs = umoci_unpack(str(layout), "latest", str(tmp_path / "umoci"))
    assert diff_trees(tree(dest / "rootfs"), tree(theirs)) == []
    assert diff_trees(_overlay_tree(layout, tmp_path),
                      tree(theirs, mtimes=False, nlink=False)) == []


# --- sparse files ----------------------------------------------------------------------------

SPARSE_SIZE = 12 << 20
# Enough regions that the old GNU form needs extension headers (4 fit in the first).
SPARSE_DATA = [(0, b"head" * 1024), (2 << 20, os.urandom(100_000)),
               ((4 << 20) + 7, b"tail" * 5000)] + \
    [((5 + i) << 20, bytes([i + 1]) * 5000) for i in range(6)]


def _make_sparse_file(path):
    with open(path, "wb") as f:
        for offset, data in SPARSE_DATA:
            f.seek(offset)
            f.write(data)
        f.truncate(SPARSE_SIZE)
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def _assert_sparse(path, expected_sha):
    st = os.stat(path)
    assert st.st_size == SPARSE_SIZE
    with open(path, "rb") as f:
        assert hashlib.sha256(f.read()).hexdigest() == expected_sha
    # Holes, not written zeros: far less allocated than the size.
    assert st.st_blocks * 512 < SPARSE_SIZE // 4, st.st_blocks
    fd = os.open(path, os.O_RDONLY)
    try:
        assert os.lseek(fd, 0, os.SEEK_HOLE) < 2 << 20
    finally:
        os.close(fd)


@pytest.mark.parametrize("form", ["gnu", "posix-0.0", "posix-0.1", "posix-1.0"])
def test_sparse_from_gnu_tar(tmp_path, form):
    need("tar")
    src = tmp_path / "src"
    src.mkdir()
    sha = _make_sparse_file(src / "disk.img")
    tar = tmp_path / "layer.tar"
    args = ["--format=gnu"] if form == "gnu" else \
        ["--format=posix", f"--sparse-version={form.split('-')[1]}",
         "--pax-option=delete=atime,delete=ctime"]
    subprocess.run(["tar", "-c", "--sparse", *args, "--owner=0", "--group=0",
                    f"--mtime=@{MTIME}", "-f", str(tar), "-C", str(src), "disk.img"], check=True)
    raw = tar.read_bytes()
    assert len(raw) < SPARSE_SIZE // 4  # the tar itself holds only the data
    layout = custom_layout(str(tmp_path / "layout"), [(compress(raw, "gzip"), OCI_GZ, raw)])
    dest = tmp_path / "cli"
    p = _unpack_cli(f"{layout}:latest", dest)
    assert p.returncode == 0, p.stderr
    _assert_sparse(dest / "rootfs/disk.img", sha)
    store = Store(str(tmp_path / "store")).ensure()
    name, _ = layoutmod.load_archive(store, layout, name="test/sparse")[0]
    rootfs, cleanup = overlay.prepare_rootfs(store.resolve(name), "c", store=store,
                                             use_overlay=True)
    try:
        _assert_sparse(os.path.join(rootfs, "disk.img"), sha)
    finally:
        cleanup()
    if form == "posix-1.0":
        need("umoci")
        theirs = umoci_unpack(layout, "latest", str(tmp_path / "umoci"))
        assert diff_trees(tree(dest / "rootfs"), tree(theirs)) == []


@pytest.mark.parametrize("version", ["0.1", "1.0"])
def test_sparse_built_here(tmp_path, version):
    regions = [(10, b"abc"), (5000, b"defg"), (70000, b"")]
    raw = tar_bytes([sparse_member("s", 70000, regions, version),
                     entry("file", "after", b"next member intact")])
    dest = tmp_path / "d"
    dest.mkdir()
    fd = unpack.open_root(str(dest))
    try:
        unpack.apply_layer(fd, io.BytesIO(raw), None, digest(raw))
    finally:
        os.close(fd)
    data = (dest / "s").read_bytes()
    assert len(data) == 70000 and data[10:13] == b"abc" and data[5000:5004] == b"defg"
    assert data.count(0) == 70000 - 7
    assert (dest / "after").read_bytes() == b"next member intact"


@pytest.mark.parametrize("raw", [b"", b"\0" * 512, b"\0" * 1024], ids=["0", "512", "1024"])
def test_empty_layers(tmp_path, raw):
    layout = custom_layout(str(tmp_path / "layout"), [(_GZ, OCI_GZ, _RAW),
                                                      (compress(raw, "gzip"), OCI_GZ, raw)])
    p = _unpack_cli(f"{layout}:latest", tmp_path / "out")
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "out/rootfs/etc/hostname").read_bytes() == b"box\n"


# --- directory times -------------------------------------------------------------------------

_OLD = MTIME - 86400
_BASE = [entry("dir", "usr/", mtime=_OLD), entry("dir", "usr/lib/", mtime=_OLD),
         entry("file", "usr/lib/a", b"a", mtime=_OLD), entry("symlink", "lib", target="usr/lib"),
         entry("dir", "opt/", mtime=_OLD), entry("dir", "opt/x/", mtime=_OLD),
         entry("file", "opt/x/f", b"f", mtime=_OLD),
         entry("symlink", "optx", target="/opt/x", mtime=_OLD)]
THROUGH_SYMLINKS = {
    "file": [entry("file", "lib/new", b"via the symlink")],
    "hardlink": [entry("hardlink", "lib/hl", target="usr/lib/a")],
    "whiteout": [whiteout("optx/f")],
    "both-names": [entry("file", "lib/new", b"1"), entry("file", "usr/lib/new2", b"2")],
    "dir-entry-then-write": [entry("dir", "usr/lib/sub/", mtime=_OLD),
                             entry("file", "lib/sub/late", b"after its dir entry")],
    "symlink-file": [entry("symlink", "lib/ln", target="a")],
    "implicit-dir": [entry("file", "lib/newdir/c", b"its parent is not in the layer")],
    "opaque": [opaque("optx"), entry("file", "optx/kept", b"k")],
}


@pytest.mark.parametrize("case", sorted(THROUGH_SYMLINKS))
def test_dir_mtimes_after_writes_through_symlinks(tmp_path, case):
    """A later layer writes into usr/lib through lib -> usr/lib (or removes
    from opt/x through optx -> /opt/x): those directories keep their times."""
    layout = tmp_path / "layout"
    make_layout(str(layout), [_BASE, THROUGH_SYMLINKS[case]])
    ours = _ours(layout, tmp_path / "ours")
    for d in ("usr/lib", "opt/x", "usr/lib/sub"):
        if (ours / d).exists():
            assert os.stat(ours / d).st_mtime == _OLD, d
    need("umoci")
    theirs = umoci_unpack(str(layout), "latest", str(tmp_path / "umoci"))
    # umoci leaves the directory above implicitly made ones at the time of
    # the unpack; we restore it (above), so there only the rest must match.
    mtimes = case != "implicit-dir"
    assert diff_trees(tree(ours, mtimes=mtimes), tree(theirs, mtimes=mtimes)) == []


# --- invalid images: a table ----------------------------------------------------------------

_RAW = tar_bytes([entry("dir", "etc/"), entry("file", "etc/hostname", b"box\n")])
_GZ = compress(_RAW, "gzip")
_ZST = compress(_RAW, "zstd")


def _set(path, value):
    def tamper(manifest, index_entry):
        target = {"manifest": manifest, "index": index_entry}[path[0]]
        for key in path[1:-1]:
            target = target[key]
        if value is _DELETE:
            del target[path[-1]]
        else:
            target[path[-1]] = value(target[path[-1]]) if callable(value) else value
    return tamper


_DELETE = object()

INVALID = {
    # name: (blobs, custom_layout kwargs, a phrase the error must contain)
    "layer-size-too-small": ([(_GZ, OCI_GZ, _RAW)],
                             {"tamper": _set(("manifest", "layers", 0, "size"),
                                             lambda n: n - 10)}, "larger than its descriptor"),
    "layer-size-too-big": ([(_GZ, OCI_GZ, _RAW)],
                           {"tamper": _set(("manifest", "layers", 0, "size"), lambda n: n + 10)},
                           "descriptor"),
    "layer-digest": ([(_GZ, OCI_GZ, _RAW)],
                     {"tamper": _set(("manifest", "layers", 0, "digest"),
                                     digest(_GZ + b"x"))}, "missing"),
    "config-size": ([(_GZ, OCI_GZ, _RAW)],
                    {"tamper": _set(("manifest", "config", "size"), lambda n: n + 1)},
                    "descriptor says"),
    "manifest-size": ([(_GZ, OCI_GZ, _RAW)], {"tamper": _set(("index", "size"), 3)},
                      "descriptor says"),
    "gzip-type-plain-tar": ([(_RAW, OCI_GZ, _RAW)], {}, "content is not compressed"),
    "tar-type-gzip-content": ([(_GZ, OCI_TAR, _RAW)], {}, "content is gzip"),
    "zstd-type-gzip-content": ([(_GZ, OCI_ZST, _RAW)], {}, "content is gzip"),
    "gzip-type-zstd-content": ([(_ZST, OCI_GZ, _RAW)], {}, "content is zstd"),
    "docker-gzip-type-zstd-content": ([(_ZST, DOCKER_GZ, _RAW)],
                                      {"manifest_type": DOCKER_MANIFEST,
                                       "config_type": DOCKER_CONFIG}, "content is zstd"),
    "config-has-layer-type": ([(_GZ, OCI_GZ, _RAW)], {"config_type": OCI_GZ},
                              "media type"),
    "config-type-missing": ([(_GZ, OCI_GZ, _RAW)], {"tamper": _set(
        ("manifest", "config", "mediaType"), _DELETE)}, "media type None"),
    "docker-config-in-oci-manifest": ([(_GZ, OCI_GZ, _RAW)], {"config_type": DOCKER_CONFIG},
                                      "an OCI manifest"),
    "docker-layer-in-oci-manifest": ([(_GZ, DOCKER_GZ, _RAW)], {}, "other family"),
    "oci-layer-in-docker-manifest": ([(_GZ, OCI_GZ, _RAW)],
                                     {"manifest_type": DOCKER_MANIFEST,
                                      "config_type": DOCKER_CONFIG}, "other family"),
    "oci-config-in-docker-manifest": ([(_GZ, DOCKER_GZ, _RAW)],
                                      {"manifest_type": DOCKER_MANIFEST}, "a Docker schema2"),
    "layer-type-missing": ([(_GZ, None, _RAW)], {}, "unsupported"),
    "layer-type-unknown": ([(_GZ, "application/octet-stream", _RAW)], {}, "unsupported"),
    "schema-version-1": ([(_GZ, OCI_GZ, _RAW)],
                         {"tamper": _set(("manifest", "schemaVersion"), 1)}, "schemaVersion"),
    "diff-id-mismatch": ([(_GZ, OCI_GZ, _RAW + b"\0" * 512)], {}, "diff_id"),
    "truncated-gzip": ([(_GZ[:-20], OCI_GZ, _RAW)], {}, "gzip"),
}


def _bomb():
    raw = tar_bytes([entry("file", "zeros", b"\0" * (8 << 20))])
    return [(gzip.compress(raw, 9), OCI_GZ, raw)]


def _bomb_of_small_files():
    raw = tar_bytes([entry("file", f"zeros{i}", b"\0" * (1 << 20)) for i in range(6)])
    return [(gzip.compress(raw, 9), OCI_GZ, raw)]


def _many_entries():
    raw = tar_bytes([entry("file", f"f{i}", b"") for i in range(300)])
    return [(compress(raw, "gzip"), OCI_GZ, raw)]


def _sparse_layer(member):
    raw = tar_bytes([member])
    return [(compress(raw, "gzip"), OCI_GZ, raw)]


def _layer_of(*entries):
    raw = tar_bytes(list(entries))
    return [(compress(raw, "gzip"), OCI_GZ, raw)]


# Header numbers and names no syscall takes (Go's archive/tar, so umoci, calls
# most of them an invalid header): one line each, never a traceback.
INVALID.update({
    "header-mtime-huge": (_layer_of(entry("file", "f", b"x", pax={"mtime": "1" + "0" * 20})),
                          {}, "invalid tar header: mtime"),
    "header-mtime-nan": (_layer_of(entry("file", "f", b"x", pax={"mtime": "nan"})), {},
                         "invalid tar header: mtime"),
    "header-atime-huge": (_layer_of(entry("file", "f", b"x", pax={"atime": "1e300"})), {},
                          "invalid tar header: atime"),
    "header-uid-huge": (_layer_of(entry("file", "f", b"x", pax={"uid": "99999999999"})), {},
                        "invalid tar header: owner"),
    "header-uid-negative": (_layer_of(entry("file", "f", b"x", pax={"uid": "-5"})), {},
                            "invalid tar header: owner"),
    "header-size-negative": (_layer_of(entry("file", "f", b"", pax={"size": "-1"})), {},
                             "negative size"),
    "header-nul-in-path": (_layer_of(entry("file", "f", b"x", pax={"path": "a\0b"})), {},
                           "/a\\x00b: invalid tar header: NUL"),
    "header-nul-in-linkpath": (_layer_of(entry("symlink", "l", pax={"linkpath": "a\0b"})), {},
                               "NUL byte in a name"),
})

LIMITS = {"MINIRUN_UNPACK_MAX_SIZE": "4M", "MINIRUN_UNPACK_MAX_ENTRIES": "200"}
INVALID.update({
    "decompressed-size-limit": (_bomb(), {}, "larger than the unpack limit"),
    "decompressed-size-limit-stream": (_bomb_of_small_files(), {},
                                       "uncompressed layer is larger than the unpack limit"),
    "entry-count-limit": (_many_entries(), {}, "more than 200 entries"),
    "sparse-region-past-end": (_sparse_layer(sparse_member("s", 100, [(90, b"x" * 20)])), {},
                               "beyond the file size"),
    "sparse-regions-overlap": (_sparse_layer(sparse_member(
        "s", 100, [(50, b"x" * 20), (60, b"y" * 5)])), {}, "overlap"),
    "sparse-regions-overlap-v1": (_sparse_layer(sparse_member(
        "s", 100, [(50, b"x" * 20), (10, b"y" * 5)], "1.0")), {}, "out of order"),
    "sparse-claims-more-data": (_sparse_layer(sparse_member(
        "s", 100000, [(0, b"x" * 3000), (50000, b"y" * 3000)], stored=1000)), {},
        "claims 6000 bytes"),
    "sparse-bomb": (_sparse_layer(sparse_member("s", 1 << 40, [(0, b"x")])), {},
                    "larger than the unpack limit"),
})


@pytest.mark.parametrize("case", sorted(INVALID))
def test_invalid_image_is_rejected(tmp_path, case):
    blobs, kwargs, phrase = INVALID[case]
    layout = custom_layout(str(tmp_path / "layout"), blobs, **kwargs)
    dest = tmp_path / "out"
    p = _unpack_cli(f"{layout}:latest", dest, env=LIMITS)
    assert p.returncode != 0, p.stdout
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in p.stderr, p.stderr
    assert phrase in p.stderr, p.stderr
    assert not dest.exists()


@pytest.mark.parametrize("case", ["decompressed-size-limit", "gzip-type-plain-tar",
                                  "layer-size-too-small", "sparse-claims-more-data",
                                  "entry-count-limit"])
def test_invalid_layer_leaves_nothing_in_the_store(tmp_path, case, monkeypatch):
    """The overlay layer cache path: load (which checks what it copies) or
    unpack fails, and the store keeps no layer directory and no temp file."""
    from minirun.errors import MinirunError

    for key, value in LIMITS.items():
        monkeypatch.setenv(key, value)
    blobs, kwargs, phrase = INVALID[case]
    layout = custom_layout(str(tmp_path / "layout"), blobs, **kwargs)
    store = Store(str(tmp_path / "store")).ensure()
    with pytest.raises(MinirunError):
        name, _ = layoutmod.load_archive(store, layout, name="test/bad")[0]
        _, cleanup = overlay.prepare_rootfs(store.resolve(name), "c", store=store,
                                            use_overlay=True)
        cleanup()  # not reached unless the bad layer was accepted
    assert os.listdir(store.path("tmp")) == []
    assert os.listdir(store.path("layers")) == []
    assert os.listdir(store.path("containers")) == []


@pytest.mark.unprivileged  # pure logic
def test_limits_are_configurable_and_checked(monkeypatch):
    monkeypatch.setenv("MINIRUN_UNPACK_MAX_SIZE", "lots")
    with pytest.raises(unpack.UnpackError, match="invalid size 'lots'"):
        unpack.Limits.from_env()
    monkeypatch.setenv("MINIRUN_UNPACK_MAX_SIZE", "2G")
    monkeypatch.setenv("MINIRUN_UNPACK_MAX_ENTRIES", "10")
    limits = unpack.Limits.from_env()
    assert (limits.max_bytes, limits.max_entries) == (2 << 30, 10)
    monkeypatch.delenv("MINIRUN_UNPACK_MAX_SIZE")
    monkeypatch.delenv("MINIRUN_UNPACK_MAX_ENTRIES")
    assert unpack.Limits.from_env().max_bytes == unpack.Limits.DEFAULT_BYTES


@pytest.mark.unprivileged  # pure logic
def test_zstd_skippable_frame_is_zstd():
    skippable = b"\x50\x2a\x4d\x18" + (4).to_bytes(4, "little") + b"meta"
    blob = skippable + zstandard.ZstdCompressor().compress(_RAW)
    assert unpack.sniff_compression(blob[:4]) == "zstd"


def test_docker_archive_with_a_zstd_layer_loads_as_oci(tmp_path, store):
    """Docker schema2 has no zstd layer type: `load` of a docker archive with
    one makes an OCI manifest (not a mixed one), which unpacks."""
    import json

    cfg = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                      "rootfs": {"type": "layers", "diff_ids": [digest(_RAW)]}}).encode()
    index = json.dumps([{"Config": "cfg.json", "RepoTags": ["zst:1"],
                         "Layers": ["layer.tar.zst"]}]).encode()
    archive = tmp_path / "docker.tar"
    with tarfile.open(archive, "w") as tf:
        for name, data in (("cfg.json", cfg), ("layer.tar.zst", _ZST), ("manifest.json", index)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    (name, image), = layoutmod.load_archive(store, str(archive))
    assert image.manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert image.manifest["config"]["mediaType"] == OCI_CONFIG
    dest = tmp_path / "d"
    dest.mkdir()
    unpack.unpack_image(store.resolve(name), str(dest))
    assert (dest / "etc/hostname").read_bytes() == b"box\n"


# --- wrong JSON types anywhere in index, manifest and config --------------------------------

def _json_paths(doc, prefix=()):
    yield prefix
    if isinstance(doc, dict):
        for key, value in doc.items():
            yield from _json_paths(value, prefix + (key,))
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            yield from _json_paths(value, prefix + (i,))


def _replaced(doc, path, value):
    import copy

    if not path:
        return value
    doc = copy.deepcopy(doc)
    target = doc
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return doc


def test_wrong_json_types_are_errors_not_crashes(tmp_path):
    """Every field of the index, manifest and config replaced by values of
    the wrong type: each unpack succeeds or raises a MinirunError (which the
    CLI prints as one line), never anything else."""
    import json

    from imagebuild import write_blob
    from minirun.errors import MinirunError

    layout = custom_layout(str(tmp_path / "layout"), [(_GZ, OCI_GZ, _RAW)])
    index = json.loads((tmp_path / "layout/index.json").read_text())
    blob = tmp_path / "layout/blobs/sha256"
    manifest = json.loads((blob / index["manifests"][0]["digest"][7:]).read_bytes())
    config = json.loads((blob / manifest["config"]["digest"][7:]).read_bytes())
    crashes, cases = [], 0
    for which, doc in (("config", config), ("manifest", manifest), ("index", index)):
        for path in list(_json_paths(doc)):
            for value in (None, True, -1, "x", [], {}):
                cases += 1
                c = _replaced(config, path, value) if which == "config" else config
                m = _replaced(manifest, path, value) if which == "manifest" else manifest
                i = _replaced(index, path, value) if which == "index" else index
                try:
                    if which == "config":
                        m = _replaced(m, ("config",), dict(m["config"], **write_blob(
                            layout, json.dumps(c).encode())))
                    if which != "index":
                        i = _replaced(i, ("manifests", 0), dict(i["manifests"][0], **write_blob(
                            layout, json.dumps(m).encode())))
                except (TypeError, KeyError):
                    continue  # the edit removed what the next one builds on
                (tmp_path / "layout/index.json").write_text(json.dumps(i))
                dest = tmp_path / f"d{cases}"
                dest.mkdir()
                try:
                    unpack.unpack_image(layoutmod.OCILayout(layout).resolve("latest"), str(dest))
                except MinirunError:
                    pass
                except Exception as e:  # noqa: BLE001 - the point of the test
                    crashes.append(f"{which} {path} = {value!r}: {type(e).__name__}: {e}")
                shutil.rmtree(dest)
    assert cases > 150
    assert crashes == []
