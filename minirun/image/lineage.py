"""Which build steps an image descends from, for deleting them with it.

The classic builder leaves one untagged image per step; Docker deletes a
step's image when the last image built on it goes (`rmi`, `image prune`).
Docker records a parent id per image; here descent is read from the configs
themselves: an image descends from a step when the step's layers (diff_ids)
and history are a prefix of its own, and its history is longer.
"""
from minirun.errors import MinirunError
from minirun.image import manifest as mf


def _lineage(store, manifest):
    try:
        image = mf.Image(store, manifest)
    except MinirunError:
        return None  # its blobs are gone: nothing can be built on it any more
    return image.diff_ids, image.config.get("history") or []


def descends(child, step):
    """child and step as (diff_ids, history) pairs."""
    (c_ids, c_hist), (s_ids, s_hist) = child, step
    return (c_ids[:len(s_ids)] == s_ids and len(c_hist) > len(s_hist)
            and c_hist[:len(s_hist)] == s_hist)


def drop_orphan_steps(store, doc, users):
    """Remove from doc (images.json) the intermediate step images that no
    named, dangling or in-use image descends from; returns their config digests."""
    untagged = doc["untagged"]
    steps = {m: _lineage(store, m) for m, v in untagged.items() if v.get("intermediate")}
    kept = ({v["manifest"] for v in doc["refs"].values()}
            | {m for m, v in untagged.items() if not v.get("intermediate")} | set(users))
    keepers = [line for line in (_lineage(store, m) for m in kept) if line]
    dropped = []
    # Newest step first, as Docker deletes up the parent chain.
    for manifest, line in sorted(steps.items(), key=lambda kv: (-len(kv[1][1]) if kv[1] else 0,
                                                                 kv[0])):
        if manifest in users:
            continue
        if line and any(descends(k, line) for k in keepers):
            continue
        dropped.append(untagged.pop(manifest)["config"])
    return dropped
