"""The content-addressed image store (default /var/lib/minirun, or $MINIRUN_STORE).

    blobs/sha256/<hex>     manifests, configs and layer blobs, named by digest
    images.json            image names (name:tag or name@digest) -> manifest digest,
                           and images known by id only ("untagged": Docker's
                           <none>:<none>, dangling or a build's intermediate step)
    layers/<chain-id hex>  each layer unpacked once, in overlayfs form (overlay.py)
    containers/<id>/       per-container upper/work dirs and the rootfs mount point
    tmp/                   blobs and layer trees being written
    locks/                 flock files

A blob becomes visible only by rename(2) from tmp/ after its digest and size
were checked, so nothing partial ever sits under blobs/; readers therefore
trust the name for layers (they re-hash while unpacking anyway) and re-verify
small JSON blobs on every read.  Writers of images.json take an exclusive
flock and replace the file atomically.  Pulls and unpacks hold a shared lock on
the store and garbage collection an exclusive one, so a collection never
removes a blob that a concurrent pull has written but not yet tagged.

`minirun pull` imports this module: json (through `re` and `enum`),
`datetime`, `shutil`, `threading` and `contextlib` (with `functools` and
`collections`) stay out of it (jsonio, time, _thread, small classes).
"""
import _thread
import fcntl
import os
import time

from minirun import jsonio
from minirun.errors import MinirunError
from minirun.image import manifest as mf
from minirun.image import reference
from minirun.image.blobwriter import BlobWriter
from minirun.flock import Flock

DEFAULT_ROOT = "/var/lib/minirun"
ENV_VAR = "MINIRUN_STORE"


class ImageNotFound(MinirunError):
    def __init__(self, name):
        super().__init__(f"no such image: {name}")
        self.name = name


