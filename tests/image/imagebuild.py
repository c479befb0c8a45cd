"""Build layer tars and OCI image layouts for the image tests, in Python.

tarfile is fine for *writing* archives: the point of the tests is what the
extractor does with whatever bytes an image contains, hostile ones included.
"""
import gzip
import hashlib
import io
import json
import os
import tarfile

import zstandard

MTIME = 1_700_000_000


def digest(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def entry(kind, name, data=b"", mode=None, uid=0, gid=0, target="", xattrs=None,
          dev=(0, 0), pax=None, mtime=MTIME):
    """A TarInfo (and its data) for layer(); kind: file dir symlink hardlink char
    block fifo."""
    info = tarfile.TarInfo(name)
    info.type = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE,
                 "hardlink": tarfile.LNKTYPE, "char": tarfile.CHRTYPE,
                 "block": tarfile.BLKTYPE, "fifo": tarfile.FIFOTYPE}[kind]
    info.mode = mode if mode is not None else (0o755 if kind == "dir" else 0o644)
    info.uid, info.gid = uid, gid
    info.mtime = mtime
    info.linkname = target
    if kind == "file":
        info.size = len(data)
    info.devmajor, info.devminor = dev
    headers = dict(pax or {})
    for key, value in (xattrs or {}).items():
        headers["SCHILY.xattr." + key] = value
    info.pax_headers = headers
    return info, data


def whiteout(path):
    parent, _, base = path.rstrip("/").rpartition("/")
    return entry("file", f"{parent}/.wh.{base}" if parent else f".wh.{base}")


def opaque(directory):
    return entry("file", f"{directory.rstrip('/')}/.wh..wh..opq")


def tar_bytes(entries):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for info, data in entries:
            tf.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return buf.getvalue()


def compress(raw, compression):
    if compression == "gzip":
        return gzip.compress(raw, compresslevel=1, mtime=0)
    if compression == "zstd":
        return zstandard.ZstdCompressor().compress(raw)
    return raw


LAYER_TYPES = {"gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
               "zstd": "application/vnd.oci.image.layer.v1.tar+zstd",
               None: "application/vnd.oci.image.layer.v1.tar"}


def write_blob(layout, data):
    d = digest(data)
    path = os.path.join(layout, "blobs", "sha256", d.split(":")[1])
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    return {"digest": d, "size": len(data)}


def make_layout(layout, layers, tag="latest", config=None, compression="gzip",
                arch="amd64", extra_index=None):
    """Write an OCI layout with one image of `layers` (lists of entries, or
    (entries, compression) pairs).  Returns the manifest descriptor."""
    os.makedirs(layout, exist_ok=True)
    with open(os.path.join(layout, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)
    descs, diff_ids = [], []
    for layer in layers:
        entries, comp = layer if isinstance(layer, tuple) else (layer, compression)
        raw = tar_bytes(entries)
        blob = compress(raw, comp)
        desc = write_blob(layout, blob)
        desc["mediaType"] = LAYER_TYPES[comp]
        descs.append(desc)
        diff_ids.append(digest(raw))
    cfg = {"created": "2024-01-02T03:04:05Z", "architecture": arch, "os": "linux",
           "config": config if config is not None else {"Cmd": ["/bin/sh"]},
           "rootfs": {"type": "layers", "diff_ids": diff_ids}, "history": []}
    cdesc = write_blob(layout, json.dumps(cfg).encode())
    cdesc["mediaType"] = "application/vnd.oci.image.config.v1+json"
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": cdesc, "layers": descs}
    mdesc = write_blob(layout, json.dumps(manifest).encode())
    mdesc["mediaType"] = "application/vnd.oci.image.manifest.v1+json"
    index_path = os.path.join(layout, "index.json")
    try:
        with open(index_path) as f:
            index = json.load(f)
    except FileNotFoundError:
        index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                 "manifests": []}
    if tag is not None:
        index["manifests"] = [m for m in index["manifests"]
                              if m.get("annotations", {}).get("org.opencontainers.image.ref.name")
                              != tag]
        index["manifests"].append(dict(mdesc, annotations={
            "org.opencontainers.image.ref.name": tag}))
    with open(index_path, "w") as f:
        json.dump(index, f)
    return dict(mdesc, platform={"os": "linux", "architecture": arch})


def add_index(layout, manifests, tag):
    """Tag an image index (multi-platform) over manifest descriptors."""
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
             "manifests": manifests}
    idesc = write_blob(layout, json.dumps(index).encode())
    idesc["mediaType"] = "application/vnd.oci.image.index.v1+json"
    with open(os.path.join(layout, "index.json")) as f:
        top = json.load(f)
    top["manifests"].append(dict(idesc, annotations={"org.opencontainers.image.ref.name": tag}))
    with open(os.path.join(layout, "index.json"), "w") as f:
        json.dump(top, f)
    return idesc


