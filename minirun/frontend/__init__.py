"""The Docker-like front end: `minirun run IMAGE`, ps, logs, exec, stop, rm, ...

Creating and running a container from library code (what compose and kube do):

    from minirun.frontend import lifecycle
    from minirun.frontend.records import Frontend
    from minirun.frontend.runopts import PortMapping, RunOptions

    fe = Frontend(store_root=None, runtime_root="/run/minirun")   # defaults
    opts = RunOptions.from_flags("busybox", ["httpd", "-f", "-p", "80"], name="web",
                                 publish=["8080:80"], memory="64m")  # Docker's flag strings
    # or typed: RunOptions(image="busybox", command=[...], ports=[PortMapping(80, 8080)])
    rec = lifecycle.create(fe, opts)          # BadOption/RunError (exit 125), nothing left
    lifecycle.start(fe, rec["Id"])            # detached; attach=True returns the exit code
    lifecycle.current_state(fe, rec)          # "running", "exited", ...
    lifecycle.stop(fe, rec["Id"]); lifecycle.remove(fe, rec["Id"], volumes=True)

`fe.find(name_or_id_prefix)` gives (id, record); the record is Docker's inspect
document.  execute.exec_in() runs a command in a container; logs.print_logs(),
views (ps rows, inspect, stats), events (the event stream), copy (cp, diff,
export) are the other entry points.

Built on the other areas, never beside them:

    image store  ->  overlay rootfs  ->  config.json (bundle.py)  ->  runtime create/start
                                                     network attach (bridge, -p)  ^

Modules (each imports only what its job needs; see docs/frontend.md):
  runopts    RunOptions, PortMapping, Mount, Limits, Security: what a container is made from
  options    Docker's flag strings -> validated values (pure parsers)
  create     RunOptions -> image, name, rootfs, volumes, config.json, record
  records    container records under the image store: ids, names, locking, the document
  recordfile the record file format (stdlib only: the monitor reads it too)
  bundle     image + RunOptions -> config.json (mounts, caps, limits, devices, init)
  volumes    named and anonymous volumes under <store>/volumes
  control    start (through the monitor), stop, kill, wait, pause, rm, update, attach
  worker     the steps the monitor runs: start the runtime container, handle an exit
  restart    the restart policy and its back-off
  lifecycle  the API above in one import
  monitor    ONE small process per --root that holds every started container
             (stdlib only): loop, protocol, log writer, health checks, I/O relay
  client     the CLI's side of the monitor: spawn, requests, attach relay
  lookup     front-end container or OCI container? (the dual-meaning verbs; cheap)
  listing    ps/prune/port selection (--filter)
  template   Go templates for --format
  events     Docker's event stream
  copy       cp (both ways, tar streams), diff, export; importer: import
  logs       reading and following the JSON-lines logs
  views      ps rows, inspect documents, stats, top
"""
