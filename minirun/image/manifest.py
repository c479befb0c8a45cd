"""Manifests, indexes and image configs: media types, validation, platforms.

Both the OCI image-spec types and Docker's schema2 types are accepted; they
carry the same fields.  A manifest is parsed only after its bytes matched the
digest it was asked for, and every descriptor it holds is validated here so
nothing later builds a path or URL from an unchecked string.
"""
import hashlib
import os

from minirun import jsonio
from minirun.errors import MinirunError
from minirun.image.reference import valid_digest

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
OCI_LAYOUT_VERSION = "1.0.0"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_FOREIGN_GZIP = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"

INDEX_TYPES = (OCI_INDEX, DOCKER_LIST)
MANIFEST_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST)
OCI_LAYER_TYPES = (OCI_LAYER, OCI_LAYER_GZIP, OCI_LAYER_ZSTD,
                   "application/vnd.oci.image.layer.nondistributable.v1.tar",
                   "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
                   "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd")
DOCKER_LAYER_TYPES = (DOCKER_LAYER, DOCKER_LAYER_GZIP, DOCKER_FOREIGN_GZIP)
LAYER_TYPES = OCI_LAYER_TYPES + DOCKER_LAYER_TYPES
# Manifest type -> (its config type, the layer types it may list): the two
# families are never mixed within one manifest.
FAMILIES = {OCI_MANIFEST: (OCI_CONFIG, OCI_LAYER_TYPES),
            DOCKER_MANIFEST: (DOCKER_CONFIG, DOCKER_LAYER_TYPES)}
# What we send as Accept when asking a registry for a manifest.
ACCEPT = ", ".join(INDEX_TYPES + MANIFEST_TYPES)

REF_NAME = "org.opencontainers.image.ref.name"
CONTAINERD_NAME = "io.containerd.image.name"


class ManifestError(MinirunError):
    pass