def busybox_rootfs_entries():
    """A small but real rootfs: busybox-static, applet links, /etc files,
    a setuid binary, a device node, a fifo, a hardlink, xattrs, owners."""
    try:
        with open("/bin/busybox", "rb") as f:
            bb = f.read()
    except FileNotFoundError:  # busybox-static not installed: any bytes will do
        bb = b"\x7fELF" + bytes(range(256)) * 4000
    e = [entry("dir", "./", mode=0o755)]
    for d in ("bin", "etc", "dev", "tmp", "home", "home/user", "var", "var/spool"):
        mode = 0o1777 if d == "tmp" else 0o755
        uid = 1000 if d == "home/user" else 0
        e.append(entry("dir", d + "/", mode=mode, uid=uid, gid=uid))
    e.append(entry("file", "bin/busybox", bb, mode=0o755))
    for applet in ("sh", "ls", "cat", "id", "true"):
        e.append(entry("symlink", f"bin/{applet}", target="busybox", mode=0o777))
    e.append(entry("hardlink", "bin/busybox-hl", target="bin/busybox"))
    e.append(entry("file", "bin/su-like", b"#!/bin/sh\n", mode=0o4755))
    e.append(entry("file", "bin/sgid", b"x", mode=0o2711, gid=50))
    e.append(entry("file", "etc/passwd",
                   b"root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000::/home/user:/bin/sh\n"
                   b"daemon:x:2:2::/:/bin/false\n"))
    e.append(entry("file", "etc/group",
                   b"root:x:0:\nuser:x:1000:\nwheel:x:10:user\naudio:x:29:user,daemon\n"))
    e.append(entry("file", "etc/shadow", b"root:*::0:::::\n", mode=0o640, gid=42))
    e.append(entry("file", "home/user/.profile", b"export A=1\n", uid=1000, gid=1000,
                   xattrs={"user.note": "hello"}))
    e.append(entry("char", "dev/null", mode=0o666, dev=(1, 3)))
    e.append(entry("block", "dev/loop9", mode=0o660, dev=(7, 9), gid=6))
    e.append(entry("fifo", "var/spool/fifo", mode=0o620))
    e.append(entry("file", "var/empty", b""))
    e.append(entry("symlink", "var/run", target="/run"))
    return e


