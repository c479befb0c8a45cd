"""Push images from the store to a registry speaking the distribution v2 API.

    HEAD  /v2/<name>/blobs/<digest>                 already there? skip it
    POST  /v2/<name>/blobs/uploads/?mount=<d>&from=<other repo>   (cross-repo mount)
    POST  /v2/<name>/blobs/uploads/                 -> 202, Location of the session
    PUT   <location>?digest=<d>   (whole blob)      monolithic, blobs up to chunk_size
    PATCH <location>  Content-Range: a-b  (chunk)   chunked, each answer moves Location
    PUT   <location>?digest=<d>   (empty)           ... then close the session
    PUT   /v2/<name>/manifests/<tag>                the stored bytes, as stored

The manifest is sent byte for byte as the store keeps it, with its own media
type (OCI or Docker schema2) as Content-Type, so the registry computes the
same digest and `pull NAME@DIGEST` finds it.  Auth is the pull client's
(registry.Client): token or basic, credentials from `minirun login` or
~/.docker/config.json, with the scope `repository:<name>:pull,push`.
"""
import os
import sys
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor

from minirun.image import manifest as mf
from minirun.image import reference
from minirun.image.registry import Client, RegistryError, TransientError
from minirun.image.transfer import Progress
from minirun.image.store import Store

CHUNK_SIZE = 32 << 20       # blobs larger than this go up in PATCH chunks of this size
_PARALLEL = 3
_RETRIES = 3
_FOREIGN = ("foreign", "nondistributable")


class _Slice:
    """`length` bytes of a file from `offset`, as an http.client body that
    can be sent again (rewind) after a 401 or a stale connection."""

    def __init__(self, path, offset, length, progress=None):
        self.f = open(path, "rb")
        self.offset, self.length = offset, length
        self.progress = progress
        self.left = 0
        self.sent = 0

    def rewind(self):
        if self.progress and self.sent:
            self.progress(-self.sent)
        self.f.seek(self.offset)
        self.left, self.sent = self.length, 0

    def read(self, n=-1):
        n = self.left if n is None or n < 0 else min(n, self.left)
        data = self.f.read(n)
        self.left -= len(data)
        self.sent += len(data)
        if self.progress:
            self.progress(len(data))
        return data

    def close(self):
        self.f.close()


def _session_path(client, location, what):
    """The upload session's path from a Location header (relative or absolute,
    always on the registry's own host)."""
    if not location:
        raise RegistryError(f"{what}: the registry sent no upload Location")
    url = urllib.parse.urlsplit(location)
    if url.netloc and url.netloc != client.host:
        raise RegistryError(f"{what}: upload location on another host ({url.netloc})")
    if not url.path.startswith("/v2/"):
        raise RegistryError(f"{what}: unexpected upload location {location!r}")
    return url.path + (f"?{url.query}" if url.query else "")


def _with_query(path, **params):
    return path + ("&" if "?" in path else "?") + urllib.parse.urlencode(params)


class Pusher:
    def __init__(self, client, repo, chunk_size=CHUNK_SIZE, progress=None):
        self.client, self.repo = client, repo
        self.scope = f"repository:{repo}:pull,push"
        self.chunk_size = chunk_size
        self.progress = progress

    def _req(self, method, path, **kw):
        return self.client.request(method, path, scope=self.scope, **kw)

    def exists(self, digest):
        resp = self._req("HEAD", f"/v2/{self.repo}/blobs/{digest}", ok=(404,))
        resp.read()
        return resp.status == 200

    def try_mount(self, digest, source_repo):
        """Ask the registry to link a blob from another repository; True when
        it did (201), False when it opened an ordinary upload instead (202)."""
        query = urllib.parse.urlencode({"mount": digest, "from": source_repo})
        resp = self._req("POST", f"/v2/{self.repo}/blobs/uploads/?{query}",
                         headers={"Content-Length": "0"}, body=b"")
        resp.read()
        if resp.status == 201:
            return True
        if resp.status == 202 and resp.headers.get("Location"):
            # Not mountable here: drop the upload session it opened instead.
            path = _session_path(self.client, resp.headers["Location"], digest)
            self._req("DELETE", path, ok=(404, 405)).read()
        return False

    def upload(self, path, desc):
        """Upload one blob file; monolithic or chunked by its size."""
        digest, size = desc["digest"], desc["size"]
        resp = self._req("POST", f"/v2/{self.repo}/blobs/uploads/",
                         headers={"Content-Length": "0"}, body=b"")
        resp.read()
        session = _session_path(self.client, resp.headers.get("Location"), digest)
        octets = {"Content-Type": "application/octet-stream"}
        if size <= self.chunk_size:
            body = _Slice(path, 0, size, self.progress)
            try:
                resp = self._req("PUT", _with_query(session, digest=digest),
                                 headers={**octets, "Content-Length": str(size)}, body=body)
            finally:
                body.close()
        else:
            offset = 0
            while offset < size:
                length = min(self.chunk_size, size - offset)
                body = _Slice(path, offset, length, self.progress)
                try:
                    resp = self._req("PATCH", session, headers={
                        **octets, "Content-Length": str(length),
                        "Content-Range": f"{offset}-{offset + length - 1}"}, body=body)
                finally:
                    body.close()
                resp.read()
                session = _session_path(self.client, resp.headers.get("Location"), digest)
                offset += length
            resp = self._req("PUT", _with_query(session, digest=digest),
                             headers={"Content-Length": "0"}, body=b"")
        resp.read()
        got = resp.headers.get("Docker-Content-Digest")
        if resp.status != 201 or (got and got != digest):
            raise RegistryError(f"blob {digest}: registry answered {resp.status}"
                                f"{' with digest ' + got if got else ''}")

    def put_manifest(self, tag_or_digest, data, media_type):
        resp = self._req("PUT", f"/v2/{self.repo}/manifests/{tag_or_digest}",
                         headers={"Content-Type": media_type,
                                  "Content-Length": str(len(data))}, body=data)
        resp.read()
        return resp.headers.get("Docker-Content-Digest")