def sha256_digest(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def verify_bytes(data, digest, what="blob"):
    """Raise unless data hashes to digest (sha256 or sha512)."""
    algo, _, hexpart = digest.partition(":")
    if algo not in ("sha256", "sha512") or not valid_digest(digest):
        raise ManifestError(f"{what} {digest}: unsupported digest")
    actual = hashlib.new(algo, data).hexdigest()
    if actual != hexpart:
        raise ManifestError(f"{what} {digest}: digest mismatch (content hashes to {algo}:{actual})")


def check_descriptor(desc, what="descriptor"):
    if not isinstance(desc, dict):
        raise ManifestError(f"invalid {what}: not an object")
    digest = desc.get("digest")
    if not valid_digest(digest):
        raise ManifestError(f"invalid {what}: bad digest {digest!r}")
    size = desc.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ManifestError(f"invalid {what} {digest}: bad size {size!r}")
    if not isinstance(desc.get("mediaType", ""), str):
        raise ManifestError(f"invalid {what} {digest}: bad mediaType")
    annotations = desc.get("annotations", {})
    if not isinstance(annotations, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in annotations.items()):
        raise ManifestError(f"invalid {what} {digest}: annotations must map strings to strings")
    platform = desc.get("platform", {})
    if not isinstance(platform, dict) or not all(isinstance(v, str) for k, v in platform.items()
                                                 if k in ("os", "architecture", "variant")):
        raise ManifestError(f"invalid {what} {digest}: bad platform")
    return desc


def _loads(data):
    """json.loads(data), through jsonio (no `re`/`enum` imports) for the plain
    UTF-8 that registries send; json itself for anything else (a BOM, UTF-16
    or -32, bytes that are not strict UTF-8), so the errors stay json's."""
    if isinstance(data, str) or not data.startswith(b"\xef\xbb\xbf") \
            and b"\x00" not in data[:4]:
        try:
            return jsonio.loads(data)
        except UnicodeDecodeError:
            pass
    import json

    return json.loads(data)


def load_json(data, what):
    try:
        doc = _loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise ManifestError(f"invalid {what}: {e}") from None
    if not isinstance(doc, dict):
        raise ManifestError(f"invalid {what}: not a JSON object")
    return doc


def kind(doc, content_type=None):
    """'index' or 'manifest' for a parsed manifest document."""
    media = doc.get("mediaType") or content_type or ""
    if content_type and doc.get("mediaType") and content_type.split(";")[0].strip() not in (
            doc["mediaType"], "application/json", "application/octet-stream"):
        raise ManifestError(f"manifest mediaType {doc['mediaType']} disagrees with "
                            f"Content-Type {content_type}")
    if media in INDEX_TYPES or (not media and "manifests" in doc):
        return "index"
    if media in MANIFEST_TYPES or (not media and "layers" in doc):
        return "manifest"
    if doc.get("schemaVersion") == 1:
        raise ManifestError("Docker schema1 manifests are not supported")
    raise ManifestError(f"unsupported manifest media type {media!r}")


def parse_index(data):
    doc = load_json(data, "image index")
    manifests = doc.get("manifests")
    if not isinstance(manifests, list):
        raise ManifestError("invalid image index: no manifests list")
    for m in manifests:
        check_descriptor(m, "index entry")
    return doc


def parse_manifest(data):
    """A single-platform image manifest, its media types checked: the config
    must be an image config and every layer a layer type, all of one family
    (OCI, or Docker schema2), as the specs require.  An OCI manifest may omit
    its own mediaType (image-spec 1.0); descriptors may not."""
    doc = load_json(data, "image manifest")
    media = doc.get("mediaType")
    if media is not None and media not in MANIFEST_TYPES:
        raise ManifestError(f"unsupported manifest media type {media!r}")
    if doc.get("schemaVersion") != 2:
        raise ManifestError(f"invalid image manifest: schemaVersion {doc.get('schemaVersion')!r}"
                            f" (want 2)")
    config = check_descriptor(doc.get("config"), "config descriptor")
    layers = doc.get("layers")
    if not isinstance(layers, list):
        raise ManifestError("invalid image manifest: no layers list")
    config_type, layer_types = FAMILIES[media or OCI_MANIFEST]
    if config.get("mediaType") != config_type:
        raise ManifestError(f"config {config['digest']}: media type "
                            f"{config.get('mediaType')!r} in {_family(media)} manifest "
                            f"(want {config_type})")
    for layer in layers:
        check_descriptor(layer, "layer descriptor")
        ltype = layer.get("mediaType")
        if ltype not in layer_types:
            why = "from the other family in" if ltype in LAYER_TYPES else "unsupported in"
            raise ManifestError(f"layer {layer['digest']}: media type {ltype!r} {why} "
                                f"{_family(media)} manifest")
    return doc


_DOCKER_TO_OCI = {DOCKER_LAYER: OCI_LAYER, DOCKER_LAYER_GZIP: OCI_LAYER_GZIP,
                  DOCKER_FOREIGN_GZIP: OCI_LAYER_TYPES[4]}  # nondistributable tar+gzip


def oci_layer(desc):
    """A layer descriptor with the OCI media type for the same bytes (for an
    OCI manifest made over layers of a Docker schema2 image: the types of
    one manifest must not be mixed)."""
    return dict(desc, mediaType=_DOCKER_TO_OCI.get(desc.get("mediaType"), desc.get("mediaType")))


def _family(manifest_type):
    return "a Docker schema2" if manifest_type == DOCKER_MANIFEST else "an OCI"


def parse_config(data):
    doc = load_json(data, "image config")
    rootfs = doc.get("rootfs") or {}
    if not isinstance(rootfs, dict):
        raise ManifestError("invalid image config: rootfs is not an object")
    diff_ids = rootfs.get("diff_ids")
    if rootfs.get("type") != "layers" or not isinstance(diff_ids, list):
        raise ManifestError("invalid image config: rootfs.diff_ids missing")
    for d in diff_ids:
        if not valid_digest(d):
            raise ManifestError(f"invalid image config: bad diff_id {d!r}")
    return doc


def chain_ids(diff_ids):
    """OCI ChainIDs: layer N's id covers layers 0..N, so a cached unpack of a
    layer on top of a different base is never mistaken for this one."""
    out = []
    for diff_id in diff_ids:
        if not out:
            out.append(diff_id)
        else:
            out.append(sha256_digest(f"{out[-1]} {diff_id}".encode()))
    return out


def host_platform():
    machine = os.uname().machine
    arch = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386",
            "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"}.get(machine, machine)
    return {"os": "linux", "architecture": arch}


