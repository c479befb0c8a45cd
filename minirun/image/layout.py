"""OCI image layouts, OCI archives (a tar of a layout) and `docker save` archives.

Reading: `OCILayout(dir)` is a blob source like the Store, so an image can be
unpacked straight from a layout (`minirun unpack --image DIR:TAG DEST`).
`load_archive()` imports an OCI archive, an OCI layout directory or a docker
archive into the store.  Writing: `save_archive()` writes one tar that is both
an OCI archive and a `docker load`-able archive (index.json + manifest.json
over the same blobs), as docker 25+ does.
"""
import io
import json
import os
import tarfile
import time

from minirun.errors import MinirunError
from minirun.image import manifest as mf
from minirun.image import reference


class LayoutError(MinirunError):
    pass


def split_layout_ref(text):
    """'DIR:TAG' -> (DIR, TAG); 'DIR' -> (DIR, None).  A ':' inside the directory
    part is allowed when the whole string is an existing directory."""
    if os.path.isdir(text):
        return text, None
    path, sep, tag = text.rpartition(":")
    if sep and path and "/" not in tag:
        return path, tag
    return text, None


class OCILayout:
    """A read-only OCI image layout directory."""

    def __init__(self, path):
        self.path = path
        try:
            with open(os.path.join(path, "oci-layout")) as f:
                version = json.load(f).get("imageLayoutVersion")
        except (OSError, ValueError):
            raise LayoutError(f"{path}: not an OCI image layout (no valid oci-layout file)") \
                from None
        if not isinstance(version, str) or not version.startswith("1."):
            raise LayoutError(f"{path}: unsupported image layout version {version!r}")
        try:
            with open(os.path.join(path, "index.json"), "rb") as f:
                self.index = mf.parse_index(f.read())
        except OSError as e:
            raise LayoutError(f"{path}: cannot read index.json: {e.strerror}") from None

    def blob_path(self, digest):
        reference.check_digest(digest)
        algo, _, hexpart = digest.partition(":")
        return os.path.join(self.path, "blobs", algo, hexpart)

    def has_blob(self, digest):
        return os.path.isfile(self.blob_path(digest))

    def open_blob(self, digest):
        try:
            return open(self.blob_path(digest), "rb")
        except FileNotFoundError:
            raise LayoutError(f"{self.path}: blob {digest} missing") from None

    def read_blob(self, digest):
        with self.open_blob(digest) as f:
            data = f.read()
        mf.verify_bytes(data, digest)
        return data

    def tags(self):
        return [m.get("annotations", {}).get(mf.REF_NAME) for m in self.index["manifests"]
                if m.get("annotations", {}).get(mf.REF_NAME)]

    def resolve(self, tag=None, platform=None):
        """The Image tagged `tag` (the only image if tag is None)."""
        entries = self.index["manifests"]
        if tag is not None:
            entries = [m for m in entries if m.get("annotations", {}).get(mf.REF_NAME) == tag]
            if not entries:
                raise LayoutError(f"{self.path}: no image tagged {tag!r} "
                                  f"(tags: {', '.join(self.tags()) or 'none'})")
        elif len(entries) != 1:
            raise LayoutError(f"{self.path}: holds {len(entries)} images; name one with :TAG "
                              f"(tags: {', '.join(self.tags()) or 'none'})")
        return resolve_descriptor(self, entries[0], platform)


def resolve_descriptor(source, desc, platform=None, depth=0):
    """Follow an index entry (through nested indexes) to a single-platform Image."""
    if depth > 4:
        raise LayoutError("image indexes nested too deeply")
    data = source.read_blob(desc["digest"])
    if len(data) != desc["size"]:
        raise LayoutError(f"manifest {desc['digest']}: {len(data)} bytes, its descriptor "
                          f"says {desc['size']}")
    doc = mf.load_json(data, "manifest")
    if mf.kind(doc, desc.get("mediaType")) == "index":
        index = mf.parse_index(data)
        chosen = mf.select_platform(index, platform or mf.host_platform())
        return resolve_descriptor(source, chosen, platform, depth + 1)
    return mf.Image(source, desc["digest"], data)


# --- import into the store ---------------------------------------------------------------

