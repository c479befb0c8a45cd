"""Unpacked trees compared with umoci's, and the layer semantics (whiteouts,
opaque dirs, hardlinks, replacements, compressions, digest checks)."""
import os
import sys
import stat
import subprocess

import pytest
from imagetest import diff_trees, need, tree, umoci_unpack
from imagebuild import (busybox_rootfs_entries, entry, make_layout, opaque, tar_bytes,
                        whiteout)

from minirun.image import layout as layoutmod
from minirun.image import overlay, unpack


def multi_layer_image(path, second_compression="gzip"):
    l1 = busybox_rootfs_entries() + [
        entry("dir", "usr/"), entry("dir", "usr/share/"), entry("dir", "usr/share/locale/"),
        entry("dir", "usr/share/locale/de/"), entry("file", "usr/share/locale/de/x", b"de"),
        entry("file", "usr/share/locale/fr", b"fr"),
        entry("dir", "opt/"), entry("dir", "opt/keep/"), entry("file", "opt/keep/a", b"a"),
        entry("dir", "opt/gone/"), entry("file", "opt/gone/b", b"b"),
        entry("file", "etc/replaced-by-dir", b"file"),
        entry("dir", "etc/dir-replaced-by-file/"),
        entry("file", "etc/dir-replaced-by-file/inner", b"inner"),
        entry("dir", "usr/lib/"), entry("file", "usr/lib/libfoo.so", b"\x7fELF"),
        entry("symlink", "lib", target="usr/lib"),
    ]
    l2 = [
        entry("file", "usr/share/locale/en", b"en"),
        opaque("usr/share/locale"),  # after a new child: that child must survive
        whiteout("opt/gone"),
        whiteout("etc/shadow"),
        entry("dir", "etc/replaced-by-dir/", mode=0o750),
        entry("file", "etc/replaced-by-dir/f", b"now a dir"),
        entry("file", "etc/dir-replaced-by-file", b"now a file", mode=0o600),
        entry("hardlink", "bin/hl-to-lower", target="bin/busybox"),
        entry("file", "etc/passwd", b"root:x:0:0::/root:/bin/sh\n", mode=0o600),
        entry("dir", "home/user/", mode=0o700, uid=1000, gid=1000),
        entry("file", "lib/libbar.so", b"through the lib symlink"),
    ]
    l3 = [
        opaque("opt/keep"),  # before the new child
        entry("file", "opt/keep/new", b"new"),
        whiteout("bin/ls"),
        entry("file", "var/new", b"same layer"),
        whiteout("var/new"),  # a whiteout never hides its own layer
        entry("symlink", "bin/cat", target="/bin/busybox"),
    ]
    return make_layout(path, [(l1, "gzip"), (l2, second_compression), (l3, None)])


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    root = tmp_path_factory.mktemp("images")
    make_layout(str(root / "busybox"), [busybox_rootfs_entries()])
    multi_layer_image(str(root / "multi"))
    multi_layer_image(str(root / "multi-zstd"), "zstd")
    return root


@pytest.mark.parametrize("name", ["busybox", "multi"])
def test_same_tree_as_umoci(images, tmp_path, name):
    need("umoci")
    ours = tmp_path / "ours"
    ours.mkdir()
    image = layoutmod.OCILayout(str(images / name)).resolve("latest")
    unpack.unpack_image(image, str(ours))
    theirs = umoci_unpack(str(images / name), "latest", str(tmp_path / "umoci"))
    assert diff_trees(tree(ours), tree(theirs)) == []


