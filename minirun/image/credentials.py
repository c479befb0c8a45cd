"""Registry credentials: minirun's own auth file and Docker's config.json.

`minirun login` writes ~/.config/minirun/auth.json (or $MINIRUN_AUTH_FILE)
under a lock, atomically, mode 0600; a pull reads that file, then
~/.docker/config.json, under the keys Docker itself uses for a registry.
"""
import os

from minirun import jsonio
from minirun.image import reference


def auth_file():
    if os.environ.get("MINIRUN_AUTH_FILE"):
        return os.environ["MINIRUN_AUTH_FILE"]
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.expanduser("~/.config")
    return os.path.join(base, "minirun", "auth.json")


def _docker_config():
    base = os.environ.get("DOCKER_CONFIG") or os.path.expanduser("~/.docker")
    return os.path.join(base, "config.json")


def _auth_keys(domain):
    keys = [domain, f"https://{domain}", f"http://{domain}", f"https://{domain}/v1/",
            f"https://{domain}/v2/"]
    if domain == reference.DEFAULT_DOMAIN:
        keys += ["https://index.docker.io/v1/", "index.docker.io", "registry-1.docker.io"]
    return keys


def load_credentials(domain):
    """(username, password) for a registry, or None."""
    for path in (auth_file(), _docker_config()):
        try:
            with open(path) as f:
                auths = jsonio.load(f).get("auths", {})
        except (OSError, ValueError, AttributeError):
            continue
        for key in _auth_keys(domain):
            entry = auths.get(key)
            if not entry:
                continue
            if entry.get("auth"):
                import base64

                try:
                    user, _, pw = base64.b64decode(entry["auth"]).decode().partition(":")
                except (ValueError, UnicodeDecodeError):
                    continue
                return user, pw
            if entry.get("username"):
                return entry["username"], entry.get("password", "")
    return None


def _edit_auth_file(change):
    import fcntl
    import json

    path = auth_file()
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    with open(path + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            with open(path) as f:
                doc = json.load(f)
        except (OSError, ValueError):
            doc = {}
        auths = doc.setdefault("auths", {})
        result = change(auths)
        tmp = f"{path}.tmp-{os.getpid()}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(doc, f, indent=1)
        os.rename(tmp, path)
        return result


def save_credentials(domain, username, password):
    import base64

    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    _edit_auth_file(lambda auths: auths.__setitem__(domain, {"auth": token}))


def remove_credentials(domain):
    return _edit_auth_file(lambda auths: any([auths.pop(k, None) is not None
                                              for k in _auth_keys(domain)]))
