"""What a container is made from, as typed values: `RunOptions` and its parts.

The CLI (`minirun run/create`), compose and kube all build one `RunOptions`
and hand it to `lifecycle.create(fe, opts)`.  Two ways to build it:

    RunOptions.from_flags("busybox", ["sh"], name="web", publish=["8080:80"],
                          memory="64m", env=["A=1"])   # Docker's flag strings
    RunOptions(image="busybox", command=["sh"], name="web",
               ports=[PortMapping(host_port=8080, container_port=80)],
               limits=Limits(memory=64 << 20))         # already typed values

from_flags() checks every value (options.py has the parsers) and raises
BadOption (exit 125) before anything exists.  What needs the store (does
network X exist, which container is container:NAME) is checked by create().
"""
import dataclasses
from dataclasses import dataclass, field
from typing import Optional

from minirun.errors import BadOption


@dataclass(frozen=True)
class PortMapping:
    """-p [host_ip:][host_port:]container_port[/proto]; host_port 0 = any free port."""

    container_port: int
    host_port: int = 0
    host_ip: str = "0.0.0.0"
    proto: str = "tcp"

    @classmethod
    def parse(cls, spec):
        """The one parser of -p (the network's, whose messages engines' users know)."""
        from minirun.errors import MinirunError
        from minirun.network.ports import parse_publish

        try:
            p = parse_publish(spec)
        except MinirunError as e:
            raise BadOption(str(e)) from None
        return cls(p["container_port"], p["host_port"], p["host_ip"], p["proto"])

    def spec(self):
        return f"{self.host_ip}:{self.host_port or ''}:{self.container_port}/{self.proto}"

    def as_dict(self):
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Mount:
    """-v, --mount, --tmpfs: kind is "bind", "volume" (named, or anonymous with
    name "") or "tmpfs".  `source` is the host path of a bind."""

    kind: str
    destination: str
    source: str = ""
    name: str = ""
    read_only: bool = False
    propagation: tuple = ()
    nocopy: bool = False
    tmpfs_options: tuple = ()  # kernel mount options for tmpfs (size=..., mode=...)

    def as_record(self):
        """The dict shape lifecycle/bundle use (Docker's Mounts entries)."""
        return {"Type": self.kind, "Name": self.name, "Source": self.source,
                "Destination": self.destination, "RW": not self.read_only,
                "Propagation": list(self.propagation), "NoCopy": self.nocopy,
                "TmpfsOptions": list(self.tmpfs_options)}


@dataclass(frozen=True)
class Device:
    """--device HOST[:CONTAINER[:PERMS]]."""

    host_path: str
    container_path: str
    permissions: str = "rwm"


@dataclass
class Limits:
    memory: Optional[int] = None          # bytes
    memory_swap: Optional[int] = None     # bytes, -1 = unlimited
    cpus: Optional[tuple] = None          # (quota, period) in microseconds
    cpu_shares: Optional[int] = None
    pids_limit: Optional[int] = None
    shm_size: Optional[int] = None        # bytes of /dev/shm
    ulimits: list = field(default_factory=list)  # [{"Name", "Soft", "Hard"}]


@dataclass
class Security:
    cap_add: list = field(default_factory=list)
    cap_drop: list = field(default_factory=list)
    privileged: bool = False
    no_new_privileges: bool = False
    seccomp: Optional[str] = None         # None/"builtin" (default), "unconfined", profile JSON
    userns: str = ""                      # "" or "host" (no user namespaces here)

    def security_opts(self):
        """Docker's HostConfig.SecurityOpt list."""
        out = ["no-new-privileges"] if self.no_new_privileges else []
        return out + ([f"seccomp={self.seccomp}"] if self.seccomp else [])


@dataclass
class HealthFlags:
    """--health-*; merged with the image's HEALTHCHECK at create (options.healthcheck)."""

    cmd: Optional[str] = None
    interval: Optional[str] = None
    timeout: Optional[str] = None
    retries: Optional[int] = None
    start_period: Optional[str] = None
    disabled: bool = False


