"""A compose project's commands over the front end's library API.

Names and labels are Docker Compose's: containers <project>-<service>-<n>,
networks <project>_<name>, volumes <project>_<name>, and com.docker.compose.*
labels on containers (project, service, container-number, oneoff,
config-hash, ...) and volumes; a project's containers are found by label.
`up` converges: a container whose config-hash (or image) is unchanged is
kept (started if stopped), a changed one is recreated, extra replicas go.
"""
import hashlib
import json
import sys
import threading
import time

from minirun.compose import adapter, model
from minirun.compose.commands import Commands, label_of, name_of, parallel
from minirun.compose.loader import ComposeError
from minirun.errors import MinirunError

L = adapter.LABEL
HEALTH_WAIT = 300.0          # seconds a dependency may take to become healthy


def config_hash(svc):
    """What `up` compares: the service's canonical config, without its scale."""
    data = {k: v for k, v in svc.items() if k not in ("scale",)}
    if "deploy" in data:
        data["deploy"] = {k: v for k, v in data["deploy"].items() if k != "replicas"}
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


class Project(Commands):
    def __init__(self, fe, config, source, profiles=(), out=None):
        self.fe = fe
        self.config = config
        self.source = source
        self.name = config["name"]
        self.out = out or sys.stderr
        self.profiles = set(profiles)
        self.lock = threading.Lock()       # one progress line at a time
        self.services = {n: s for n, s in config["services"].items()
                         if not s.get("profiles") or self.profiles & set(s["profiles"])}

    # --- what exists ---------------------------------------------------------------
    def containers(self, services=None, oneoff=False, stopped=True):
        """Records of this project's containers (by label), by service and number."""
        from minirun.frontend import control

        out = []
        for rec in self.fe.records():
            labels = rec["Config"].get("Labels") or {}
            if labels.get(f"{L}.project") != self.name:
                continue
            if (labels.get(f"{L}.oneoff") == "True") != oneoff and oneoff is not None:
                continue
            if services and labels.get(f"{L}.service") not in services:
                continue
            if not stopped and control.current_state(self.fe, rec) not in (
                    "running", "restarting", "paused"):
                continue
            out.append(rec)
        out.sort(key=lambda r: (label_of(r, "service"), int(label_of(r, "container-number") or 0)))
        return out

    def say(self, kind, name, what):
        with self.lock:
            print(f" \u2714 {kind} {name}  {what}", file=self.out, flush=True)

    def select(self, names, with_deps=True):
        for n in names or ():
            if n not in self.config["services"]:
                raise ComposeError(f"no such service: {n}")
            if n not in self.services:
                raise ComposeError(f"service {n} is not enabled by the active profiles")
        wanted = list(names) if names else list(self.services)
        if not with_deps:
            return wanted
        return model.dependency_order(self.config["services"], wanted)

    # --- up ----------------------------------------------------------------------------
    def labels(self, service, number, oneoff=False):
        svc = self.config["services"][service]
        deps = ",".join(f"{d}:{c['condition']}:{str(c.get('restart', False)).lower()}"
                        for d, c in (svc.get("depends_on") or {}).items())
        return {f"{L}.project": self.name, f"{L}.service": service,
                f"{L}.container-number": str(number), f"{L}.oneoff": str(oneoff),
                f"{L}.config-hash": config_hash(svc),
                f"{L}.project.working_dir": self.source.project_dir,
                f"{L}.project.config_files": ",".join(self.source.files),
                f"{L}.depends_on": deps, f"{L}.version": "minirun"}

    def container_name(self, service, number):
        svc = self.config["services"][service]
        return svc.get("container_name") or f"{self.name}-{service}-{number}"

    def plan(self, order, scale):
        """Every container's RunOptions, checked before anything is made."""
        out = {}
        for service in order:
            svc = self.config["services"][service]
            n = scale.get(service, model.replicas(svc))
            if n > 1 and "container_name" in svc:
                raise ComposeError(f"services.{service}: container_name "
                                   f"{svc['container_name']!r} is unique: it cannot have {n} "
                                   f"replicas")
            out[service] = [adapter.run_options(self.config, service,
                                                name=self.container_name(service, i),
                                                labels=self.labels(service, i))
                            for i in range(1, n + 1)]
        return out

    def ensure_networks(self, services):
        from minirun import network as net

        for key in sorted({n for s in services for n in self.services[s].get("networks", ())}):
            spec = self.config["networks"][key]
            try:
                net.inspect_network(spec["name"], root=self.fe.root)
                continue
            except MinirunError:
                if spec.get("external"):
                    raise ComposeError(f"network {spec['name']} declared as external, but "
                                       f"could not be found") from None
            net.create_network(spec["name"], subnet=_subnet(spec), root=self.fe.root)
            self.say("Network", spec["name"], "Created")

    def ensure_volumes(self, services):
        from minirun.frontend import volumes

        used = {v["source"] for s in services for v in self.services[s].get("volumes") or []
                if v["type"] == "volume" and v.get("source")}
        for key in sorted(used):
            spec = self.config["volumes"][key]
            if spec.get("external"):
                volumes.inspect(self.fe, spec["name"])   # "no such volume"
                continue
            labels = dict(spec.get("labels") or {}, **{f"{L}.project": self.name,
                                                      f"{L}.volume": key})
            _, created = volumes.create(self.fe, spec["name"], labels=labels)
            if created:
                self.say("Volume", spec["name"], "Created")

    def up(self, services=(), detach=True, force_recreate=False, no_recreate=False,
           no_deps=False, scale=None, build=False, remove_orphans=False, no_start=False,
           wait=False, abort_on_exit=False, exit_code_from=None):
        """Returns the exit status of `compose up`: 0, 130 after Ctrl-C, or with
        abort_on_exit/exit_code_from the exit code of the container that ended it."""
        scale = dict(scale or {})
        if exit_code_from is not None:
            if exit_code_from not in self.services:
                raise ComposeError(f"no such service: {exit_code_from}")
            abort_on_exit = True
        if (wait or no_start) and abort_on_exit:
            raise ComposeError("--abort-on-container-exit and --exit-code-from need an "
                               "attached up (not --wait, -d or --no-start)")
        order = self.select(services, with_deps=not no_deps)
        for s, n in scale.items():
            if s not in self.services:
                raise ComposeError(f"no such service: {s}")
            if n < 0:
                raise ComposeError(f"invalid scale for {s}: {n}")
        plans = self.plan(order, scale)        # every option checked first
        if build:
            self.build([s for s in order if "build" in self.services[s]])
        self.check_images(order)
        self.ensure_networks(order)
        self.ensure_volumes(order)
        self._orphans(remove_orphans)
        self._converge_all(order, lambda service: self.converge(
            service, plans[service], force_recreate, no_recreate, no_start))
        if wait:
            for rec in self.containers(order):
                self._wait_up(rec)
            return 0
        if not detach:
            return self.attach(order, abort_on_exit, exit_code_from)
        return 0

    def _wait_up(self, rec):
        """--wait: running, and healthy if it has a health check."""
        from minirun.frontend import control

        if rec.get("Healthcheck"):
            self._wait_healthy(rec)
            return
        rec = self.fe.load(rec["Id"])
        if control.current_state(self.fe, rec) not in ("running", "restarting"):
            raise ComposeError(f"container {name_of(rec)} exited "
                               f"({rec['State'].get('ExitCode')})")

    def _converge_all(self, order, converge):
        """Each service in its own thread, as soon as what it depends on is up and
        its depends_on conditions hold: independent services start side by side."""
        done = {s: threading.Event() for s in order}
        failed = []

        def one(service):
            try:
                for dep in self.services[service].get("depends_on") or {}:
                    if dep in done:
                        done[dep].wait()
                if failed:
                    return
                self.wait_dependencies(service)
                converge(service)
            except BaseException as e:  # re-raised in the caller's thread
                failed.append(e)
            finally:
                done[service].set()

        threads = [threading.Thread(target=one, args=(s,)) for s in order]
        for t in threads:
            t.start()
        for t in threads:
            while t.is_alive():
                t.join(0.2)   # the main thread stays free for Ctrl-C
        if failed:
            raise failed[0]

    def check_images(self, order):
        from minirun.frontend.create import resolve_image

        for service in order:
            svc = self.services[service]
            ref = adapter.image_name(self.name, service, svc)
            store = self.fe.image_store()
            found = store.lookup(ref) or ("/" not in ref and store.lookup("localhost/" + ref))
            if not found:
                if "image" not in svc:
                    self.build([service])
                else:
                    resolve_image(self.fe, ref, self.out)   # pulls it

    def _orphans(self, remove):
        from minirun.frontend import control

        orphans = [r for r in self.containers(oneoff=None)
                   if label_of(r, "service") not in self.config["services"]]
        if orphans and not remove:
            print(f"WARN Found orphan containers ({', '.join(name_of(r) for r in orphans)}) for "
                  f"this project. If you removed or renamed this service in your compose "
                  f"file, you can run this command with the --remove-orphans flag to clean "
                  f"it up.", file=self.out)
        for r in orphans if remove else ():
            control.remove(self.fe, r["Id"], force=True, volumes=True)
            self.say("Container", name_of(r), "Removed")

    def converge(self, service, plans, force_recreate, no_recreate, no_start):
        from minirun.frontend import control, create

        existing = {int(label_of(r, "container-number") or 0): r
                    for r in self.containers([service])}
        started, to_start = [], []
        for number, opts in enumerate(plans, 1):
            rec = existing.pop(number, None)
            name = opts.name
            if rec is not None:
                image = create.resolve_image(self.fe, opts.image, self.out)
                same = (label_of(rec, "config-hash") == opts.labels[f"{L}.config-hash"]
                        and rec["Image"] == image.id)
                if (same or no_recreate) and not force_recreate:
                    if control.current_state(self.fe, rec) in ("running", "restarting"):
                        self.say("Container", name, "Running")
                    elif not no_start:
                        control.start(self.fe, rec["Id"])
                        self.say("Container", name, "Started")
                    started.append(rec["Id"])
                    continue
                control.stop(self.fe, rec["Id"])
                control.remove(self.fe, rec["Id"], force=True)
                self.say("Container", name, "Recreated")
            new = create.create(self.fe, opts, progress=self.out)
            if rec is None:
                self.say("Container", name, "Created")
            started.append(new["Id"])
            if not no_start:
                to_start.append((new["Id"], name))
        parallel([lambda c=c, n=n: self._start(c, n) for c, n in to_start]
                  + [lambda r=r: self._remove(r) for r in existing.values()])
        return started

    def _start(self, cid, name):
        from minirun.frontend import control

        control.start(self.fe, cid)
        self.say("Container", name, "Started")

    def _remove(self, rec, volumes=False):
        from minirun.frontend import control

        control.stop(self.fe, rec["Id"])
        control.remove(self.fe, rec["Id"], force=True, volumes=volumes)
        self.say("Container", name_of(rec), "Removed")

    def wait_dependencies(self, service):
        """depends_on conditions of `service`, on the containers now there."""
        from minirun.frontend import control

        for dep, spec in (self.services[service].get("depends_on") or {}).items():
            recs = self.containers([dep])
            if not recs:
                if spec.get("required", True) and dep in self.services:
                    raise ComposeError(f"service {service} depends on {dep}, which has no "
                                       f"container")
                continue
            cond = spec["condition"]
            for rec in recs:
                if cond == "service_healthy":
                    self._wait_healthy(rec)
                elif cond == "service_completed_successfully":
                    code = control.wait(self.fe, rec["Id"])
                    if code != 0:
                        raise ComposeError(f"service {dep!r} didn't complete successfully: "
                                           f"exit {code}")
                    self.say("Container", name_of(rec), "Exited")

    def _wait_healthy(self, rec):
        from minirun.frontend import control

        name = name_of(rec)
        if not rec.get("Healthcheck"):
            raise ComposeError(f"dependency failed to start: container {name} has no "
                               f"healthcheck configured")
        self.say("Container", name, "Waiting")
        deadline = time.monotonic() + HEALTH_WAIT
        while time.monotonic() < deadline:
            rec = self.fe.load(rec["Id"])
            status = ((rec["State"].get("Health") or {}).get("Status"))
            if status == "healthy":
                self.say("Container", name, "Healthy")
                return
            if status == "unhealthy":
                raise ComposeError(f"dependency failed to start: container {name} is "
                                   f"unhealthy")
            if control.current_state(self.fe, rec) not in ("running", "restarting"):
                raise ComposeError(f"dependency failed to start: container {name} exited "
                                   f"({rec['State'].get('ExitCode')})")
            time.sleep(0.1)
        raise ComposeError(f"dependency failed to start: container {name} not healthy "
                           f"after {HEALTH_WAIT:.0f}s")

    # --- attach (up without -d) -------------------------------------------------------------
    def attach(self, services, abort_on_exit=False, exit_code_from=None):
        """Follow the logs of the services' containers; Ctrl-C stops them all, and so
        does the first exit with abort_on_exit."""
        from minirun.compose import output
        from minirun.frontend import control

        recs = self.containers(services)
        try:
            ended = output.follow(self.fe, recs, tail=None, prefix=True, out=sys.stdout,
                                  stop_at_first_exit=abort_on_exit)
        except KeyboardInterrupt:
            print("Gracefully stopping... (press Ctrl+C again to force)", file=self.out,
                  flush=True)
            self.stop(services)
            return 130
        if not abort_on_exit:
            return 0
        print("Aborting on container exit...", file=self.out, flush=True)
        self.stop(services)
        if exit_code_from is not None:
            rec = self.containers([exit_code_from])[0]
        else:
            rec = next((r for r in recs if r["Id"] == ended), recs[0])
        rec = self.fe.load(rec["Id"])
        if control.current_state(self.fe, rec) in ("running", "restarting"):
            return 0
        return rec["State"].get("ExitCode", 0)

    # --- down ---------------------------------------------------------------------------------
    def down(self, volumes=False, remove_orphans=False):
        from minirun import network as net
        from minirun.frontend import volumes as vol

        recs = [r for r in self.containers(oneoff=None)
                if remove_orphans or label_of(r, "service") in self.config["services"]]
        orphans = [r for r in self.containers(oneoff=None) if r not in recs]
        parallel([lambda r=r: self._remove(r, volumes=volumes) for r in recs])
        if orphans:
            print(f"WARN Found orphan containers ({', '.join(name_of(r) for r in orphans)}) "
                  f"for this project: use --remove-orphans to remove them too", file=self.out)
        for key, spec in sorted((self.config.get("networks") or {}).items()):
            if spec.get("external"):
                continue
            try:
                net.remove_network(spec["name"], root=self.fe.root)
                self.say("Network", spec["name"], "Removed")
            except MinirunError as e:
                if "not found" not in str(e):
                    raise
        if volumes:
            for key, spec in sorted((self.config.get("volumes") or {}).items()):
                if spec.get("external"):
                    continue
                try:
                    vol.remove(self.fe, spec["name"])
                    self.say("Volume", spec["name"], "Removed")
                except MinirunError as e:
                    if "no such volume" not in str(e).lower():
                        raise

def _subnet(spec):
    for cfg in ((spec.get("ipam") or {}).get("config") or []):
        if isinstance(cfg, dict) and cfg.get("subnet"):
            return cfg["subnet"]
    return None


