"""Images: references, the content-addressed store, OCI layouts and archives,
registry pulls and pushes, the safe layer extractor, overlay rootfs, image -> bundle.

The entry points the Docker-like front end uses (imported lazily so that
`import minirun.image` stays cheap):

    Store(root=None)                          store.py ($MINIRUN_STORE, /var/lib/minirun)
    resolve_or_pull(name, store=None, ...)    registry.py -> Image
    pull(ref, store=None, insecure=False)     registry.py -> Image
    push(ref, store=None, insecure=False)     push.py     -> manifest digest
    prepare_rootfs(image, container_id)       overlay.py  -> (rootfs_path, cleanup)
    release_rootfs(container_id)              overlay.py  (cleanup from another process)
    image_spec(image.config, rootfs, ...)     bundle.py   -> config.json dict
    image_to_bundle(image, bundle_dir, ...)   bundle.py   -> (bundle_dir, cleanup)
"""


_WHERE = {"Store": "store", "ImageNotFound": "store", "pull": "registry",
          "resolve_or_pull": "registry", "push": "push", "prepare_rootfs": "overlay",
          "release_rootfs": "overlay", "image_spec": "bundle", "image_to_bundle": "bundle"}


def __getattr__(name):
    # `from minirun.image import store` asks here first: no importlib for that.
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(f"minirun.image.{_WHERE[name]}"), name)
    raise AttributeError(name)
