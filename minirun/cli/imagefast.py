"""`minirun pull` and `minirun unpack` in their plain forms, parsed without click.

Importing click costs more than pulling a small image from a local registry.
When a call is

    pull [--insecure] [-q|--quiet] [--platform P] [--store DIR] REF
    unpack --image SPEC [--no-config] [--platform P] [--store DIR] DEST

(options before the positional argument, each spelled as here), it is parsed
into a PullOptions or UnpackOptions and run by pull_command() or
unpack_command() -- the functions the click commands in cli/image.py call,
so both print and do the same.  Anything else (help, a bad or unknown flag,
a missing or extra argument, options after the positional one) returns False
and goes through click, the reference CLI, which also produces the error
messages.
"""
import os
import sys

from minirun.cli.fastcommon import leave, take_options


class PullOptions:
    """What `minirun pull` was asked to do (click's and the fast parser's result)."""

    __slots__ = ("ref", "insecure", "platform", "quiet", "store_root")

    def __init__(self, ref, insecure=False, platform=None, quiet=False, store_root=None):
        self.ref, self.insecure, self.platform = ref, insecure, platform
        self.quiet, self.store_root = quiet, store_root


def strip_scheme(ref):
    """`http://host/repo:tag` means: that registry over plain http."""
    for scheme in ("http://", "https://"):
        if ref.startswith(scheme):
            return ref[len(scheme):], scheme == "http://"
    return ref, False


def pull_command(opts, echo=None):
    """Pull opts.ref into the store; the name (or digest) on stdout, and
    without quiet the digest on stderr.  echo(text, err) prints a line."""
    from minirun.image import registry
    from minirun.image.store import Store

    echo = echo or _echo
    ref, plain_http = strip_scheme(opts.ref)
    image = registry.pull(ref, store=Store(opts.store_root),
                          insecure=opts.insecure or plain_http, platform=opts.platform,
                          stream=open(os.devnull, "w") if opts.quiet else sys.stderr)
    if not opts.quiet:
        echo(f"Digest: {image.digest}", True)
    echo(image.names[0] if image.names else image.digest, False)


class UnpackOptions:
    """What `minirun unpack` was asked to do."""

    __slots__ = ("dest", "image_spec", "platform", "no_config", "store_root")

    def __init__(self, dest, image_spec=None, platform=None, no_config=False, store_root=None):
        self.dest, self.image_spec, self.platform = dest, image_spec, platform
        self.no_config, self.store_root = no_config, store_root


def image_from(spec, store_root, platform=None, pull_missing=False):
    """LAYOUT_DIR[:TAG] (an OCI layout on disk) or a store name/id."""
    from minirun.image import layout, manifest
    from minirun.image.store import Store

    plat = manifest.parse_platform(platform) if platform else None
    path, tag = layout.split_layout_ref(spec)
    if os.path.isfile(os.path.join(path, "oci-layout")):
        return layout.OCILayout(path).resolve(tag, plat)
    if pull_missing:
        from minirun.image import registry

        return registry.resolve_or_pull(spec, store=Store(store_root), platform=platform)
    return Store(store_root).resolve(spec)


def unpack_command(opts):
    """Unpack an image into DEST/rootfs (+ DEST/config.json unless no_config);
    on any error nothing it made is left."""
    from minirun.errors import MinirunError
    from minirun.image import unpack as unpackmod

    image = image_from(opts.image_spec, opts.store_root, opts.platform)
    dest = opts.dest
    if os.path.exists(dest) and os.listdir(dest):
        raise MinirunError(f"{dest} exists and is not empty")
    made = not os.path.exists(dest)
    os.makedirs(dest, exist_ok=True)
    os.chmod(dest, 0o700)  # setuid files and devices of the image stay private
    rootfs = os.path.join(dest, "rootfs")
    try:
        os.mkdir(rootfs, 0o755)
        unpackmod.unpack_image(image, rootfs)
        if not opts.no_config:
            import json

            from minirun.image import bundle as bundlemod

            try:
                spec = bundlemod.image_spec(image.config, rootfs)
            except MinirunError:  # no Entrypoint/Cmd: keep default_spec's shell
                spec = bundlemod.image_spec(image.config, rootfs, args=["sh"])
            with open(os.path.join(dest, "config.json"), "w") as f:
                json.dump(spec, f, indent=2)
    except BaseException:
        import shutil

        shutil.rmtree(dest if made else rootfs, ignore_errors=True)
        if not made and os.path.exists(os.path.join(dest, "config.json")):
            os.unlink(os.path.join(dest, "config.json"))
        raise


# verb -> (options class, its positional attribute, options taking a value,
# flags, options that must be given); option -> the class's attribute
VERBS = {
    "pull": (PullOptions, "ref", {"--platform": "platform", "--store": "store_root"},
             {"--insecure": "insecure", "-q": "quiet", "--quiet": "quiet"}, ()),
    "unpack": (UnpackOptions, "dest",
               {"--image": "image_spec", "--platform": "platform", "--store": "store_root"},
               {"--no-config": "no_config"}, ("image_spec",)),
}
COMMANDS = {"pull": pull_command, "unpack": unpack_command}


def _echo(text, err):
    stream = sys.stderr if err else sys.stdout
    stream.write(text + "\n")
    stream.flush()


def parse(args):
    """-> PullOptions or UnpackOptions, or None to leave the call to click."""
    if not args or args[0] not in VERBS:
        return None
    kind, positional, values, flags, required = VERBS[args[0]]
    found = {}
    rest = take_options(args[1:], values, flags, found)
    if rest is None or len(rest) != 1 or any(r not in found for r in required):
        return None
    return kind(rest[0], **found)


def try_run(args):
    """Run a plain `pull` or `unpack`; exits when it handled the call, else
    returns False."""
    if os.environ.get("MINIRUN_TRACE"):
        return False  # the group's --trace (from the environment): click's
    opts = parse(args)
    if opts is None:
        return False
    import gc

    # A pull or an unpack makes few reference cycles; the collector's passes
    # over every object imported would be pure overhead.
    gc.disable()
    from minirun import log
    from minirun.cli import guarded

    log.configure(None, "text", False)
    try:
        guarded(lambda: COMMANDS[args[0]](opts))
        status = 0
    except SystemExit as e:  # guarded(): an error, already printed
        status = e.code
    # Everything is on disk and printed (pull and unpack join their threads
    # before they return, even on errors).
    leave(status)
