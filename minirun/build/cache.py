"""The build cache, with the classic builder's rules.

A step's key is a hash of
    the parent image (manifest digest; "scratch" for none),
    the instruction after variable substitution,
    the build args in scope with their values (not the proxy args),
    for COPY/ADD a checksum of the copied files (content, mode, owner,
    link targets; context.py) or the source image's id for --from.
The key names a file <store>/build-cache/<hex> holding the manifest digest of
the image the step produced (an untagged image in the store).  A hit whose
image was garbage-collected since is a miss.
"""
import hashlib
import json
import os

from minirun.errors import MinirunError
from minirun.image import manifest as mf


def key(parent, step_text, args=None, files=None):
    doc = {"parent": parent or "scratch", "step": step_text, "args": sorted((args or {}).items()),
           "files": files}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


class Cache:
    def __init__(self, store):
        self.store = store
        self.dir = store.path("build-cache")

    def get(self, k):
        try:
            with open(os.path.join(self.dir, k)) as f:
                digest = f.read().strip()
        except FileNotFoundError:
            return None
        try:
            return mf.Image(self.store, digest)
        except MinirunError:
            return None  # collected since

    def put(self, k, manifest_digest):
        os.makedirs(self.dir, mode=0o700, exist_ok=True)
        tmp = os.path.join(self.dir, f".{k}.{os.getpid()}")
        with open(tmp, "w") as f:
            f.write(manifest_digest + "\n")
        os.rename(tmp, os.path.join(self.dir, k))