def test_overlay_rootfs_same_as_umoci(images, tmp_path, store):
    """Per-layer cache dirs + overlayfs give the same merged tree, and the
    second container needs no unpack."""
    need("umoci")
    loaded = layoutmod.load_archive(store, str(images / "multi"), name="test/multi")
    image = store.resolve(loaded[0][0])
    rootfs, cleanup = overlay.prepare_rootfs(image, "c1", store=store, use_overlay=True)
    try:
        theirs = umoci_unpack(str(images / "multi"), "latest", str(tmp_path / "umoci"))
        # Only link counts may differ: a hard link made in layer 2 to a file
        # of layer 1 copies the file up, as in every overlay-based engine.
        assert diff_trees(tree(rootfs, mtimes=False, nlink=False),
                          tree(theirs, mtimes=False, nlink=False)) == []
        assert os.stat(os.path.join(rootfs, "bin/hl-to-lower")).st_ino == \
            os.stat(os.path.join(rootfs, "bin/busybox")).st_ino
        # whiteouts really are overlay whiteouts in the cache
        top = store.layer_dir(image.chain_ids[1])
        for gone in ("opt/gone", "usr/share/locale/de", "etc/shadow"):
            st = os.lstat(os.path.join(top, gone))
            assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0, gone
        layers_before = {d: os.stat(store.layer_dir(d)).st_ino for d in image.chain_ids}
        rootfs2, cleanup2 = overlay.prepare_rootfs(image, "c2", store=store, use_overlay=True)
        try:
            assert {d: os.stat(store.layer_dir(d)).st_ino for d in image.chain_ids} == \
                layers_before
            with open(os.path.join(rootfs2, "etc/passwd"), "w") as f:
                f.write("changed\n")
            with open(os.path.join(rootfs, "etc/passwd")) as f:
                assert f.read() == "root:x:0:0::/root:/bin/sh\n"  # containers stay apart
        finally:
            cleanup2()
    finally:
        cleanup()
    assert os.listdir(store.path("containers")) == []


def test_plain_fallback_same_as_overlay(images, tmp_path, store):
    loaded = layoutmod.load_archive(store, str(images / "multi-zstd"), name="test/multi")
    image = store.resolve(loaded[0][0])
    plain, cleanup = overlay.prepare_rootfs(image, "plain", store=store, use_overlay=False)
    ovl, cleanup2 = overlay.prepare_rootfs(image, "ovl", store=store, use_overlay=True)
    try:
        assert not os.path.ismount(plain) and os.path.ismount(ovl)
        assert diff_trees(tree(plain, mtimes=False, nlink=False),
                          tree(ovl, mtimes=False, nlink=False)) == []
    finally:
        cleanup()
        cleanup2()


def test_semantics(images, tmp_path):
    dest = tmp_path / "r"
    dest.mkdir()
    image = layoutmod.OCILayout(str(images / "multi-zstd")).resolve("latest")
    unpack.unpack_image(image, str(dest))
    assert sorted(os.listdir(dest / "usr/share/locale")) == ["en"]
    assert not (dest / "opt/gone").exists() and not (dest / "etc/shadow").exists()
    assert sorted(os.listdir(dest / "opt/keep")) == ["new"]
    assert (dest / "etc/replaced-by-dir/f").read_bytes() == b"now a dir"
    assert (dest / "etc/dir-replaced-by-file").read_bytes() == b"now a file"
    assert os.stat(dest / "bin/hl-to-lower").st_ino == os.stat(dest / "bin/busybox").st_ino
    assert (dest / "usr/lib/libbar.so").exists()  # written through an in-root symlink
    assert not os.path.lexists(dest / "bin/ls") and os.path.islink(dest / "bin/sh")
    assert (dest / "var/new").read_bytes() == b"same layer"
    assert os.stat(dest / "bin/su-like").st_mode & 0o7777 == 0o4755
    assert os.stat(dest / "bin/sgid").st_mode & 0o7777 == 0o2711
    assert os.stat(dest / "home/user").st_mode & 0o777 == 0o700
    assert os.getxattr(dest / "home/user/.profile", "user.note") == b"hello"
    assert os.major(os.stat(dest / "dev/null").st_rdev) == 1
    assert os.stat(dest / "etc/passwd").st_mtime == 1_700_000_000


