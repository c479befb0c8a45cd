"""`minirun build`: run a Dockerfile's steps, stage by stage, with the cache.

Output is Docker's classic (non-BuildKit) plain mode:

    Step 2/4 : RUN make
     ---> Running in 3f2a9c1b7d20
    <the command's output>
     ---> 9d8e7f6a5b4c            (the step's image id)
    Step 3/4 : COPY . /src
     ---> Using cache
     ---> 1a2b3c4d5e6f
    Successfully built 1a2b3c4d5e6f
    Successfully tagged app:latest

Every step leaves an (untagged) image in the store; the cache (cache.py)
maps a step's key to it.  Instructions are dispatched by instructions.py.
"""
import os
import sys

from minirun.build import cache as cachemod
from minirun.build import dockerfile as dfmod
from minirun.build import stages as stagemod
from minirun.build.context import SourceTree
from minirun.build.layer import source_date_epoch
from minirun.build.lexer import Lexer
from minirun.errors import MinirunError
from minirun.image import manifest as mf
from minirun.image import reference

PROXY_ARGS = ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY",
              "ftp_proxy", "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy")


class BuildOptions:
    """What `minirun build` was asked, parsed once."""

    def __init__(self, context, dockerfile=None, tags=(), build_args=None, target=None,
                 no_cache=False, pull=False, network="host", quiet=False, runtime_root=None,
                 store_root=None, platform=None, labels=None, iidfile=None):
        self.context = os.path.abspath(context)
        self.dockerfile = dockerfile
        self.tags = list(tags)
        self.build_args = dict(build_args or {})
        self.target = target
        self.no_cache = no_cache
        self.pull = pull
        self.network = "host" if network in (None, "", "default") else network
        self.quiet = quiet
        self.runtime_root = runtime_root
        self.store_root = store_root
        self.platform = platform
        self.labels = dict(labels or {})   # --label: set on the final image
        self.iidfile = iidfile


def parse_build_args(items, environ=None):
    """--build-arg K=V, or K alone: the value from the environment (if set)."""
    environ = os.environ if environ is None else environ
    out = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not key:
            raise MinirunError(f"invalid build arg {item!r}")
        if eq:
            out[key] = value
        elif key in environ:
            out[key] = environ[key]
    return out


def read_dockerfile(opts):
    if not os.path.isdir(opts.context):
        raise MinirunError(f"unable to prepare context: path {opts.context!r} not found")
    if opts.dockerfile == "-":
        return sys.stdin.read()
    # -f is relative to the current directory (as docker's); the default is
    # the context's Dockerfile.
    path = opts.dockerfile or os.path.join(opts.context, "Dockerfile")
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except FileNotFoundError:
        raise MinirunError(f"unable to prepare context: unable to evaluate symlinks in "
                           f"Dockerfile path: lstat {path}: no such file or directory") from None
    except UnicodeDecodeError as e:
        raise MinirunError(f"{path}: not UTF-8 text: {e}") from None


