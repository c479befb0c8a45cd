"""The Docker-like front end: `minirun run IMAGE`, ps, logs, exec, stop, rm, ...

Built on the other areas, never beside them:

    image store  ->  overlay rootfs  ->  config.json (bundle.py)  ->  runtime create/start
                                                     network attach (bridge, -p)  ^

Modules (each imports only what its job needs; see docs/frontend.md):
  records    container records under the image store: ids, names, locking
  recordfile the record file format (stdlib only: the monitor reads it too)
  options    flag values -> a validated HostConfig (pure)
  bundle     image + options -> config.json (mounts, caps, limits, init)
  volumes    named and anonymous volumes under <store>/volumes
  lifecycle  create, start (through the monitor), stop, kill, rm, restart policy,
             and the two worker steps the monitor runs (container start, exit)
  monitor    ONE small process per --root that holds every started container:
             logs, exit codes, restarts, health checks, attached terminals
             (stdlib only, so it stays small)
  client     the CLI's side of the monitor: spawn, requests, attach relay
  logs       reading and following the JSON-lines logs
  views      ps rows, inspect documents, --format templates, stats, top
"""
