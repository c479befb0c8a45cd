"""`container prune` and `system prune`: what is removed, and the space it frees."""
import os

from minirun.errors import MinirunError
from minirun.frontend import control, listing


def containers(fe, filters=(), on_error=None):
    """Remove stopped containers the filters select; (ids, bytes freed)."""
    from minirun.frontend import volumes

    removed, space = [], 0
    for rec in listing.prunable(fe, filters):
        upper = rec["GraphDriver"]["Data"]["UpperDir"]
        size = volumes.du(upper) if os.path.isdir(upper) else 0
        try:
            control.remove(fe, rec["Id"])
        except MinirunError as e:
            if on_error:
                on_error(e)
            continue
        removed.append(rec["Id"])
        space += size
    return removed, space


def networks(fe):
    """Remove user-defined networks no container uses; their names."""
    from minirun import network as net

    gone = []
    for n in net.list_networks(root=fe.root):
        if n.get("default") or n["name"] in ("bridge", "host", "none"):
            continue
        info = net.inspect_network(n["name"], root=fe.root)
        if not info.get("containers"):
            try:
                net.remove_network(n["name"], root=fe.root)
                gone.append(n["name"])
            except MinirunError:
                pass
    return gone


def images(fe, all_images):
    """Delete dangling images (all_images: every image) no container uses, and
    collect garbage; (Docker's "untagged: NAME" / "deleted: ID" lines, bytes freed)."""
    store = fe.image_store()
    if not os.path.isdir(store.root):
        return [], 0
    records = store.prune(all_images=all_images)
    _, freed = store.gc()
    from minirun.image import reference

    return [f"{action.lower()}: "
            f"{reference.parse(v).familiar_string if action == 'Untagged' else v}"
            for action, v in records], freed