def load_archive(store, path, name=None, platform=None):
    """Import an OCI archive, OCI layout dir or docker archive; returns the
    list of (name, Image) it tagged."""
    if os.path.isdir(path):
        return _load_layout_dir(store, OCILayout(path), name, platform)
    try:
        tf = tarfile.open(path, "r:*")
    except (OSError, tarfile.TarError) as e:
        raise LayoutError(f"{path}: not a readable image archive: {e}") from None
    with tf:
        members = {}
        for m in tf.getmembers():
            members[reference_clean(m.name)] = m
        if "index.json" in members and "oci-layout" in members:
            return _load_oci_tar(store, tf, members, name, platform, path)
        if "manifest.json" in members:
            return _load_docker_tar(store, tf, members, path)
        raise LayoutError(f"{path}: neither an OCI archive (index.json) nor a docker archive "
                          f"(manifest.json)")


def reference_clean(name):
    return "/".join(p for p in name.split("/") if p not in ("", "."))


def _member_bytes(tf, members, name, limit=64 << 20):
    m = members.get(reference_clean(name))
    if m is None or not m.isfile():
        raise LayoutError(f"archive entry {name} missing")
    if m.size > limit:
        raise LayoutError(f"archive entry {name} too large")
    return tf.extractfile(m).read()


def _default_name(path, name):
    if name:
        return name
    stem = os.path.basename(os.path.normpath(path)).split(".")[0].lower() or "image"
    stem = "".join(c if c.isalnum() else "-" for c in stem).strip("-") or "image"
    return f"localhost/{stem}"


def _ref_for(annotations, path, name):
    """The name to tag an index entry with: `name` if given (its tag, or the
    entry's ref.name as tag), else io.containerd.image.name, else a full
    ref.name, else localhost/<file stem>:<ref.name or latest>."""
    ref_name = annotations.get(mf.REF_NAME)
    if not name:
        full = annotations.get(mf.CONTAINERD_NAME)
        candidates = [full] if full else []
        if ref_name and ("/" in ref_name or ":" in ref_name):
            candidates.append(ref_name)
        for candidate in candidates:
            try:
                return reference.parse(candidate)
            except reference.InvalidReference:
                continue
    base = reference.parse(_default_name(path, name), default_tag=False)
    if base.tag or base.digest:
        return base
    try:
        return reference.parse(f"{base.name}:{ref_name or 'latest'}")
    except reference.InvalidReference:
        return base.with_tag("latest")


def _import_image_blobs(store, source, image):
    store.put_bytes(image.config_bytes, image.config_digest, "config")
    for layer in image.layers:
        if not store.has_blob(layer["digest"]):
            with source.open_blob(layer["digest"]) as f:
                store.ingest(f, layer["digest"], layer["size"], "layer")
    store.put_bytes(image.manifest_bytes, image.digest, "manifest")


def _load_layout_dir(store, layout, name, platform):
    out = []
    with store.shared():
        for entry in layout.index["manifests"]:
            image = resolve_descriptor(layout, entry, platform)
            _import_image_blobs(store, layout, image)
            ref = _ref_for(entry.get("annotations", {}), layout.path, name)
            store.tag(ref, image.digest)
            out.append((str(ref), image))
    return out


class _TarSource:
    """Blobs of an OCI archive, read through tarfile without extracting."""

    def __init__(self, tf, members, path):
        self.tf, self.members, self.path = tf, members, path

    def _member(self, digest):
        reference.check_digest(digest)
        m = self.members.get("blobs/" + digest.replace(":", "/"))
        if m is None or not m.isfile():
            raise LayoutError(f"{self.path}: blob {digest} missing")
        return m

    def open_blob(self, digest):
        return self.tf.extractfile(self._member(digest))

    def read_blob(self, digest):
        data = self.open_blob(digest).read()
        mf.verify_bytes(data, digest)
        return data


def _load_oci_tar(store, tf, members, name, platform, path):
    index = mf.parse_index(_member_bytes(tf, members, "index.json"))
    source = _TarSource(tf, members, path)
    out = []
    with store.shared():
        for entry in index["manifests"]:
            image = resolve_descriptor(source, entry, platform)
            _import_image_blobs(store, source, image)
            ref = _ref_for(entry.get("annotations", {}), path, name)
            store.tag(ref, image.digest)
            out.append((str(ref), image))
    return out