def test_compressions_and_digest_checks(tmp_path):
    raw = tar_bytes([entry("file", "a", b"x" * 100000)])
    for comp in ("gzip", "zstd", None):
        from imagebuild import compress, digest

        blob = compress(raw, comp)
        dest = tmp_path / f"d-{comp}"
        dest.mkdir()
        fd = unpack.open_root(str(dest))
        try:
            with open_bytes(blob) as f:
                unpack.apply_layer(fd, f, digest(blob), digest(raw))
            assert (dest / "a").read_bytes() == b"x" * 100000
            with open_bytes(blob) as f, pytest.raises(unpack.DigestMismatch, match="diff_id"):
                unpack.apply_layer(fd, f, digest(blob), "sha256:" + "0" * 64)
            with open_bytes(blob) as f, pytest.raises(unpack.DigestMismatch, match="digest"):
                unpack.apply_layer(fd, f, "sha256:" + "0" * 64, digest(raw))
        finally:
            os.close(fd)
    # a truncated gzip stream is an error, not a short file
    from imagebuild import compress

    dest = tmp_path / "trunc"
    dest.mkdir()
    fd = unpack.open_root(str(dest))
    try:
        with open_bytes(compress(raw, "gzip")[:-100]) as f, pytest.raises(unpack.UnpackError):
            unpack.apply_layer(fd, f)
    finally:
        os.close(fd)


def test_unpack_cli_leaves_nothing_on_bad_layer(images, tmp_path):
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(images / "busybox", bad)
    image = layoutmod.OCILayout(str(bad)).resolve("latest")
    blob = bad / "blobs" / "sha256" / image.layers[0]["digest"].split(":")[1]
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF
    blob.write_bytes(bytes(data))
    dest = tmp_path / "out"
    p = subprocess.run(["minirun", "unpack", "--image", f"{bad}:latest", str(dest)],
                       capture_output=True, text=True,
                       env=dict(os.environ, PATH=f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}"))
    assert p.returncode != 0
    assert image.layers[0]["digest"] in p.stderr or "decompress" in p.stderr
    assert "Traceback" not in p.stderr
    assert not dest.exists()


def open_bytes(data):
    import io

    return io.BytesIO(data)


@pytest.fixture(scope="module")
def debian_like(tmp_path_factory):
    from imagebuild import debian_like_layers

    path = str(tmp_path_factory.mktemp("debian-like") / "layout")
    make_layout(path, debian_like_layers())
    return path


def test_debian_like_image_same_as_umoci(debian_like, tmp_path, store):
    """A 4-layer image shaped like Debian's (whiteouts of files and whole
    directories, an opaque dir, replaced files, hard links), built here:
    identical to umoci's tree, mtimes included; the overlay layer cache gives
    the same tree."""
    need("umoci")
    ours = tmp_path / "ours"
    ours.mkdir()
    image = layoutmod.OCILayout(debian_like).resolve("latest")
    entries = unpack.unpack_image(image, str(ours))
    assert entries > 1000 and len(image.layers) == 4
    theirs = umoci_unpack(debian_like, "latest", str(tmp_path / "umoci"))
    assert diff_trees(tree(ours), tree(theirs)) == []
    assert sorted(os.listdir(ours / "usr/share/locale")) == ["C"]
    loaded = layoutmod.load_archive(store, debian_like, name="test/debian-like")
    rootfs, cleanup = overlay.prepare_rootfs(store.resolve(loaded[0][0]), "deb", store=store,
                                             use_overlay=True)
    try:
        assert diff_trees(tree(rootfs, nlink=False), tree(theirs, nlink=False)) == []
    finally:
        cleanup()


def test_same_file_through_a_symlinked_parent(tmp_path):
    """One layer names a file through a symlink, then by its real path: the
    second replaces the first (the extractor's skip-lstat fast path for empty
    destinations must notice the alias)."""
    from imagebuild import compress, digest

    raw = tar_bytes([entry("dir", "usr/"), entry("dir", "usr/lib/"),
                     entry("symlink", "lib", target="usr/lib"),
                     entry("file", "lib/x", b"via symlink"),
                     entry("file", "usr/lib/x", b"real path"),
                     entry("dir", "lib/sub/"), entry("dir", "usr/lib/sub/", mode=0o700)])
    dest = tmp_path / "d"
    dest.mkdir()
    fd = unpack.open_root(str(dest))
    try:
        with open_bytes(compress(raw, "gzip")) as f:
            unpack.apply_layer(fd, f, None, digest(raw))
    finally:
        os.close(fd)
    assert (dest / "usr/lib/x").read_bytes() == b"real path"
    assert os.stat(dest / "usr/lib/sub").st_mode & 0o777 == 0o700
    assert sorted(os.listdir(dest)) == ["lib", "usr"]