class Builder:
    def __init__(self, opts, store, out=None):
        self.opts = opts
        self.store = store
        self.out = out or sys.stdout
        self.cache = cachemod.Cache(store)
        self.epoch = source_date_epoch()
        self.used_args = set()
        self.step_no = 0
        self.total = 0
        self.results = {}       # stage index -> State
        self.stage_names = {}   # stage name -> index
        self._scratch = None

    @property
    def scratch(self):
        """The build's tmpfs scratch area, mounted when a step first needs it."""
        if self._scratch is None:
            from minirun.build.workspace import Scratch

            self._scratch = Scratch(self.store)
        return self._scratch

    def close(self):
        if self._scratch is not None:
            self._scratch.close()
            self._scratch = None

    def say(self, text):
        if not self.opts.quiet:
            self.out.write(text + "\n")
            self.out.flush()

    def step(self, inst):
        self.step_no += 1
        self.say(f"Step {self.step_no}/{self.total} : {inst.original}")

    def build(self, text):
        df = dfmod.parse(text)
        self.lexer = Lexer(df.escape)
        meta, stages = stagemod.split(df)
        goal, needed = stagemod.needed(stages, self.opts.target)
        self.total = len(meta) + sum(1 + len(stages[n].instructions) for n in needed)
        self.context = SourceTree.context(self.opts.context)
        try:
            self.meta_args = {}
            for inst in meta:
                self.step(inst)
                for name, raw in dfmod.parse_pairs("ARG", inst.rest, df.escape):
                    default = None if raw is None else self.lexer.process_word(raw,
                                                                               self.meta_args)
                    value = self.opts.build_args.get(name, default)
                    if name in self.opts.build_args:
                        self.used_args.add(name)
                    if value is not None:
                        self.meta_args[name] = value
                    self.meta_declared = True
            from minirun.build.instructions import StageRun

            for n in needed:
                stage = stages[n]
                self.results[n] = StageRun(self, stage).run()
                if stage.name:
                    self.stage_names[stage.name] = n
        finally:
            self.context.close()
        final = self.results[goal]
        unused = sorted(set(self.opts.build_args) - self.used_args - set(PROXY_ARGS))
        if unused:
            self.say(f"[Warning] One or more build-args [{' '.join(unused)}] were not consumed")
        return final

    def stage_state(self, ref):
        """The State of an earlier stage by name or index, or None."""
        n = self.stage_names.get(ref.lower())
        if n is None and ref.isdigit():
            n = int(ref) if int(ref) in self.results else None
        return self.results.get(n) if n is not None else None

    def image(self, name):
        """An image from the store (pulled when missing, or always with --pull)."""
        if not self.opts.pull:
            found = self.store.lookup(name)
            if found is not None:
                return found
        from minirun.image import registry  # http: imported only to pull

        stream = open(os.devnull, "w") if self.opts.quiet else self.out
        try:
            if self.opts.pull:
                return registry.pull(name, store=self.store, platform=self.opts.platform,
                                     stream=stream)
            return registry.resolve_or_pull(name, store=self.store, platform=self.opts.platform,
                                            stream=stream)
        except MinirunError as e:
            raise MinirunError(f"pull access denied for {name}, repository does not exist or "
                               f"may require 'minirun login': {e}") from None


def run_build(opts, out=None):
    """Build; returns the final Image (tagged with opts.tags)."""
    from minirun.image.store import Store

    refs = []
    for tag in opts.tags:
        try:
            refs.append(reference.parse(tag))
        except reference.InvalidReference as e:
            raise MinirunError(f"invalid argument {tag!r} for \"-t, --tag\" flag: {e}") from None
    text = read_dockerfile(opts)
    store = Store(opts.store_root).ensure()
    builder = Builder(opts, store, out)
    with store.shared():
        try:
            final = builder.build(text)
        finally:
            builder.close()
        if opts.labels:
            final = final.child()
            final.run_config["Labels"] = {**(final.run_config.get("Labels") or {}),
                                          **opts.labels}
            final.digest = None
        digest = final.digest or final.write(store)
        image = mf.Image(store, digest)
        for ref in refs:
            store.tag(ref, digest)
        if not refs:  # Docker's <none>:<none>, run by its id
            store.add_untagged(digest)
    if opts.iidfile:
        tmp = f"{opts.iidfile}.{os.getpid()}.tmp"
        with open(tmp, "w") as f:
            f.write(image.id)
        os.replace(tmp, opts.iidfile)
    if opts.quiet:
        (out or sys.stdout).write(image.id + "\n")
        return image
    builder.say(f"Successfully built {image.id.partition(':')[2][:12]}")
    for ref in refs:
        tag = f":{ref.tag}" if ref.tag else f"@{ref.digest}"
        builder.say(f"Successfully tagged {ref.familiar}{tag}")
    return image


