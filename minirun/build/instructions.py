"""One stage of a build: FROM, then each instruction, each a cached step."""
import os
import posixpath
import re

from minirun.build import cache as cachemod
from minirun.build import dockerfile as dfmod
from minirun.build.context import SourceTree
from minirun.build.images import State, set_env
from minirun.errors import MinirunError
from minirun.image import manifest as mf

DEFAULT_SHELL = ["/bin/sh", "-c"]
METADATA = {"ENV", "LABEL", "USER", "CMD", "ENTRYPOINT", "EXPOSE", "VOLUME", "STOPSIGNAL",
            "SHELL", "HEALTHCHECK", "MAINTAINER", "ONBUILD"}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNIT = {"ns": 1, "us": 1e3, "µs": 1e3, "ms": 1e6, "s": 1e9, "m": 60e9, "h": 3600e9}


def _short(digest):
    return digest.partition(":")[2][:12]


def parse_duration(text, line):
    if text in ("0", ""):
        return 0
    pos, total = 0, 0
    for m in _DURATION.finditer(text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNIT[m.group(2)]
        pos = m.end()
    if pos != len(text) or pos == 0:
        raise dfmod.DockerfileError(line, f"invalid duration {text!r}")
    return int(total)


def expand_ports(words, line):
    out = {}
    for word in words:
        spec, _, proto = word.partition("/")
        proto = (proto or "tcp").lower()
        if proto not in ("tcp", "udp", "sctp"):
            raise dfmod.DockerfileError(line, f"invalid proto: {proto}")
        lo, _, hi = spec.partition("-")
        if not lo.isdigit() or (hi and not hi.isdigit()):
            raise dfmod.DockerfileError(line, f"invalid containerPort: {spec}")
        for port in range(int(lo), int(hi or lo) + 1):
            out[f"{port}/{proto}"] = {}
    return out


def Workspace(store, state, scratch=None):  # noqa: N802 - the class, imported when needed
    from minirun.build.workspace import Workspace as _Workspace

    return _Workspace(store, state, scratch)


def open_root(path):
    return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)