@dataclass
class RunOptions:
    image: str
    command: list = field(default_factory=list)
    name: Optional[str] = None
    entrypoint: Optional[str] = None      # None: the image's; "": none
    env: list = field(default_factory=list)      # ["K=V"]
    mounts: list = field(default_factory=list)   # [Mount]
    ports: list = field(default_factory=list)    # [PortMapping]
    publish_all: bool = False                    # -P
    expose: list = field(default_factory=list)   # ["80/tcp"]
    network: str = "bridge"
    ipc: str = ""                         # "" private, "host", "container:<name or id>"
    hostname: Optional[str] = None
    user: Optional[str] = None
    workdir: Optional[str] = None
    read_only: bool = False
    limits: Limits = field(default_factory=Limits)
    security: Security = field(default_factory=Security)
    devices: list = field(default_factory=list)  # [Device]
    add_hosts: list = field(default_factory=list)  # [(name, ip)]
    dns: list = field(default_factory=list)
    dns_search: list = field(default_factory=list)
    dns_options: list = field(default_factory=list)  # resolv.conf options ("ndots:5")
    sysctls: dict = field(default_factory=dict)  # namespaced kernel parameters (--sysctl)
    network_aliases: list = field(default_factory=list)  # more names on its network
    extra_networks: list = field(default_factory=list)  # [(network, [aliases])] after the first
    restart: dict = field(default_factory=lambda: {"Name": "no", "MaximumRetryCount": 0})
    health: HealthFlags = field(default_factory=HealthFlags)
    init: bool = False
    tty: bool = False
    interactive: bool = False
    auto_remove: bool = False
    log_config: dict = field(default_factory=lambda: {"max-size": 10 << 20, "max-file": 3})
    labels: dict = field(default_factory=dict)
    stop_signal: Optional[int] = None
    stop_timeout: Optional[int] = None

    def __post_init__(self):
        if self.auto_remove and self.restart["Name"] != "no":
            raise BadOption("Conflicting options: --restart and --rm")
        if self.ports and self.network in ("none", "host") or (
                self.ports and self.network.startswith("container:")):
            if self.network != "host":
                raise BadOption(f"conflicting options: port publishing and the container "
                                f"sharing the network stack ({self.network})")
        if any(k.startswith("net.") for k in self.sysctls) and (
                self.network == "host" or self.network.startswith("container:")):
            raise BadOption(f"--sysctl net.* is not allowed with the {self.network} network "
                            f"mode (the network namespace is not the container's own)")
        if self.hostname and self.network.startswith("container:"):
            raise BadOption("conflicting options: hostname and the network mode")
        if self.limits.memory is not None and self.limits.memory < 6 << 20:
            raise BadOption("Minimum memory limit allowed is 6MB")
        if self.limits.pids_limit is not None and self.limits.pids_limit <= 0:
            self.limits.pids_limit = None  # Docker: 0 or -1 means unlimited

    @classmethod
    def from_flags(cls, image, command=(), *, name=None, entrypoint=None, env=(), env_files=(),
                   volumes=(), mounts=(), tmpfs=(), publish=(), publish_all=False, expose=(),
                   network="bridge", hostname=None, user=None, workdir=None, read_only=False,
                   memory=None, memory_swap=None, cpus=None, cpu_shares=None, pids_limit=None,
                   shm_size=None, ulimits=(), cap_add=(), cap_drop=(), privileged=False,
                   security_opt=(), userns=None, devices=(), add_hosts=(), dns=(),
                   dns_search=(), dns_options=(), sysctls=(), restart="no", health_cmd=None,
                   health_interval=None, health_timeout=None, health_retries=None,
                   health_start_period=None, no_healthcheck=False, init=False, tty=False,
                   interactive=False, auto_remove=False, log_opts=(), labels=(), label_files=(),
                   stop_signal=None, stop_timeout=None):
        """Docker's flag strings -> RunOptions (BadOption on the first bad value)."""
        from minirun.frontend import options

        security = options.parse_security_opts(security_opt)
        all_mounts = [options.parse_volume(v) for v in volumes]
        all_mounts += [options.parse_mount(m) for m in mounts]
        all_mounts += [options.parse_tmpfs(t) for t in tmpfs]
        options.check_unique_destinations(all_mounts)
        if health_interval is not None or health_timeout is not None \
                or health_start_period is not None:
            # checked now (create merges them with the image's HEALTHCHECK later)
            options.healthcheck({}, "true", health_interval, health_timeout, health_retries,
                                health_start_period)
        opts = cls(
            image=image, command=list(command), name=name, entrypoint=entrypoint,
            env=options.parse_env(env_files, env), mounts=all_mounts,
            ports=[PortMapping.parse(p) for p in publish], publish_all=publish_all,
            expose=[options.parse_expose(e) for e in expose], network=network or "bridge",
            hostname=hostname, user=user, workdir=options.check_workdir(workdir),
            read_only=read_only,
            limits=Limits(
                memory=options.parse_size(memory, "--memory", limit=True) if memory else None,
                memory_swap=options.parse_memory_swap(memory_swap),
                cpus=options.parse_cpus(cpus) if cpus else None,
                cpu_shares=options.check_int(cpu_shares, "--cpu-shares", 0, 262144),
                pids_limit=options.check_int(pids_limit, "--pids-limit", -1, 1 << 62),
                shm_size=options.parse_size(shm_size, "--shm-size", limit=True)
                if shm_size else None,
                ulimits=[options.parse_ulimit(u) for u in ulimits]),
            security=Security(cap_add=options.parse_caps(cap_add, "--cap-add"),
                              cap_drop=options.parse_caps(cap_drop, "--cap-drop"),
                              privileged=privileged,
                              no_new_privileges=security["no_new_privileges"],
                              seccomp=security["seccomp"],
                              userns=options.parse_userns(userns)),
            devices=[options.parse_device(d) for d in devices],
            add_hosts=[options.parse_add_host(h) for h in add_hosts],
            dns=[options.parse_ip(s, "--dns") for s in dns], dns_search=list(dns_search),
            dns_options=list(dns_options),
            sysctls=dict(options.parse_sysctl(s) for s in sysctls),
            restart=options.parse_restart(restart),
            health=HealthFlags(health_cmd, health_interval, health_timeout, health_retries,
                               health_start_period, no_healthcheck),
            init=init, tty=tty, interactive=interactive, auto_remove=auto_remove,
            log_config=options.parse_log_opts(log_opts),
            labels=options.parse_labels(label_files, labels),
            stop_signal=options.parse_signal(stop_signal) if stop_signal else None,
            stop_timeout=stop_timeout)
        return opts

    def tmpfs(self):
        return [m for m in self.mounts if m.kind == "tmpfs"]

    def volume_mounts(self):
        """Binds and volumes (not tmpfs) as the dicts create resolves."""
        return [m.as_record() for m in self.mounts if m.kind != "tmpfs"]
