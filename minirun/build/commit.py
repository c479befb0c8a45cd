"""`minirun commit CONTAINER [REF]`: a front-end container's changes as a new image.

The container's overlay upper dir (<store>/containers/<id>/upper) is the
layer, as a build step's is (layer.py); /etc/hosts, /etc/hostname and
/etc/resolv.conf are left out (they are the runtime's bind-mount targets,
not the container's changes - Docker leaves them out too).  `-c` takes the
Dockerfile instructions Docker accepts there; they change the config only.
"""
import json
import os

from minirun.build import dockerfile as dfmod
from minirun.build import layer as layermod
from minirun.build.images import State
from minirun.errors import MinirunError
from minirun.image import manifest as mf
from minirun.image import reference
from minirun.image.store import Store

CHANGE_INSTRUCTIONS = {"CMD", "ENTRYPOINT", "ENV", "EXPOSE", "LABEL", "ONBUILD", "USER",
                       "VOLUME", "WORKDIR", "STOPSIGNAL", "HEALTHCHECK", "SHELL"}
RUNTIME_FILES = ("etc/hosts", "etc/hostname", "etc/resolv.conf")


def parse_changes(changes):
    out = []
    for n, text in enumerate(changes, 1):
        try:
            inst = dfmod._instruction(text, n)
        except dfmod.DockerfileError as e:
            raise MinirunError(f"invalid --change {text!r}: {e}") from None
        if inst.cmd not in CHANGE_INSTRUCTIONS:
            raise MinirunError(f"{inst.cmd} is not a valid change command")
        out.append(inst)
    return out


def commit_container(container, ref=None, changes=(), message="", author="", store_root=None,
                     runtime_root=None):
    from minirun.frontend.records import Frontend

    insts = parse_changes(changes)
    target = None
    if ref:
        try:
            target = reference.parse(ref)
        except reference.InvalidReference as e:
            raise MinirunError(f"invalid reference format: {e}") from None
    fe = Frontend(store_root, runtime_root or "/run/minirun")
    cid, rec = fe.find(container)
    store = Store(fe.store_root)
    cdir = store.path("containers", cid)
    try:
        with open(os.path.join(cdir, "image.json")) as f:
            manifest_digest = json.load(f)["manifest"]
    except (OSError, ValueError, KeyError):
        raise MinirunError(f"container {container} has no root filesystem to commit") from None
    upper = os.path.join(cdir, "upper")
    if not os.path.isdir(upper):
        raise MinirunError(f"container {container}: its rootfs is not an overlay; cannot commit")
    epoch = layermod.source_date_epoch()
    with store.shared():
        state = State.from_image(mf.Image(store, manifest_digest))
        state.run_config.pop("OnBuild", None)
        if not layermod.is_empty(upper):
            desc, diff_id = layermod.write_layer(store, upper, epoch, exclude=RUNTIME_FILES)
            state.add_layer(desc, diff_id)
            empty = False
        else:
            empty = True
        _apply_changes(state, insts, store)
        if author:
            state.config["author"] = author
        cmd = " ".join([rec.get("Path", "")] + list(rec.get("Args") or [])).strip()
        state.add_history(cmd, epoch, empty_layer=empty, comment=message or None)
        if author:
            state.config["history"][-1]["author"] = author
        digest = state.write(store)
        if target is not None:
            store.tag(target, digest)
        else:
            store.add_untagged(digest)
        return mf.Image(store, digest)


def _apply_changes(state, insts, store):
    """Run the -c instructions as metadata steps of a one-stage build."""
    if not insts:
        return
    from minirun.build.executor import BuildOptions, Builder
    from minirun.build.instructions import StageRun
    from minirun.build.lexer import Lexer

    builder = Builder(BuildOptions(".", quiet=True, no_cache=True), store)
    builder.lexer = Lexer()
    builder.meta_args = {}
    run = StageRun(builder, None)
    run.state = state
    hist = len(state.config.get("history") or [])
    for inst in insts:
        if inst.cmd == "WORKDIR":  # commit sets it; nothing is created
            import posixpath

            path = run.word(inst.rest)
            base = state.run_config.get("WorkingDir") or "/"
            state.run_config["WorkingDir"] = posixpath.normpath(posixpath.join(base, path))
            continue
        run.dispatch(inst)
        new = run.state
        state.config, state.layers = new.config, new.layers
        run.state = state
    del state.config["history"][hist:]  # one history entry for the commit
