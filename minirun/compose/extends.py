"""`extends`: a service built on another one, of the same file or of another
(`file:`), as the Compose spec says: the base service's keys, with the
extending service's merged over them by the same rules as a later file
(model.merge_service: command replaced, environment by key, ports appended...).

    services:
      web:
        extends: {service: base, file: common.yaml}    # or `extends: base`
        environment: {MODE: web}

Resolved per file, after interpolation and before files are merged; chains are
followed, a cycle is an error.  Relative paths of a service taken from another
file (build context, env_file, bind sources) are made absolute from that
file's directory, so they mean what they meant there.
"""
import os

from minirun.compose.loader import ComposeError



def resolve(doc, path, read):
    """`doc` (one file, read from `path`) with every service's `extends` applied.
    read(path) -> that file's document (interpolated, x- fields dropped)."""
    services = doc.get("services")
    if not isinstance(services, dict):
        return doc
    out = dict(doc)
    out["services"] = {name: _service(name, svc, path, doc, read, [])
                       for name, svc in services.items()}
    return out


def _service(name, svc, path, doc, read, chain):
    from minirun.compose import model

    if not isinstance(svc, dict) or "extends" not in svc:
        return svc
    where = f"services.{name}.extends"
    ext = svc["extends"]
    if isinstance(ext, str):
        ext = {"service": ext}
    if not isinstance(ext, dict) or not isinstance(ext.get("service"), str) or \
            set(ext) - {"service", "file"}:
        raise ComposeError(f"{where}: must be a service name or a mapping of service and file")
    base_path, base_doc = path, doc
    if ext.get("file") is not None:
        if not isinstance(ext["file"], str):
            raise ComposeError(f"{where}.file: must be a string")
        base_path = os.path.join(os.path.dirname(path), os.path.expanduser(ext["file"]))
        base_doc = read(base_path)
    link = (os.path.abspath(base_path), ext["service"])
    if link in chain:
        cycle = " -> ".join(s for _, s in chain + [link])
        raise ComposeError(f"{where}: circular reference: {cycle}")
    base = (base_doc.get("services") or {}).get(ext["service"])
    if not isinstance(base, dict):
        raise ComposeError(f"{where}: cannot extend service {ext['service']!r}: not found in "
                           f"{os.path.basename(base_path)}")
    base = _service(ext["service"], base, base_path, base_doc, read, chain + [link])
    if base_path != path:
        base = _rebase(base, os.path.dirname(os.path.abspath(base_path)))
    own = {k: v for k, v in svc.items() if k != "extends"}
    return model.merge_service(base, own)


def _absolute(directory, value):
    """A relative bind source (./x, ../x) from `directory`; named volumes, absolute
    and ~ paths as they are."""
    if isinstance(value, str) and value.startswith("."):
        return os.path.normpath(os.path.join(directory, value))
    return value


def _rebase(svc, directory):
    """Relative paths of a service from another file, made absolute from its directory."""
    svc = dict(svc)
    build = svc.get("build")
    if isinstance(build, str) and not os.path.isabs(build):
        svc["build"] = os.path.normpath(os.path.join(directory, build))
    elif isinstance(build, dict) and isinstance(build.get("context", "."), str):
        context = build.get("context", ".")
        svc["build"] = dict(build, context=context if os.path.isabs(context) else
                            os.path.normpath(os.path.join(directory, context)))
    env_file = svc.get("env_file")
    if isinstance(env_file, str):
        env_file = [env_file]
    if isinstance(env_file, list):
        svc["env_file"] = [os.path.join(directory, f) if isinstance(f, str) and
                           not os.path.isabs(f) else
                           dict(f, path=os.path.join(directory, f["path"]))
                           if isinstance(f, dict) and isinstance(f.get("path"), str) and
                           not os.path.isabs(f["path"]) else f for f in env_file]
    volumes = []
    for v in svc.get("volumes") or []:
        if isinstance(v, str):
            source, sep, rest = v.partition(":")
            v = _absolute(directory, source) + sep + rest if sep else v
        elif isinstance(v, dict) and v.get("type") == "bind":
            v = dict(v, source=_absolute(directory, v.get("source")))
        volumes.append(v)
    if "volumes" in svc:
        svc["volumes"] = volumes
    return svc
