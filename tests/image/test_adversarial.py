"""Hostile layers: every known escape pattern, in both unpack paths
(flat apply, and the per-layer overlay cache + overlay rootfs).

Each case runs in a forked child with its own mount namespace, chrooted into
a fresh tmpfs that holds /outside (what must stay untouched), /victim and the
destination, so a bug in the extractor can only damage that tmpfs.
"""
import hashlib
import io
import os

import pytest
from imagetest import run_sandboxed
from imagebuild import entry, make_layout, opaque, sparse_member, tar_bytes, whiteout

PWN = b"pwned"
_NAME = b"e\xff".decode("utf-8", "surrogateescape")

CASES = {
    # name: (layers, must_fail)
    "dotdot-name": ([[entry("file", "../../victim", PWN)]], False),
    "absolute-name": ([[entry("file", "/outside/secret", PWN)]], False),
    "symlink-then-write": ([[entry("symlink", "evil", target="/outside"),
                             entry("file", "evil/secret", PWN)]], False),
    "relative-symlink-escape": ([[entry("symlink", "evil", target="../../../../outside"),
                                  entry("file", "evil/secret", PWN)]], False),
    "symlink-then-write-next-layer": ([[entry("symlink", "evil", target="/outside")],
                                       [entry("file", "evil/secret", PWN),
                                        entry("dir", "evil/newdir/")]], False),
    "symlink-chain": ([[entry("symlink", "a", target="/"),
                        entry("symlink", "b", target="a/outside")],
                       [entry("file", "b/secret", PWN)]], False),
    "symlink-last-component": ([[entry("symlink", "evil", target="/outside/secret")],
                                [entry("file", "evil", PWN, mode=0o777)]], False),
    "chmod-chown-through-symlink": ([[entry("symlink", "evil", target="/outside/secret"),
                                      entry("symlink", "evildir", target="/outside")],
                                     [entry("dir", "evil/", mode=0o777, uid=1234),
                                      entry("dir", "evildir/", mode=0o777, uid=1234)]], False),
    "hardlink-absolute": ([[entry("hardlink", "hl", target="/outside/secret")],
                           [entry("file", "hl", PWN)]], True),
    "hardlink-dotdot": ([[entry("hardlink", "hl", target="../../outside/secret")]], True),
    "hardlink-through-symlink": ([[entry("symlink", "evil", target="/outside"),
                                   entry("hardlink", "hl", target="evil/secret")]], True),
    "whiteout-through-symlink": ([[entry("symlink", "evil", target="/outside")],
                                  [whiteout("evil/secret")]], False),
    "whiteout-dir-through-symlink": ([[entry("symlink", "evil", target="/outside/..")],
                                      [whiteout("evil/outside")]], False),
    "opaque-through-symlink": ([[entry("symlink", "evil", target="/outside")],
                                [opaque("evil")]], False),
    "whiteout-dotdot": ([[entry("file", "x/.wh..", b"")]], True),
    "whiteout-escaping-name": ([[entry("file", "../.wh.outside", b"")]], False),
    "root-becomes-symlink": ([[entry("symlink", "./", target="/outside")],
                              [entry("file", "secret", PWN)]], True),
    "root-becomes-symlink-dotdot": ([[entry("dir", "foo/"),
                                      entry("symlink", "foo/..", target="/outside")],
                                     [entry("file", "secret", PWN)]], True),
    "root-becomes-hardlink": ([[entry("file", "x", b"x"), entry("hardlink", ".", target="x")]],
                              True),
    "pax-path-override": ([[entry("file", "innocent", PWN,
                                  pax={"path": "../../outside/secret"})]], False),
    "pax-linkpath-override": ([[entry("hardlink", "hl", pax={"linkpath": "/outside/secret"})],
                               [entry("file", "hl", PWN)]], True),
    "pax-symlink-then-write": ([[entry("symlink", "innocent", target="x",
                                       pax={"path": "evil", "linkpath": "/outside"})],
                                [entry("file", "evil/secret", PWN)]], False),
    "device-node": ([[entry("char", "dev/mem", dev=(1, 1)),
                      entry("char", "../../outside/null", dev=(1, 3))]], False),
    "symlink-loop": ([[entry("symlink", "a", target="b"), entry("symlink", "b", target="a")],
                      [entry("file", "a/x", PWN)]], True),
    "dir-over-symlink": ([[entry("symlink", "d", target="/outside")],
                          [entry("dir", "d/"), entry("file", "d/secret", PWN)]], False),
    # Names that are not UTF-8 and sparse members take the same checked paths.
    "non-utf8-symlink-then-write": ([[entry("symlink", _NAME, target="/outside")],
                                     [entry("file", _NAME + "/secret", PWN)]], False),
    "non-utf8-dotdot": ([[entry("file", "../" + _NAME + "/../victim", PWN)]], False),
    "sparse-through-symlink": ([[entry("symlink", "evil", target="/outside")],
                                [sparse_member("evil/secret", 4096, [(0, PWN)])]], False),
    "sparse-over-symlink": ([[entry("symlink", "evil", target="/outside/secret")],
                             [sparse_member("evil", 4096, [(100, PWN)], "1.0")]], False),
}


