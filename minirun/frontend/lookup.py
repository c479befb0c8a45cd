"""Which world a container reference belongs to, decided cheaply (stdlib only:
cli/fastpath.py asks this before the engines' verbs).

An OCI container is a directory <root>/<id> (runc's state); a front-end
container is a record under <store>/frontend/containers/<64-hex id>, found by
its full id, its name (a symlink under names/) or a unique id prefix.  A
running front-end container has a runtime directory too, named by its full
id: that id belongs to the front end.
"""
import os

# No `re`: this runs before the engines' every create/start/kill/delete.
_HEX = frozenset("0123456789abcdef")
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")
STORE_ENV, STORE_DEFAULT = "MINIRUN_STORE", "/var/lib/minirun"  # as image/store.py


def is_id(ref, lengths=(64,)):
    return len(ref) in lengths and set(ref) <= _HEX


def is_name(ref):
    return 0 < len(ref) <= 128 and ref[0].isalnum() and ref.isascii() and set(ref) <= _NAME_CHARS


def frontend_dir(store_root=None):
    return os.path.join(store_root or os.environ.get(STORE_ENV) or STORE_DEFAULT, "frontend")


def is_frontend(ref, store_root=None):
    """True if `ref` names a front-end container (id, name or id prefix)."""
    ref = (ref or "").lstrip("/")
    if not is_name(ref):
        return False
    base = frontend_dir(store_root)
    if is_id(ref):
        return os.path.isdir(os.path.join(base, "containers", ref))
    if os.path.islink(os.path.join(base, "names", ref)):
        return True
    if is_id(ref, range(1, 64)):
        try:
            return any(n.startswith(ref) for n in os.listdir(os.path.join(base, "containers")))
        except OSError:
            return False
    return False


def is_oci(ref, root, store_root=None):
    """True if `ref` is an OCI container under --root that is not a front-end one."""
    if not ref or "/" in ref or ref in (".", ".."):
        return False
    if not os.path.isdir(os.path.join(root, ref)):
        return False
    return not (is_id(ref) and is_frontend(ref, store_root))


def docker_side(ref, root, store_root=None):
    """The dispatch rule of the verbs both worlds have: Docker's behaviour for a
    front-end container, runc's for anything else (an OCI container under
    --root, or an unknown id, which gets runc's "container does not exist")."""
    return not is_oci(ref, root, store_root) and is_frontend(ref, store_root)