def custom_layout(layout, blobs, manifest_type="application/vnd.oci.image.manifest.v1+json",
                  config_type="application/vnd.oci.image.config.v1+json", tamper=None,
                  tag="latest"):
    """An OCI layout over ready-made layer blobs, with any media types and
    descriptors (for invalid images).  blobs: (blob bytes, media type or None,
    uncompressed tar bytes).  tamper(manifest, index_entry) may edit the
    manifest dict before it is written and the index entry after."""
    os.makedirs(layout, exist_ok=True)
    with open(os.path.join(layout, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)
    descs, diff_ids = [], []
    for blob, media, raw in blobs:
        desc = write_blob(layout, blob)
        if media is not None:
            desc = {"mediaType": media, **desc}
        descs.append(desc)
        diff_ids.append(digest(raw))
    cfg = {"created": "2024-01-02T03:04:05Z", "architecture": "amd64", "os": "linux",
           "config": {"Cmd": ["/bin/sh"]}, "rootfs": {"type": "layers", "diff_ids": diff_ids}}
    cdesc = dict(write_blob(layout, json.dumps(cfg).encode()), mediaType=config_type)
    manifest = {"schemaVersion": 2, "mediaType": manifest_type, "config": cdesc,
                "layers": descs}
    entry_ = {}
    if tamper:
        tamper(manifest, entry_)
    mdesc = write_blob(layout, json.dumps(manifest).encode())
    index_entry = dict(mdesc, mediaType=manifest_type,
                       annotations={"org.opencontainers.image.ref.name": tag})
    index_entry.update(entry_)
    with open(os.path.join(layout, "index.json"), "w") as f:
        json.dump({"schemaVersion": 2, "manifests": [index_entry]}, f)
    return layout


def sparse_member(name, realsize, regions, version="0.1", stored=None):
    """A PAX sparse member (GNU formats 0.1 or 1.0) built by hand: tarfile
    reads them but cannot write them.  regions: (offset, data bytes)."""
    info = tarfile.TarInfo(name)
    info.mtime = MTIME
    info.mode = 0o644
    data = b"".join(d for _, d in regions)
    if version == "0.1":
        info.pax_headers = {
            "GNU.sparse.numblocks": str(len(regions)),
            "GNU.sparse.map": ",".join(f"{o},{len(d)}" for o, d in regions),
            "GNU.sparse.size": str(realsize), "GNU.sparse.name": name}
    else:
        info.name = f"GNUSparseFile.0/{name}"
        info.pax_headers = {"GNU.sparse.major": "1", "GNU.sparse.minor": "0",
                            "GNU.sparse.name": name, "GNU.sparse.realsize": str(realsize)}
        head = f"{len(regions)}\n" + "".join(f"{o}\n{len(d)}\n" for o, d in regions)
        head = head.encode()
        data = head + b"\0" * (-len(head) % 512) + data
    if stored is not None:  # lie about how many data bytes follow
        data = data[:stored]
    info.size = len(data)
    return info, data


def _host_tree(entries, src, arcbase, limit, skip=("__pycache__", "test", "tests")):
    """Entries for a tree of this machine's files (a real mix of sizes,
    modes, symlinks, hard links), at most `limit` files."""
    count = 0
    with tarfile.open(fileobj=io.BytesIO(), mode="w") as tf:  # for gettarinfo only
        for dirpath, dirnames, filenames in os.walk(src):
            dirnames[:] = sorted(d for d in dirnames if d not in skip)
            rel = os.path.relpath(dirpath, src)
            arcdir = arcbase if rel == "." else f"{arcbase}/{rel}"
            info = tf.gettarinfo(dirpath, arcdir + "/")
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            entries.append((info, b""))
            for name in sorted(filenames):
                if count >= limit:
                    return
                path = os.path.join(dirpath, name)
                try:
                    info = tf.gettarinfo(path, f"{arcdir}/{name}")
                    data = b""
                    if info.isreg() and info.size <= 256 << 10:
                        with open(path, "rb") as f:
                            data = f.read()
                except OSError:
                    continue
                if info.islnk() or not (info.isreg() or info.issym()) or info.size > 256 << 10:
                    continue
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                entries.append((info, data))
                count += 1


def debian_like_layers():
    """Four layers shaped like a Debian image's (base system; a package
    install with replaced and removed files; a clean-up layer of whiteouts;
    an opaque directory and a replaced file), from this machine's own files:
    the Python standard library and /usr/share/doc and /usr/share/locale
    where they exist.  About a thousand entries, ~10 MB: quick to unpack
    twice."""
    stdlib = os.path.dirname(os.__file__)
    base = busybox_rootfs_entries()
    for d in ("usr/", "usr/lib/", "usr/share/", "usr/share/doc/", "usr/share/locale/"):
        base.append(entry("dir", d))
    _host_tree(base, stdlib, "usr/lib/python3", 700, skip=("__pycache__", "test", "tests",
                                                              "site-packages", "idlelib",
                                                              "tkinter", "lib2to3"))
    docs = sorted(os.listdir("/usr/share/doc"))[:30] if os.path.isdir("/usr/share/doc") else []
    for pkg in docs:
        _host_tree(base, f"/usr/share/doc/{pkg}", f"usr/share/doc/{pkg}", 20)
    for lang in ("de", "fr", "es"):
        base.append(entry("dir", f"usr/share/locale/{lang}/"))
        base.append(entry("dir", f"usr/share/locale/{lang}/LC_MESSAGES/"))
        for i in range(30):
            base.append(entry("file", f"usr/share/locale/{lang}/LC_MESSAGES/p{i}.mo",
                              os.urandom(2000)))
    base.append(entry("file", "etc/motd", b"Debian-like\n"))
    install = [entry("dir", "usr/lib/python3/json/", mode=0o755),
               entry("file", "usr/lib/python3/json/__init__.py", b"# replaced\n"),
               entry("file", "usr/lib/python3/new_module.py", b"print('new')\n" * 500),
               entry("hardlink", "usr/lib/python3/new_alias.py",
                     target="usr/lib/python3/new_module.py"),
               whiteout("usr/lib/python3/email/mime"),
               whiteout("usr/lib/python3/json/tool.py"),
               entry("symlink", "usr/bin/python3", target="../lib/python3/new_module.py"),
               entry("file", "var/lib/dpkg/status", b"Package: python3\n" * 2000)]
    cleanup = [whiteout(f"usr/share/doc/{pkg}") for pkg in docs[::2]]
    cleanup += [whiteout("usr/share/locale/es"), whiteout("var/lib/dpkg/status")]
    final = [opaque("usr/share/locale"),
             entry("dir", "usr/share/locale/C/"),
             entry("file", "usr/share/locale/C/only", b"only C is left"),
             entry("file", "etc/motd", b"replaced motd\n", mode=0o600)]
    return [base, install, cleanup, final]
