"""`minirun pull` in its plain forms, parsed without click.

Importing click costs more than pulling a small image from a local registry.
When a call is `pull [--insecure] [-q|--quiet] [--platform P] [--store DIR]
REF` (options before the reference, each spelled as below), it is parsed
here into a PullOptions and run by pull_command() -- the same function the
click command in cli/image.py calls, so both print the same thing.  Anything
else (help, a bad or unknown flag, a missing or extra argument, options after
the reference) returns False and goes through click, the reference CLI, which
also produces the error messages.
"""
import os
import sys

# option -> PullOptions attribute; flags take no value
VALUES = {"--platform": "platform", "--store": "store_root"}
FLAGS = {"--insecure": "insecure", "-q": "quiet", "--quiet": "quiet"}


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


def _echo(text, err):
    stream = sys.stderr if err else sys.stdout
    stream.write(text + "\n")
    stream.flush()


def parse(args):
    """-> PullOptions, or None to leave the call to click."""
    if not args or args[0] != "pull":
        return None
    found = {}
    i = 1
    while i < len(args) and args[i].startswith("-"):
        name, eq, value = args[i].partition("=")
        if name in VALUES:
            if not eq:
                i += 1
                if i >= len(args):
                    return None
                value = args[i]
            found[VALUES[name]] = value
        elif name in FLAGS and not eq:
            found[FLAGS[name]] = True
        else:
            return None
        i += 1
    if len(args) != i + 1:
        return None
    return PullOptions(args[i], **found)


def try_run(args):
    """Run a plain `pull`; exits when it handled the call, else returns False."""
    if os.environ.get("MINIRUN_TRACE"):
        return False  # the group's --trace (from the environment): click's
    opts = parse(args)
    if opts is None:
        return False
    import gc

    # A pull makes few reference cycles; the collector's passes over every
    # object imported would be pure overhead.
    gc.disable()
    from minirun import log
    from minirun.cli import guarded

    log.configure(None, "text", False)
    try:
        guarded(lambda: pull_command(opts))
        status = 0
    except SystemExit as e:  # guarded(): an error, already printed
        status = e.code
    # Everything is on disk and printed: skip the interpreter's teardown of
    # modules and of the download threads' connections (~10 ms after a
    # multi-layer pull, a sixth of it).
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status if isinstance(status, int) else 1)