def _mount_sources(store, ref, digest):
    """Other repositories of the same registry whose stored images hold the
    blob (candidates for a cross-repository mount)."""
    out = []
    for key, entry in store.refs().items():
        try:
            other = reference.parse(key)
        except reference.InvalidReference:
            continue
        if other.domain != ref.domain or other.path == ref.path or other.path in out:
            continue
        try:
            image = mf.Image(store, entry["manifest"])
        except Exception:  # an image with a missing blob is no mount source
            continue
        if digest in [layer["digest"] for layer in image.layers] + [image.config_digest]:
            out.append(other.path)
    return out


def push(ref, store=None, insecure=False, stream=sys.stderr, client=None,
         chunk_size=CHUNK_SIZE, source=None):
    """Push the stored image named `source` (default: `ref` itself) to the
    registry and repository `ref` names.  Returns the manifest digest."""
    if isinstance(ref, str):
        ref = reference.parse(ref)
    store = store or Store()
    image = store.resolve(source or str(ref))
    if chunk_size < 1:
        raise RegistryError(f"invalid chunk size {chunk_size}")
    client = client or Client(ref.domain, insecure=insecure)
    media_type = image.manifest.get("mediaType") or mf.OCI_MANIFEST
    blobs = [("layer", layer) for layer in image.layers] + \
        [("config", image.manifest["config"])]
    with store.shared():
        todo = []
        for what, desc in blobs:
            if not store.has_blob(desc["digest"]):
                if any(w in desc.get("mediaType", "") for w in _FOREIGN):
                    continue  # foreign layers stay where their urls point
                raise RegistryError(f"{ref.familiar}: {what} {desc['digest']} is not in the store")
            todo.append((what, desc))
        progress = Progress(f"Pushing {ref.familiar}", sum(d["size"] for _, d in todo), stream)
        pusher = Pusher(client, ref.path, chunk_size, progress.add)
        # Authenticate once with the push scope before the threads start.
        client.request("GET", "/v2/", scope=pusher.scope).read()
        lock = threading.Lock()
        cancelled = threading.Event()

        def say(line):
            if not progress.enabled:
                with lock:
                    stream.write(line + "\n")
                    stream.flush()

        def one(item):
            what, desc = item
            digest, short = desc["digest"], desc["digest"].split(":")[1][:12]
            for attempt in range(_RETRIES + 1):
                if cancelled.is_set():
                    return
                try:
                    if pusher.exists(digest):
                        progress.add(desc["size"])
                        return say(f"{short}: Layer already exists")
                    for other in _mount_sources(store, ref, digest):
                        if pusher.try_mount(digest, other):
                            progress.add(desc["size"])
                            return say(f"{short}: Mounted from {other}")
                    pusher.upload(store.blob_path(digest), desc)
                    return say(f"{short}: Pushed")
                except TransientError:
                    if attempt == _RETRIES:
                        raise
                    time.sleep(0.2 * 2 ** attempt)
                except BaseException:
                    cancelled.set()
                    raise

        say(f"The push refers to repository [{ref.name}]")
        with ThreadPoolExecutor(max(1, min(_PARALLEL, len(todo)))) as pool:
            errors = [f.exception() for f in [pool.submit(one, item) for item in todo]]
        real = [e for e in errors if e is not None]
        if real:
            raise real[0]
        progress.finish()
        got = pusher.put_manifest(ref.digest or ref.tag or reference.DEFAULT_TAG,
                                  image.manifest_bytes, media_type)
        if got and got != image.digest:
            raise RegistryError(f"{ref}: the registry stored the manifest as {got}, "
                                f"not {image.digest}")
    stream.write(f"{ref.digest or ref.tag or reference.DEFAULT_TAG}: digest: {image.digest} "
                 f"size: {len(image.manifest_bytes)}\n")
    return image.digest