def _sorted(value):
    """value with every dict's keys in order (what json's sort_keys writes)."""
    if isinstance(value, dict):
        return {k: _sorted(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_sorted(v) for v in value]
    return value


def default_root():
    return os.environ.get(ENV_VAR) or DEFAULT_ROOT


def _now():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class _Editing:
    def __init__(self, store, part=None):
        self.store, self.part = store, part
        self.lock = self.doc = None

    def __enter__(self):
        self.store.ensure()
        self.lock = self.store._flock("images.lock", fcntl.LOCK_EX)
        self.lock.__enter__()
        try:
            self.doc = self.store._load_doc()
        except BaseException:
            self.lock.__exit__(None, None, None)
            raise
        return self.doc[self.part] if self.part else self.doc

    def __exit__(self, exc_type, exc, tb):
        try:
            if exc_type is None:
                self.store._save_doc(self.doc)
        finally:
            self.lock.__exit__(None, None, None)


class Store:
    def __init__(self, root=None):
        self.root = os.path.abspath(root or default_root())
        self._tls = _thread._local()

    # layout
    def path(self, *parts):
        return os.path.join(self.root, *parts)

    def ensure(self):
        for sub in ("blobs/sha256", "layers", "containers", "tmp", "locks"):
            os.makedirs(self.path(sub), mode=0o700, exist_ok=True)
        return self

    def _tmp_name(self, kind):
        return self.path("tmp", f"{kind}-{os.getpid()}-{_thread.get_ident()}-{os.urandom(6).hex()}")

    def blob_path(self, digest):
        reference.check_digest(digest)
        algo, _, hexpart = digest.partition(":")
        return self.path("blobs", algo, hexpart)

    def layer_dir(self, chain_id):
        reference.check_digest(chain_id, "chain id")
        return self.path("layers", chain_id.partition(":")[2])

    # locks
    def _flock(self, name, mode):
        os.makedirs(self.path("locks"), mode=0o700, exist_ok=True)
        return Flock(self.path("locks", name), mode)

    def shared(self):
        """Held while adding to the store (pull, load, unpack): gc waits."""
        return self._flock("store.lock", fcntl.LOCK_SH)

    def exclusive(self):
        return self._flock("store.lock", fcntl.LOCK_EX)

    def lock_for(self, digest):
        """Serialises work on one blob or layer (concurrent pulls of one image)."""
        return self._flock(digest.replace(":", "-") + ".lock", fcntl.LOCK_EX)

    # blobs
    def has_blob(self, digest):
        return os.path.isfile(self.blob_path(digest))

    def open_blob(self, digest):
        try:
            return open(self.blob_path(digest), "rb")
        except FileNotFoundError:
            raise MinirunError(f"blob {digest} is not in the store") from None

    def read_blob(self, digest):
        with self.open_blob(digest) as f:
            data = f.read()
        mf.verify_bytes(data, digest)
        return data

    def blob_writer(self, digest=None, size=None, what="blob"):
        self.ensure()
        return BlobWriter(self, digest, size, what)

    def put_bytes(self, data, digest=None, what="blob"):
        digest = digest or mf.sha256_digest(data)
        if self.has_blob(digest):
            return digest
        with self.blob_writer(digest, len(data), what) as w:
            w.write(data)
            return w.commit()

    def ingest(self, fileobj, digest=None, size=None, what="blob"):
        """Copy a file object into the store, verifying digest and size."""
        if digest and self.has_blob(digest):
            return digest
        with self.blob_writer(digest, size, what) as w:
            while True:
                chunk = fileobj.read(1 << 20)
                if not chunk:
                    break
                w.write(chunk)
            return w.commit()

    # names
    def _load_doc(self):
        try:
            with open(self.path("images.json")) as f:
                doc = jsonio.load(f)
        except FileNotFoundError:
            doc = {}
        except ValueError as e:
            raise MinirunError(f"corrupt {self.path('images.json')}: {e}") from None
        doc.setdefault("refs", {})
        doc.setdefault("untagged", {})
        return doc

    def _load_refs(self):
        return self._load_doc()["refs"]

    def _save_doc(self, doc):
        tmp = self._tmp_name("images.json")
        with open(tmp, "w") as f:
            f.write(jsonio.dumps(_sorted(doc), indent=1))  # json.dump(.., sort_keys=True)
        os.rename(tmp, self.path("images.json"))

    def _editing(self):
        """with-block on images.json's document (or its "refs"): locked, saved
        at the end unless the block raised."""
        return _Editing(self)

    def _editing_refs(self):
        return _Editing(self, "refs")

    def refs(self):
        return self._load_refs()

    def untagged(self):
        """Images known by id only: manifest digest -> {config, created, intermediate}."""
        return self._load_doc()["untagged"]

    def tag(self, ref, manifest_digest, index_digest=None):
        """Point a name (Reference) at a manifest already in the store.  The image
        the name pointed at before stays, untagged, if no other name has it."""
        image = mf.Image(self, manifest_digest)
        key = str(ref)
        with self._editing() as doc:
            refs, untagged = doc["refs"], doc["untagged"]
            old = refs.get(key)
            refs[key] = {"manifest": manifest_digest, "config": image.config_digest,
                         "index": index_digest, "tagged": _now()}
            untagged.pop(manifest_digest, None)
            if old and old["manifest"] != manifest_digest and \
                    not any(v["manifest"] == old["manifest"] for v in refs.values()):
                untagged[old["manifest"]] = {"config": old["config"], "added": _now(),
                                             "intermediate": False}
        return image

    def add_untagged(self, manifest_digest, intermediate=False):
        """Record an image known by id only (a build without -t, a build step's
        image, a commit without a name); a no-op for a named image."""
        image = mf.Image(self, manifest_digest)
        with self._editing() as doc:
            if any(v["manifest"] == manifest_digest for v in doc["refs"].values()):
                return image
            old = doc["untagged"].get(manifest_digest)
            doc["untagged"][manifest_digest] = {
                "config": image.config_digest, "added": old["added"] if old else _now(),
                # a dangling image stays one when a later build reuses it as a step
                "intermediate": intermediate and (old is None or old["intermediate"])}
        return image

    def untag(self, key):
        with self._editing_refs() as refs:
            return refs.pop(key, None)

    def _find(self, name):
        """images.json keys and entries a user's name or id refers to; an
        untagged image's key is None."""
        doc = self._load_doc()
        refs = doc["refs"]
        try:
            ref = reference.parse(name)
        except reference.InvalidReference:
            ref = None
        if ref is not None and str(ref) in refs:
            return [(str(ref), refs[str(ref)])]
        if ref is not None and ref.digest:  # name@digest: any tag of that manifest
            hits = [(k, v) for k, v in refs.items()
                    if k.split("@")[0].rsplit(":", 1)[0] == ref.name
                    and ref.digest in (v["manifest"], v.get("index"))]
            if hits:
                return hits
        if reference.looks_like_digest_prefix(name):
            prefix = name if name.startswith("sha256:") else "sha256:" + name
            entries = list(refs.items()) + [(None, dict(v, manifest=m))
                                            for m, v in doc["untagged"].items()]
            hits = [(k, v) for k, v in entries
                    if v["config"].startswith(prefix) or v["manifest"].startswith(prefix)]
            if len({v["config"] for _, v in hits}) > 1:
                raise MinirunError(f"ambiguous image id prefix: {name} "
                                   f"(matches {len({v['config'] for _, v in hits})} images)")
            if hits:
                return hits
        return []

    def resolve(self, name):
        """An Image for a name (busybox, host/repo:tag, name@sha256:...) or id
        (full, sha256:, or a unique prefix; untagged images too)."""
        hits = self._find(name)
        if not hits:
            raise ImageNotFound(name)
        key, entry = hits[0]
        return mf.Image(self, entry["manifest"], names=[k for k, _ in hits if k])

    def lookup(self, name):
        """Like resolve() but returns None when the image is not in the store."""
        try:
            return self.resolve(name)
        except ImageNotFound:
            return None

    def images(self, all_images=False):
        """Rows for `minirun images`: one per name, one per untagged image
        (intermediate build steps only with all_images, as `docker images -a`)."""
        rows = []
        doc = self._load_doc()
        entries = sorted(doc["refs"].items()) + \
            [(None, dict(v, manifest=m)) for m, v in sorted(doc["untagged"].items())
             if all_images or not v.get("intermediate")]
        for key, entry in entries:
            try:
                image = mf.Image(self, entry["manifest"])
            except MinirunError:
                continue
            if key is None:
                repo, tag, short = None, "<none>", "<none>"
            elif "@" in key:
                repo, tag = key.split("@")[0], "<none>"
            else:
                repo, _, tag = key.rpartition(":")
            if repo is not None:
                short = reference.parse(repo, default_tag=False).familiar
            rows.append({"repository": short, "tag": tag, "name": key,
                         "id": image.id, "digest": image.digest,
                         "created": image.created, "size": image.size,
                         "platform": image.platform, "dangling": key is None,
                         "intermediate": bool(key is None and entry.get("intermediate"))})
        return rows

    def remove(self, name, force=False):
        """Untag an image; with all names of an id given by id, remove all.
        Returns the removed names.  Blobs go at the next gc()."""
        return [value for action, value in self.delete(name, force) if action == "Untagged"]

    def delete(self, name, force=False, running=None):
        """`rmi`: [("Untagged", name) ..., ("Deleted", image id) ...], as Docker
        prints them.  Untagging the last name deletes the image (and the build
        steps only it descended from); an image a container uses is kept
        (untagged) with force, refused without; by id, refused even with force
        when running(container id) says that container runs."""
        hits = self._find(name)
        if not hits:
            raise ImageNotFound(name)
        by_id = reference.looks_like_digest_prefix(name) and not self._is_exact_name(name)
        short = hits[0][1]["config"].partition(":")[2][:12]
        if by_id and len(hits) > 1 and not force:
            raise MinirunError(f"conflict: unable to delete {short} (must be forced) - "
                               f"image is referenced in multiple repositories")
        users = self.containers_using()
        out = []
        with self._editing() as doc:
            refs, untagged = doc["refs"], doc["untagged"]
            manifest = hits[0][1]["manifest"]
            keys = [k for k, _ in hits if k]
            still_named = [k for k, v in refs.items()
                           if v["manifest"] == manifest and k not in keys]
            live = [c for c in users.get(manifest, ()) if running and running(c)]
            if by_id and live and not still_named:
                raise MinirunError(f"conflict: unable to delete {short} (cannot be forced) - "
                                   f"image is being used by running container {live[0][:12]}")
            if manifest in users and not still_named and not force:
                cid = users[manifest][0][:12]
                if by_id:
                    raise MinirunError(f"conflict: unable to delete {short} (must be forced) - "
                                       f"image is being used by stopped container {cid}")
                raise MinirunError(f"conflict: unable to remove repository reference "
                                   f"\"{name}\" (must force) - container {cid} is using its "
                                   f"referenced image {short}")
            for key in keys:
                refs.pop(key, None)
                out.append(("Untagged", key))
            if still_named:
                return out
            if manifest in users:  # forced: kept for its container, untagged
                untagged[manifest] = {"config": hits[0][1]["config"], "added": _now(),
                                      "intermediate": False}
                return out
            untagged.pop(manifest, None)
            out.append(("Deleted", hits[0][1]["config"]))
            out += [("Deleted", c) for c in self._drop_orphan_steps(doc, users)]
        return out

    def prune(self, all_images=False):
        """`image prune`: delete dangling images no container uses (all_images:
        every image no container uses), then build steps nothing descends
        from.  Returns Docker's records, as delete().  Blobs go at gc()."""
        users = self.containers_using()
        out = []
        with self._editing() as doc:
            refs, untagged = doc["refs"], doc["untagged"]
            if all_images:
                lost = {}
                for key, entry in sorted(refs.items()):
                    if entry["manifest"] not in users:
                        del refs[key]
                        out.append(("Untagged", key))
                        lost[entry["manifest"]] = entry["config"]
                out += [("Deleted", c) for _, c in sorted(lost.items())]
            for manifest, entry in sorted(untagged.items()):
                if manifest not in users and (all_images or not entry.get("intermediate")):
                    del untagged[manifest]
                    out.append(("Deleted", entry["config"]))
            out += [("Deleted", c) for c in self._drop_orphan_steps(doc, users)]
        return list(dict.fromkeys(out))  # two manifests of one config: one id

    def _drop_orphan_steps(self, doc, users):
        from minirun.image import lineage

        return lineage.drop_orphan_steps(self, doc, users)

    def _is_exact_name(self, name):
        try:
            return str(reference.parse(name)) in self._load_refs()
        except reference.InvalidReference:
            return False

    def images_in_use(self):
        """Manifest digests of images with a prepared container rootfs."""
        return set(self.containers_using())

    def containers_using(self):
        """Manifest digest -> ids of the containers whose rootfs is made of it."""
        used = {}
        cdir = self.path("containers")
        for cid in sorted(os.listdir(cdir)) if os.path.isdir(cdir) else ():
            try:
                with open(os.path.join(cdir, cid, "image.json")) as f:
                    used.setdefault(jsonio.load(f)["manifest"], []).append(cid)
            except (OSError, ValueError, KeyError):
                continue
        return used

    # garbage collection
    def gc(self):
        """Remove blobs and unpacked layers no name or container refers to, and
        temporary files of dead writers.  Returns (blobs removed, bytes freed)."""
        import shutil

        removed, freed = 0, 0
        with self.exclusive():
            keep_blobs, keep_layers = set(), set()
            doc = self._load_doc()
            manifests = {e["manifest"] for e in doc["refs"].values()} | set(doc["untagged"])
            indexes = {e.get("index") for e in doc["refs"].values()} - {None}
            manifests |= self.images_in_use()
            for digest in indexes:
                keep_blobs.add(digest)
            for digest in manifests:
                keep_blobs.add(digest)
                try:
                    image = mf.Image(self, digest)
                except MinirunError:
                    continue
                keep_blobs.add(image.config_digest)
                keep_blobs.update(layer["digest"] for layer in image.layers)
                keep_layers.update(c.partition(":")[2] for c in image.chain_ids)
            for algo in os.listdir(self.path("blobs")):
                adir = self.path("blobs", algo)
                for hexpart in os.listdir(adir):
                    if f"{algo}:{hexpart}" not in keep_blobs:
                        p = os.path.join(adir, hexpart)
                        freed += os.lstat(p).st_size
                        os.unlink(p)
                        removed += 1
            for name in os.listdir(self.path("layers")):
                if name not in keep_layers:
                    shutil.rmtree(self.path("layers", name), ignore_errors=True)
            # Writers hold the shared lock, so with the exclusive one held
            # nothing in tmp/ belongs to a live writer.
            for name in os.listdir(self.path("tmp")):
                p = self.path("tmp", name)
                if os.path.isdir(p) and not os.path.islink(p):
                    # A layer unpack that was killed may have left its overlay
                    # mounted: never recurse through it.
                    if os.path.ismount(os.path.join(p, "mnt")):
                        from minirun.linux import syscalls

                        syscalls.umount2(os.path.join(p, "mnt"), syscalls.MNT_DETACH)
                    shutil.rmtree(p, ignore_errors=True)
                else:
                    os.unlink(p)
        return removed, freed