def _setup(root):
    os.makedirs(os.path.join(root, "outside", "sub"))
    with open(os.path.join(root, "outside", "secret"), "wb") as f:
        f.write(b"secret")
    os.chmod(os.path.join(root, "outside", "secret"), 0o600)
    with open(os.path.join(root, "outside", "sub", "keep"), "wb") as f:
        f.write(b"keep")
    with open(os.path.join(root, "victim"), "wb") as f:
        f.write(b"victim")
    os.mkdir(os.path.join(root, "dest"))


def _snapshot():
    """Everything outside /dest and /store that a bug could touch."""
    out = {}
    for top in ("/outside", "/victim"):
        for dirpath, dirs, files in os.walk(top) if os.path.isdir(top) else [("/", [], ["victim"])]:
            for name in sorted(dirs + files):
                p = os.path.join(dirpath, name)
                st = os.lstat(p)
                digest = ""
                if os.path.isfile(p) and not os.path.islink(p):
                    with open(p, "rb") as f:
                        digest = hashlib.sha256(f.read()).hexdigest()
                out[p] = (st.st_mode, st.st_uid, st.st_nlink, st.st_ino, digest)
    out["/"] = sorted(n for n in os.listdir("/") if n != "store")
    return out


def _flat(layers):
    from minirun.image import unpack

    def run():
        before = _snapshot()
        errors = []
        fd = unpack.open_root("/dest")
        try:
            for layer in layers:
                try:
                    unpack.apply_layer(fd, io.BytesIO(tar_bytes(layer)))
                except unpack.UnpackError as e:
                    errors.append(str(e))
        finally:
            os.close(fd)
        return {"intact": _snapshot() == before, "errors": errors,
                "dest": sorted(os.listdir("/dest"))}
    return run


def _overlay(layers):
    def setup(root):
        _setup(root)
        make_layout(os.path.join(root, "layout"), layers, compression=None)

    def run():
        from minirun.errors import MinirunError
        from minirun.image import layout, overlay
        from minirun.image.store import Store

        before = _snapshot()
        store = Store("/store").ensure()
        errors = []
        try:
            name, _ = layout.load_archive(store, "/layout", name="evil")[0]
            rootfs, cleanup = overlay.prepare_rootfs(store.resolve(name), "c", store=store,
                                                     use_overlay=True)
            cleanup()
        except MinirunError as e:
            errors.append(str(e))
        leftovers = os.listdir("/store/tmp") + os.listdir("/store/containers")
        return {"intact": _snapshot() == before, "errors": errors, "leftovers": leftovers}
    return setup, run


@pytest.mark.parametrize("case", sorted(CASES))
def test_flat_unpack_contains(case):
    layers, must_fail = CASES[case]
    result = run_sandboxed(_flat(layers), _setup)
    assert "ok" in result, result
    ok = result["ok"]
    assert ok["intact"], f"{case}: something outside the destination changed: {ok}"
    assert bool(ok["errors"]) == must_fail, ok
    if case in ("dotdot-name",):
        assert "victim" in ok["dest"]  # landed inside, at the cleaned path


@pytest.mark.parametrize("case", sorted(CASES))
def test_overlay_cache_contains(case):
    layers, must_fail = CASES[case]
    setup, run = _overlay(layers)
    result = run_sandboxed(run, setup)
    assert "ok" in result, result
    ok = result["ok"]
    assert ok["intact"], f"{case}: something outside the store changed: {ok}"
    assert bool(ok["errors"]) == must_fail, ok
    assert ok["leftovers"] == [], "a failed unpack left files in the store"


def test_preexisting_hardlink_is_replaced_not_written():
    """A destination file hard-linked to a file elsewhere is replaced, so the
    other name keeps its content (umoci's rule: never write in place)."""
    def setup(root):
        _setup(root)
        os.link(os.path.join(root, "outside", "secret"), os.path.join(root, "dest", "passwd"))

    def run():
        from minirun.image import unpack

        fd = unpack.open_root("/dest")
        try:
            unpack.apply_layer(fd, io.BytesIO(tar_bytes([entry("file", "passwd", PWN)])))
        finally:
            os.close(fd)
        with open("/outside/secret", "rb") as f, open("/dest/passwd", "rb") as g:
            return [f.read().decode(), g.read().decode()]

    assert run_sandboxed(run, setup) == {"ok": ["secret", "pwned"]}


def test_overlay_xattrs_from_layers_are_dropped():
    def run():
        from minirun.image import unpack

        fd = unpack.open_root("/dest")
        try:
            unpack.apply_layer(fd, io.BytesIO(tar_bytes([
                entry("dir", "d/", xattrs={"trusted.overlay.opaque": "y",
                                           "trusted.overlay.redirect": "/outside",
                                           "user.ok": "1"})])))
        finally:
            os.close(fd)
        return sorted(os.listxattr("/dest/d"))

    assert run_sandboxed(run, _setup) == {"ok": ["user.ok"]}