def _load_docker_tar(store, tf, members, path):
    """docker save: manifest.json lists Config, RepoTags and Layers (tar files,
    maybe compressed); we build a schema2 manifest over the same blobs."""
    entries = json.loads(_member_bytes(tf, members, "manifest.json"))
    if not isinstance(entries, list):
        raise LayoutError(f"{path}: manifest.json is not a list")
    out = []
    with store.shared():
        for entry in entries:
            config_bytes = _member_bytes(tf, members, entry["Config"])
            config = mf.parse_config(config_bytes)
            config_digest = store.put_bytes(config_bytes, what="config")
            layers = []
            if len(entry.get("Layers", [])) != len(config["rootfs"]["diff_ids"]):
                raise LayoutError(f"{path}: {entry['Config']}: layer count differs from diff_ids")
            for layer_name, diff_id in zip(entry["Layers"], config["rootfs"]["diff_ids"]):
                m = members.get(reference_clean(layer_name))
                if m is None or not m.isfile():
                    raise LayoutError(f"{path}: layer {layer_name} missing")
                f = tf.extractfile(m)
                head = f.read(4)
                f.seek(0)
                from minirun.image.unpack import sniff_compression

                comp = sniff_compression(head)
                # An uncompressed layer's digest is its diff_id: check it now.
                digest = store.ingest(f, diff_id if comp is None else None, m.size, "layer")
                media = {None: mf.DOCKER_LAYER, "gzip": mf.DOCKER_LAYER_GZIP,
                         "zstd": mf.OCI_LAYER_ZSTD}[comp]
                layers.append({"mediaType": media, "size": m.size, "digest": digest})
            # Docker schema2 has no zstd layer type: with one, the manifest is OCI.
            oci = any(layer["mediaType"] == mf.OCI_LAYER_ZSTD for layer in layers)
            manifest = {"schemaVersion": 2,
                        "mediaType": mf.OCI_MANIFEST if oci else mf.DOCKER_MANIFEST,
                        "config": {"mediaType": mf.OCI_CONFIG if oci else mf.DOCKER_CONFIG,
                                   "size": len(config_bytes), "digest": config_digest},
                        "layers": [mf.oci_layer(d) for d in layers] if oci else layers}
            data = json.dumps(manifest, indent=3).encode()
            digest = store.put_bytes(data, what="manifest")
            tags = entry.get("RepoTags") or []
            refs = [reference.parse(t) for t in tags] or \
                [reference.parse(_default_name(path, None), default_tag=False)
                 .with_digest(digest)]
            for ref in refs:
                image = store.tag(ref, digest)
                out.append((str(ref), image))
    return out


# --- export ------------------------------------------------------------------------------

def _add_bytes(tf, name, data, mtime):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = mtime
    info.mode = 0o644
    tf.addfile(info, io.BytesIO(data))


def save_archive(store, names, out_path):
    """Write the named images to one tar that is an OCI archive and a docker archive."""
    images = []
    for name in names:
        image = store.resolve(name)
        ref = reference.parse(name) if not reference.looks_like_digest_prefix(name) \
            or store._is_exact_name(name) else None
        images.append((ref, image))
    now = int(time.time())
    tmp = f"{out_path}.tmp-{os.getpid()}"
    written = set()
    try:
        with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tf:
            _add_bytes(tf, "oci-layout", json.dumps(
                {"imageLayoutVersion": mf.OCI_LAYOUT_VERSION}).encode(), now)
            index = {"schemaVersion": 2, "mediaType": mf.OCI_INDEX, "manifests": []}
            docker = []
            for ref, image in images:
                for digest in [image.digest, image.config_digest] + \
                        [layer["digest"] for layer in image.layers]:
                    if digest in written:
                        continue
                    written.add(digest)
                    path = store.blob_path(digest)
                    tf.add(path, arcname="blobs/" + digest.replace(":", "/"), recursive=False,
                           filter=_normalize_owner)
                media = image.manifest.get("mediaType", mf.OCI_MANIFEST)
                desc = {"mediaType": media, "digest": image.digest,
                        "size": len(image.manifest_bytes)}
                if ref is not None and ref.tag:
                    desc["annotations"] = {mf.CONTAINERD_NAME: str(ref), mf.REF_NAME: ref.tag}
                index["manifests"].append(desc)
                docker.append({"Config": "blobs/" + image.config_digest.replace(":", "/"),
                               "RepoTags": [f"{ref.familiar}:{ref.tag}"] if ref and ref.tag else [],
                               "Layers": ["blobs/" + layer["digest"].replace(":", "/")
                                          for layer in image.layers]})
            _add_bytes(tf, "index.json", json.dumps(index).encode(), now)
            _add_bytes(tf, "manifest.json", json.dumps(docker).encode(), now)
        os.rename(tmp, out_path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _normalize_owner(info):
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mode = 0o644
    return info