class StageRun:
    def __init__(self, builder, stage):
        self.b = builder
        self.stage = stage
        self.args = {}       # ARGs declared in this stage that have a value
        self.cmd_set = False
        self.state = None

    # --- helpers ----------------------------------------------------------------
    def env(self):
        """Variables for substitution: ARGs, overridden by ENV (as in Docker)."""
        return {**self.args, **self.state.env()}

    def word(self, text):
        return self.b.lexer.process_word(text, self.env())

    def words(self, inst):
        if inst.json is not None:
            return [self.word(w) for w in inst.json]
        return self.b.lexer.process_words(inst.rest, self.env())

    def flag(self, inst, name):
        values = inst.flags.get(name)
        return self.word(values[-1]) if values else None

    def run_env(self):
        """Environment of a RUN: build args in scope (and proxy args), under ENV."""
        from minirun.build.executor import PROXY_ARGS

        env = dict(self.args)
        for name in PROXY_ARGS:
            if name in self.b.opts.build_args:
                env.setdefault(name, self.b.opts.build_args[name])
        cfg_env = self.state.env()
        return [f"{k}={v}" for k, v in env.items() if k not in cfg_env]

    # --- the stage ---------------------------------------------------------------
    def run(self):
        inst = self.stage.from_inst
        self.b.step(inst)
        self.from_(inst)
        triggers = list(self.state.run_config.get("OnBuild") or [])
        if triggers:
            self.state.run_config["OnBuild"] = None
            self.b.say(f"# Executing {len(triggers)} build trigger{'s' * (len(triggers) > 1)}")
            for text in triggers:
                self.dispatch(dfmod._instruction(text, inst.line))
        for inst in self.stage.instructions:
            self.b.step(inst)
            self.dispatch(inst)
        if self.state.digest is None:
            self.state.write(self.b.store)
        return self.state

    def from_(self, inst):
        words = inst.rest.split()
        name = self.b.lexer.process_word(words[0], self.b.meta_args)
        if not name:
            raise dfmod.DockerfileError(inst.line, "base name should not be blank")
        prior = self.b.stage_state(name) if not name.isdigit() else None
        if prior is not None:
            self.state = prior.child()
        elif name.lower() == "scratch":
            self.state = State.scratch()
            self.state.write(self.b.store)
        else:
            platform = self.flag(inst, "platform") if inst.flags.get("platform") else None
            if platform:
                self.b.opts.platform = self.b.opts.platform or platform
            self.state = State.from_image(self.b.image(name))
        if not any(e.startswith("PATH=") for e in self.state.run_config.get("Env") or []):
            from minirun.image.bundle import DEFAULT_PATH

            # Docker adds the default PATH to a stage whose base has none (scratch).
            self.state.set_env("PATH", DEFAULT_PATH.partition("=")[2])
        self.b.say(f" ---> {_short(mf.Image(self.b.store, self.state.digest).id)}")

    def dispatch(self, inst):
        from minirun.build.steps_run import RunFailed

        handler = getattr(self, "do_" + inst.cmd.lower())
        try:
            handler(inst)
        except (dfmod.DockerfileError, RunFailed):
            raise
        except MinirunError as e:
            if str(e).startswith(("COPY failed", "ADD failed")):
                raise
            wrapped = MinirunError(f"{inst.cmd} (line {inst.line}): {e}")
            wrapped.exit_code = e.exit_code
            raise wrapped from None

    def cached_step(self, key_text, apply, files=None, empty_layer=True, extra=None):
        """Look the step up in the cache; else apply(state) to a child state.
        apply returns True when it added a layer."""
        parent = self.state.digest
        key = cachemod.key(parent, key_text if extra is None else f"{key_text}\0{extra}",
                           self.args, files)
        if not self.b.opts.no_cache:
            hit = self.b.cache.get(key)
            if hit is not None:
                self.b.store.add_untagged(hit.digest, intermediate=True)
                self.state = State.from_image(hit)
                self.b.say(" ---> Using cache")
                self.b.say(f" ---> {_short(hit.id)}")
                return
        new = self.state.child()
        added = apply(new)
        new.add_history(key_text, self.b.epoch,
                        empty_layer=not added and empty_layer)
        digest = new.write(self.b.store)
        # Kept as Docker's classic builder keeps them: `run <step id>` works.
        self.b.store.add_untagged(digest, intermediate=True)
        self.b.cache.put(key, digest)
        self.state = new
        self.b.say(f" ---> {_short(mf.Image(self.b.store, digest).id)}")

    def meta(self, text, change):
        def apply(state):
            change(state.run_config)
            return False
        self.cached_step(f"/bin/sh -c #(nop) {text}", apply)

    # --- metadata instructions ---------------------------------------------------------
    def do_env(self, inst):
        env = self.env()
        pairs = [(self.b.lexer.process_word(k, env), self.b.lexer.process_word(v, env))
                 for k, v in dfmod.parse_pairs("ENV", inst.rest, self.b.lexer.escape)]

        def change(cfg):
            for k, v in pairs:
                set_env(cfg, k, v)
        self.meta("ENV " + " ".join(f"{k}={v}" for k, v in pairs), change)

    def do_label(self, inst):
        env = self.env()
        pairs = [(self.b.lexer.process_word(k, env), self.b.lexer.process_word(v, env))
                 for k, v in dfmod.parse_pairs("LABEL", inst.rest, self.b.lexer.escape)]

        def change(cfg):
            labels = dict(cfg.get("Labels") or {})
            labels.update(pairs)
            cfg["Labels"] = labels
        self.meta("LABEL " + " ".join(f"{k}={v}" for k, v in pairs), change)

    def do_maintainer(self, inst):
        def apply(state):
            state.config["author"] = inst.rest
            return False
        self.cached_step(f"/bin/sh -c #(nop)  MAINTAINER {inst.rest}", apply)

    def do_arg(self, inst):
        for name, raw in dfmod.parse_pairs("ARG", inst.rest, self.b.lexer.escape):
            default = None if raw is None else self.word(raw)
            if name in self.b.opts.build_args:
                value = self.b.opts.build_args[name]
                self.b.used_args.add(name)
            elif default is None and name in self.b.meta_args:
                value = self.b.meta_args[name]
            else:
                value = default
            if value is not None:
                self.args[name] = value
            else:
                self.args.pop(name, None)

    def do_user(self, inst):
        user = self.word(inst.rest)
        self.meta(f"USER {user}", lambda cfg: cfg.__setitem__("User", user))

    def _command(self, inst):
        if inst.json is not None:
            return list(inst.json)
        return list(self.state.run_config.get("Shell") or DEFAULT_SHELL) + [inst.rest]

    def do_cmd(self, inst):
        cmd = self._command(inst)
        self.cmd_set = True
        self.meta(f"CMD {_json(cmd)}", lambda cfg: cfg.__setitem__("Cmd", cmd))

    def do_entrypoint(self, inst):
        ep = self._command(inst) if inst.json is not None or inst.rest else None
        reset = not self.cmd_set

        def change(cfg):
            cfg["Entrypoint"] = ep
            if reset:
                cfg["Cmd"] = None
        self.meta(f"ENTRYPOINT {_json(ep)}", change)

    def do_shell(self, inst):
        shell = list(inst.json)
        self.meta(f"SHELL {_json(shell)}", lambda cfg: cfg.__setitem__("Shell", shell))

    def do_expose(self, inst):
        ports = expand_ports(self.words(inst), inst.line)

        def change(cfg):
            cfg["ExposedPorts"] = {**(cfg.get("ExposedPorts") or {}), **ports}
        self.meta("EXPOSE " + " ".join(sorted(ports)), change)

    def do_volume(self, inst):
        vols = [v for v in self.words(inst)]
        if not vols or any(not v.strip() for v in vols):
            raise dfmod.DockerfileError(inst.line, "VOLUME specified can not be an empty string")

        def change(cfg):
            cfg["Volumes"] = {**(cfg.get("Volumes") or {}), **{v: {} for v in vols}}
        self.meta(f"VOLUME {_json(vols)}", change)

    def do_stopsignal(self, inst):
        sig = self.word(inst.rest)
        self.meta(f"STOPSIGNAL {sig}", lambda cfg: cfg.__setitem__("StopSignal", sig))

    def do_onbuild(self, inst):
        word, _, rest = inst.rest.partition(" ")
        trigger = f"{word.upper()} {rest.strip()}"

        def change(cfg):
            cfg["OnBuild"] = list(cfg.get("OnBuild") or []) + [trigger]
        self.meta(f"ONBUILD {trigger}", change)

    def do_healthcheck(self, inst):
        word, _, rest = inst.rest.partition(" ")
        if word.upper() == "NONE":
            check = {"Test": ["NONE"]}
        else:
            rest = rest.strip()
            sub = dfmod._instruction("CMD " + rest, inst.line)
            test = ["CMD"] + sub.json if sub.json is not None else ["CMD-SHELL", rest]
            check = {"Test": test}
            for flag, field in (("interval", "Interval"), ("timeout", "Timeout"),
                                ("start-period", "StartPeriod"),
                                ("start-interval", "StartInterval")):
                if inst.flags.get(flag):
                    value = parse_duration(inst.flags[flag][-1], inst.line)
                    if value:
                        check[field] = value
            if inst.flags.get("retries"):
                retries = inst.flags["retries"][-1]
                if not retries.isdigit():
                    raise dfmod.DockerfileError(inst.line, f"invalid --retries {retries!r}")
                if int(retries):
                    check["Retries"] = int(retries)
        self.meta(f"HEALTHCHECK {_json(check)}", lambda cfg: cfg.__setitem__("Healthcheck", check))

    # --- filesystem instructions -----------------------------------------------------
    def do_workdir(self, inst):
        path = self.word(inst.rest)
        if not path.startswith("/"):
            path = posixpath.join(self.state.run_config.get("WorkingDir") or "/", path)
        path = posixpath.normpath(path)

        def apply(state):
            state.run_config["WorkingDir"] = path
            return self._mkdir_workdir(state, path)
        self.cached_step(f"/bin/sh -c #(nop) WORKDIR {path}", apply)

    def _mkdir_workdir(self, state, path):
        """Create a missing WORKDIR, owned by the USER (as BuildKit and buildah do)."""
        from minirun.image.bundle import resolve_user
        from minirun.linux.paths import mkdirs_in_root, open_in_root

        with Workspace(self.b.store, self.state, self.b.scratch) as ws:
            rootfs = ws.mount()
            root_fd = open_root(rootfs)
            try:
                try:
                    os.close(open_in_root(root_fd, path, os.O_PATH))
                    return False
                except FileNotFoundError:
                    pass
                user = resolve_user(rootfs, state.run_config.get("User"))
                parts = [p for p in path.split("/") if p]
                for n in range(1, len(parts) + 1):
                    sub = "/".join(parts[:n])
                    try:
                        os.close(open_in_root(root_fd, sub, os.O_PATH))
                        continue
                    except FileNotFoundError:
                        fd = mkdirs_in_root(root_fd, sub, 0o755)
                    try:
                        os.chown(f"/proc/self/fd/{fd}", user["uid"], user["gid"])
                    finally:
                        os.close(fd)
            finally:
                os.close(root_fd)
            return ws.commit(state, self.b.epoch)

    def do_run(self, inst):
        from minirun.build import steps_run

        argv = self._command(inst)
        display = " ".join(argv)
        env = self.run_env()
        network = self.flag(inst, "network") or self.b.opts.network

        def apply(state):
            with Workspace(self.b.store, self.state, self.b.scratch) as ws:
                self.b.say(f" ---> Running in {os.path.basename(ws.tmp)[-12:]}")
                steps_run.run_command(ws, state.config, argv, env, display,
                                      network=network, runtime_root=self.b.opts.runtime_root,
                                      quiet=self.b.opts.quiet)
                return ws.commit(state, self.b.epoch)
        # RUN --network=none x is another step than RUN x (history shows the command)
        self.cached_step(display, apply, extra=network if inst.flags.get("network") else None)

    def do_copy(self, inst, add=False):
        args = self.words(inst)
        sources, dest = args[:-1], args[-1]
        src_from = self.flag(inst, "from")
        chown, chmod = self.flag(inst, "chown"), self.flag(inst, "chmod")
        if chmod is not None and not re.fullmatch(r"[0-7]{1,4}", chmod):
            raise dfmod.DockerfileError(inst.line, f"invalid chmod parameter {chmod!r}")
        if src_from is not None:
            if add:
                raise dfmod.DockerfileError(inst.line, "ADD does not support --from")
            return self._copy_from(inst, src_from, sources, dest, chown, chmod)
        urls = [s for s in sources if add and s.startswith(("http://", "https://"))]
        local = [s for s in sources if s not in urls]
        tree = self.b.context
        expanded = [p for s in local for p in tree.expand(s)]
        parts = [(tree, expanded)] if expanded else []
        files = tree.checksum(expanded)
        download = None
        try:
            if urls:
                from minirun.build import remote

                download = remote.fetch_all(urls, self.b.store)
                parts.append((download.tree, download.names))
                files += " " + download.tree.checksum(download.names)
            self._copy(inst, parts, dest, chown, chmod, files, keep_owner=False, add=add,
                       many=len(sources) > 1)
        finally:
            if download is not None:
                download.close()

    def do_add(self, inst):
        self.do_copy(inst, add=True)

    def _copy_from(self, inst, src_from, sources, dest, chown, chmod):
        state = self.b.stage_state(src_from)
        if state is None:
            state = State.from_image(self.b.image(src_from))
        with Workspace(self.b.store, state, self.b.scratch) as src_ws:
            tree = SourceTree(src_ws.mount(), name=f"stage {src_from}")
            try:
                expanded = [p for s in sources for p in tree.expand(s)]
                files = "image:" + mf.Image(self.b.store, state.digest).id
                self._copy(inst, [(tree, expanded)], dest, chown, chmod, files, keep_owner=True,
                           many=len(expanded) > 1)
            finally:
                tree.close()

    def _copy(self, inst, parts, dest, chown, chmod, files, keep_owner, add=False, many=False):
        """parts: [(SourceTree, expanded sources)]."""
        flags = "".join(f"--{k}={v[-1]} " for k, v in sorted(inst.flags.items()))
        names = [p for _, srcs in parts for p in srcs]
        text = f"/bin/sh -c #(nop) {inst.cmd} {flags}{_json(names)} in {dest}"
        many = many or len(names) > 1
        workdir = self.state.run_config.get("WorkingDir") or "/"

        def apply(state):
            from minirun.build.steps_copy import CopyOptions, copy_sources

            with Workspace(self.b.store, self.state, self.b.scratch) as ws:
                rootfs = ws.mount()
                opts = CopyOptions(chown=_resolve_chown(rootfs, chown) if chown else None,
                                   chmod=int(chmod, 8) if chmod else None,
                                   keep_owner=keep_owner)
                root_fd = open_root(rootfs)
                try:
                    for tree, sources in parts:
                        copy_sources(tree, sources, root_fd, dest, opts, workdir, add=add,
                                     dest_is_dir=many or None)
                finally:
                    os.close(root_fd)
                return ws.commit(state, self.b.epoch)
        self.cached_step(text, apply, files=files)


def _resolve_chown(rootfs, spec):
    """--chown=user[:group]: names from the image's passwd/group; a user
    alone means the group of the same number (Docker's rule)."""
    from minirun.image.bundle import read_db

    user, _, group = spec.partition(":")

    def lookup(db, name, what):
        if name.isdigit():
            return int(name)
        for row in read_db(rootfs, db):
            if len(row) > 2 and row[0] == name and row[2].isdigit():
                return int(row[2])
        raise MinirunError(f"unable to convert {what} {name} to an id: no such {what} in {db}")

    uid = lookup("/etc/passwd", user, "user")
    gid = lookup("/etc/group", group, "group") if group else uid
    return uid, gid


def _json(value):
    import json

    return json.dumps(value, separators=(",", ":"))
