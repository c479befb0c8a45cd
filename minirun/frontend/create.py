"""create: RunOptions -> a "created" container (record, name, rootfs, volumes, config.json).

    checks that need the store (network exists, container:NAME, --init binary)
    -> image (local, else pulled) -> name -> overlay rootfs -> volumes
    -> config.json (bundle.py) -> the record (records.new_record)

Every step that makes something registers its undo; a failure anywhere
undoes them all, so a failed `create`/`run` leaves nothing behind.
"""
import json
import os
import socket
import sys

from minirun.errors import MinirunError
from minirun.frontend import recordfile


class RunError(MinirunError):
    """A failure of minirun itself in `run`/`create`: Docker's exit status 125."""

    exit_code = 125


def local_image(fe, ref):
    """The image `ref` names in the store, trying localhost/NAME for short names
    (what `minirun load` of a layout is called); None if it is not there."""
    store = fe.image_store()
    image = store.lookup(ref)
    if image is None and "/" not in ref.split(":")[0].split("@")[0]:
        image = store.lookup("localhost/" + ref)
    return image


def resolve_image(fe, ref, stream=None):
    """An image from the store (local_image), pulled when it is missing."""
    from minirun.image import reference

    image = local_image(fe, ref)
    if image is not None:
        return image
    store = fe.image_store()
    try:
        reference.parse(ref)
    except reference.InvalidReference as e:
        raise RunError(f"invalid reference format: {e}") from None
    from minirun.image import registry

    stream = stream or sys.stderr
    print(f"Unable to find image '{ref}' locally", file=stream, flush=True)
    try:
        return registry.pull(ref, store=store, stream=stream)
    except MinirunError as e:
        raise RunError(str(e)) from None


def _check_against_store(fe, opts):
    """What RunOptions cannot check alone; returns the network mode to record."""
    from minirun import network as net

    network = opts.network
    mode, _ = net.parse_mode(network)
    if mode == "bridge" and network != "bridge":
        net.inspect_network(network, root=fe.root)  # "network foo not found"
    if mode == "container":
        network = "container:" + fe.resolve(network.partition(":")[2])
    for extra, _ in opts.extra_networks:
        if mode != "bridge" or network == "bridge":
            raise MinirunError("a container joins more networks only from a user-defined one")
        net.inspect_network(extra, root=fe.root)
    if opts.ipc.startswith("container:"):   # Docker's --ipc container:NAME, by id
        opts.ipc = "container:" + fe.resolve(opts.ipc.partition(":")[2])
    elif opts.ipc not in ("", "host", "private"):
        raise MinirunError(f"invalid IPC mode: {opts.ipc}")
    if opts.init:
        from minirun.frontend.bundle import find_init

        find_init()
    return mode, network


def create(fe, opts, progress=None):
    """Make a container ("created") from RunOptions; returns its record.
    Raises RunError (125) and leaves nothing behind on any failure."""
    from minirun import network as net
    from minirun.frontend import bundle, options, records

    try:
        mode, network = _check_against_store(fe, opts)
    except MinirunError as e:
        raise RunError(str(e)) from None
    image = resolve_image(fe, opts.image, progress)
    h = opts.health
    try:
        from minirun.image.bundle import check_image_config

        check_image_config(image.config)  # before anything is made from it
        health = options.healthcheck(image.config, h.cmd, h.interval, h.timeout, h.retries,
                                     h.start_period, h.disabled)
    except MinirunError as e:
        raise RunError(str(e)) from None
    ports = list(opts.ports)
    if opts.publish_all and mode != "host":
        ports += _all_exposed(image, opts, ports)

    fe.ensure()
    cid = fe.new_id()
    undo = []
    try:
        name = opts.name
        if name:
            fe.reserve_name(name, cid)
        else:
            name = fe.generate_name(cid)
        undo.append(lambda: fe.release_name(name, cid))
        directory = fe.record_dir(cid)
        os.mkdir(directory, 0o700)
        undo.append(lambda: fe.remove_record(cid, name))
        bundle_dir = os.path.join(directory, "bundle")
        os.mkdir(bundle_dir, 0o700)

        from minirun.image import prepare_rootfs

        rootfs, release = prepare_rootfs(image, cid, store=fe.image_store())
        undo.append(release)

        mounts = _volumes(fe, image, rootfs, opts.volume_mounts(), undo)
        hostname = opts.hostname or (cid[:12] if mode != "host" else socket.gethostname())
        etc = None
        if mode != "container":
            etc = net.etc_files(cid, hostname, root=fe.root)
            undo.append(lambda: net.detach(cid, root=fe.root))
        spec = bundle.build(image, rootfs, opts, cid=cid, hostname=hostname, mounts=mounts,
                            etc_files=etc, network_mode=network)
        spec["annotations"]["minirun.frontend.name"] = name
        with open(os.path.join(bundle_dir, "config.json"), "w") as f:
            json.dump(spec, f, indent=1)
        rec = records.new_record(fe, cid, name, image, opts, spec=spec, rootfs=rootfs,
                                 bundle_dir=bundle_dir, hostname=hostname, etc=etc,
                                 mounts=mounts, network=network, ports=ports, health=health)
        recordfile.write(directory, rec)
        from minirun.frontend import events

        events.emit(fe, "create", rec)
        return rec
    except BaseException as e:
        for step in reversed(undo):
            try:
                step()
            except Exception:
                pass
        if isinstance(e, MinirunError) and not isinstance(e, RunError):
            raise RunError(str(e)) from None
        raise


def _all_exposed(image, opts, ports):
    """-P: every exposed port (image and --expose) not already published, on a free
    host port."""
    from minirun.frontend.runopts import PortMapping

    exposed = set((image.config.get("config") or {}).get("ExposedPorts") or {}) | set(opts.expose)
    have = {(p.container_port, p.proto) for p in ports}
    out = []
    for key in sorted(exposed):
        port, _, proto = key.partition("/")
        if port.isdigit() and (int(port), proto or "tcp") not in have:
            out.append(PortMapping(int(port), 0, "0.0.0.0", proto or "tcp"))
    return out


def _volumes(fe, image, rootfs, mounts, undo):
    """-v/--mount entries and the image's VOLUMEs -> bind mounts of host directories."""
    from minirun.frontend import volumes

    wanted = list(mounts)
    taken = {m["Destination"] for m in wanted}
    for dest in sorted((image.config.get("config") or {}).get("Volumes") or {}):
        dest = os.path.normpath(dest)
        if dest not in taken:
            wanted.append({"Type": "volume", "Name": "", "Destination": dest, "RW": True,
                           "Propagation": [], "NoCopy": False})
    out = []
    for m in wanted:
        m = dict(m)
        if m["Type"] == "bind":
            if not os.path.exists(m["Source"]):
                os.makedirs(m["Source"], 0o755)  # Docker's -v creates a missing host dir
                made = m["Source"]
                undo.append(lambda p=made: os.rmdir(p))
        else:
            anonymous = not m["Name"]
            info, created = volumes.create(fe, m["Name"] or None, anonymous=anonymous)
            m.update(Name=info["Name"], Source=info["Mountpoint"], Anonymous=anonymous)
            if created:
                undo.append(lambda n=info["Name"]: volumes.remove(fe, n, force=True))
                if not m.get("NoCopy"):
                    volumes.copy_up(rootfs, m["Destination"], info["Mountpoint"])
        out.append(m)
    return out
