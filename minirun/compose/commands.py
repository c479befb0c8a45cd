"""The commands on a project's existing containers (stop, start, restart, kill, rm,
pause, unpause, port), one-off ones (exec, run) and images (build, pull): the
`Commands` half of compose.project.Project."""
import threading

from minirun.compose import adapter, model
from minirun.compose.loader import ComposeError

L = adapter.LABEL


class Commands:
    def stop(self, services=(), timeout=None):
        from minirun.frontend import control

        order = self.select(services, with_deps=False)
        # Dependents first, as Compose stops them.
        for service in reversed(model.dependency_order(self.config["services"], order)):
            if service not in order:
                continue
            recs = self.containers([service], stopped=False)
            parallel([lambda r=r: control.stop(self.fe, r["Id"], timeout) for r in recs])
            for r in recs:
                self.say("Container", name_of(r), "Stopped")

    def start(self, services=()):
        from minirun.frontend import control

        for service in self.select(services, with_deps=False):
            self.wait_dependencies(service)
            for rec in self.containers([service]):
                if control.current_state(self.fe, rec) not in ("running", "restarting"):
                    control.start(self.fe, rec["Id"])
                    self.say("Container", name_of(rec), "Started")

    def restart(self, services=(), timeout=None):
        from minirun.frontend import control

        for service in self.select(services, with_deps=False):
            for rec in self.containers([service]):
                control.stop(self.fe, rec["Id"], timeout)
                control.start(self.fe, rec["Id"])
                self.say("Container", name_of(rec), "Restarted")

    def kill(self, services=(), sig="KILL"):
        from minirun.frontend import control, options

        num = options.parse_signal(sig)
        for service in self.select(services, with_deps=False):
            for rec in self.containers([service], stopped=False):
                control.kill(self.fe, rec["Id"], num)
                self.say("Container", name_of(rec), "Killed")

    def rm(self, services=(), stop=False, volumes=False):
        """Remove stopped containers (with stop=True, running ones are stopped first)."""
        from minirun.frontend import control

        recs = self.containers(self.select(services, with_deps=False), oneoff=None)
        if stop:
            parallel([lambda r=r: control.stop(self.fe, r["Id"]) for r in recs])
        for rec in recs:
            if control.current_state(self.fe, self.fe.load(rec["Id"])) in ("running",
                                                                           "restarting",
                                                                           "paused"):
                continue
            control.remove(self.fe, rec["Id"], volumes=volumes)
            self.say("Container", name_of(rec), "Removed")

    def pause(self, services=(), resume=False):
        from minirun.frontend import control

        for service in self.select(services, with_deps=False):
            for rec in self.containers([service], stopped=False):
                (control.unpause if resume else control.pause)(self.fe, rec["Id"])
                self.say("Container", name_of(rec), "Unpaused" if resume else "Paused")

    def port(self, service, private_port, index=1):
        """'0.0.0.0:8080' for SERVICE's PRIVATE_PORT[/PROTO], or an error."""
        from minirun.frontend import listing

        rec = self.container_of(service, index)
        port = private_port if "/" in private_port else f"{private_port}/tcp"
        found = listing.published_ports(self.fe, rec["Id"], port)
        if not found:
            raise ComposeError(f"no port {port} for container {name_of(rec)}")
        return [host for _, _, host in found]

    # --- one container: exec, run ------------------------------------------------------------
    def container_of(self, service, index=1):
        if service not in self.config["services"]:
            raise ComposeError(f"no such service: {service}")
        for rec in self.containers([service], stopped=False):
            if int(label_of(rec, "container-number") or 0) == index:
                return rec
        raise ComposeError(f"service {service!r} is not running")

    def exec(self, service, command, index=1, tty=True, detach=False, env=(), user=None,
             workdir=None, privileged=False):
        from minirun.frontend import execute

        rec = self.container_of(service, index)
        return execute.exec_in(self.fe, rec["Id"], command, env=env, user=user,
                               workdir=workdir, privileged=privileged, tty=tty,
                               interactive=True, detach=detach)

    def run(self, service, command=None, *, remove=False, detach=False, tty=True, env=(),
            entrypoint=None, no_deps=False, service_ports=False, name=None, user=None,
            workdir=None):
        """A one-off container of `service` (its dependencies are brought up first)."""
        import secrets

        from minirun.frontend import control, create

        if service not in self.config["services"]:
            raise ComposeError(f"no such service: {service}")
        name = name or f"{self.name}-{service}-run-{secrets.token_hex(6)}"
        labels = self.labels(service, 1, oneoff=True)
        ep = None if entrypoint is None else ([entrypoint] if entrypoint else [])
        opts = adapter.run_options(self.config, service, name=name, labels=labels,
                                   command=command or None, entrypoint=ep, extra_env=env,
                                   publish=service_ports, tty=tty and not detach,
                                   interactive=not detach, auto_remove=remove)
        if user is not None:
            opts.user = user
        if workdir is not None:
            opts.workdir = workdir
        deps = [] if no_deps else [s for s in self.select([service]) if s != service]
        if deps:
            self.up(deps, detach=True)
        else:
            self.ensure_networks([service])
            self.ensure_volumes([service])
        self.check_images([service])
        self.wait_dependencies(service)
        rec = create.create(self.fe, opts, progress=self.out)
        if detach:
            control.start(self.fe, rec["Id"])
            print(name)
            return 0
        return control.start(self.fe, rec["Id"], attach=True, interactive=True)

    # --- images ---------------------------------------------------------------------------
    def build(self, services=()):
        wanted = [s for s in self.select(services, with_deps=False)
                  if "build" in self.services[s]]
        if not wanted:
            return
        try:
            from minirun.compose import build as build_mod
        except ImportError:
            build_mod = None
        if build_mod is None or not build_mod.available():
            raise ComposeError("build: is not available in this minirun (no image builder); "
                               "build the image and name it in image:")
        for service in wanted:
            build_mod.build(self.fe, self.services[service],
                            adapter.image_name(self.name, service, self.services[service]),
                            out=self.out)
            self.say("Image", adapter.image_name(self.name, service, self.services[service]),
                     "Built")

    def pull(self, services=()):
        from minirun.frontend.create import resolve_image

        refs = {self.services[s]["image"] for s in self.select(services, with_deps=False)
                if "image" in self.services[s]}
        store = self.fe.image_store()
        for ref in sorted(refs):
            if store.lookup(ref) or ("/" not in ref and store.lookup("localhost/" + ref)):
                self.say("Image", ref, "Present")   # no registry round trip for local images
                continue
            resolve_image(self.fe, ref, self.out)
            self.say("Image", ref, "Pulled")


def label_of(rec, key):
    return (rec["Config"].get("Labels") or {}).get(f"{L}.{key}")


def name_of(rec):
    return rec["Name"].lstrip("/")


def parallel(calls):
    """Run calls at once (stops wait for their grace periods side by side); the
    first error is raised after all have finished."""
    if len(calls) <= 1:
        for call in calls:
            call()
        return
    errors = []

    def guard(call):
        try:
            call()
        except BaseException as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=guard, args=(c,)) for c in calls]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