def parse_platform(text):
    """'linux/arm64/v8' -> dict; None -> linux/<host arch>."""
    if not text:
        return host_platform()
    parts = text.split("/")
    if len(parts) not in (2, 3) or not all(parts):
        raise MinirunError(f"invalid platform {text!r}: want os/arch[/variant]")
    plat = {"os": parts[0], "architecture": parts[1]}
    if len(parts) == 3:
        plat["variant"] = parts[2]
    return plat


def select_platform(index, want):
    """The index entry for platform `want` (os, architecture, optional variant)."""
    candidates = []
    for m in index["manifests"]:
        p = m.get("platform") or {}
        if p.get("os") != want["os"] or p.get("architecture") != want["architecture"]:
            continue
        if want.get("variant") and p.get("variant") != want["variant"]:
            continue
        if m.get("mediaType", OCI_MANIFEST) not in MANIFEST_TYPES + INDEX_TYPES:
            continue
        candidates.append(m)
    if not candidates:
        offered = sorted({"/".join(filter(None, ((m.get("platform") or {}).get("os"),
                                                  (m.get("platform") or {}).get("architecture"),
                                                  (m.get("platform") or {}).get("variant"))))
                          for m in index["manifests"]})
        raise ManifestError(f"no image for platform {want['os']}/{want['architecture']}"
                            f"{'/' + want['variant'] if want.get('variant') else ''} "
                            f"(image offers: {', '.join(o for o in offered if o) or 'none'})")
    # Prefer an exact variant match, then the first listed (registries list the
    # preferred variant first, e.g. arm64/v8).
    return candidates[0]


def layer_compression(media_type):
    if media_type.endswith("+zstd"):
        return "zstd"
    if media_type.endswith("gzip"):
        return "gzip"
    return None


class Image:
    """One resolved single-platform image: its manifest and config, parsed and
    verified, and the source (a Store or an OCI layout) its blobs come from."""

    def __init__(self, source, manifest_digest, manifest_bytes=None, names=()):
        self.source = source
        self.digest = manifest_digest
        raw = manifest_bytes if manifest_bytes is not None else source.read_blob(manifest_digest)
        verify_bytes(raw, manifest_digest, "manifest")
        self.manifest_bytes = raw
        self.manifest = parse_manifest(raw)
        self.config_digest = self.manifest["config"]["digest"]
        self.config_bytes = source.read_blob(self.config_digest)
        if len(self.config_bytes) != self.manifest["config"]["size"]:
            raise ManifestError(f"config {self.config_digest}: {len(self.config_bytes)} bytes, "
                                f"its descriptor says {self.manifest['config']['size']}")
        self.config = parse_config(self.config_bytes)
        self.layers = self.manifest["layers"]
        self.diff_ids = self.config["rootfs"]["diff_ids"]
        if len(self.diff_ids) != len(self.layers):
            raise ManifestError(f"image {manifest_digest}: {len(self.layers)} layers but "
                                f"{len(self.diff_ids)} diff_ids in its config")
        self.chain_ids = chain_ids(self.diff_ids)
        self.names = list(names)

    @property
    def id(self):
        """Docker's image id: the config digest."""
        return self.config_digest

    @property
    def size(self):
        return sum(layer["size"] for layer in self.layers) + self.manifest["config"]["size"]

    @property
    def created(self):
        return self.config.get("created")

    @property
    def platform(self):
        plat = f"{self.config.get('os', '?')}/{self.config.get('architecture', '?')}"
        return plat + (f"/{self.config['variant']}" if self.config.get("variant") else "")
