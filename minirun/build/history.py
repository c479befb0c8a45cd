"""`minirun tag` and `minirun history`."""
from minirun.errors import MinirunError
from minirun.image import reference
from minirun.image.store import Store


def tag_image(source, target, store_root=None):
    store = Store(store_root)
    image = store.resolve(source)
    try:
        ref = reference.parse(target)
    except reference.InvalidReference as e:
        raise MinirunError(f"invalid reference format: {e}") from None
    if ref.digest:
        raise MinirunError("refusing to create a tag with a digest reference")
    store.tag(ref, image.digest)
    return ref


def history_rows(name, store_root=None):
    """Newest first, like `docker history`: the image's id on the top row,
    <missing> for steps whose intermediate image is not known here."""
    store = Store(store_root)
    image = store.resolve(name)
    hist = image.config.get("history") or []
    layers = list(image.layers)
    rows = []
    for entry in hist:
        size = 0
        if not entry.get("empty_layer") and layers:
            size = layers.pop(0)["size"]
        rows.append({"id": "<missing>", "created": entry.get("created"),
                     "created_by": entry.get("created_by", ""), "size": size,
                     "comment": entry.get("comment", "")})
    rows.reverse()
    if rows:
        rows[0]["id"] = image.id
    return rows
