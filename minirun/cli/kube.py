"""`minirun kube play FILE` / `kube down FILE` / `kube get`: thin wrappers over minirun.kube.api."""
import click

store_option = click.option(
    "--store", "store_root", envvar="MINIRUN_STORE", metavar="DIR",
    help="Image store, which also holds containers and the kube state (default /var/lib/minirun).")


def _fe(ctx, store_root):
    from minirun.frontend.records import Frontend

    return Frontend(store_root, (ctx.find_root().obj or {}).get("root", "/run/minirun"))


@click.group("kube")
def kube():
    """Run Kubernetes YAML on this machine (Pod, Deployment, Service, ConfigMap, Secret).

    \b
    Examples:
      minirun kube play deployment.yaml
      minirun kube get
      minirun kube down deployment.yaml
    """


@kube.command("play")
@store_option
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))
@click.pass_context
def play(ctx, store_root, file):
    """Create or update the objects of FILE (several YAML documents); like `kubectl apply -f`.

    \b
    Examples:
      minirun kube play deployment.yaml
      minirun kube play --store /tmp/lab pod.yaml   # a private store (or MINIRUN_STORE)
      cat pod.yaml | minirun kube play -             # FILE "-" is standard input
    """
    from minirun.kube import api

    api.play(_fe(ctx, store_root), file, out=click.echo)


@kube.command("down")
@store_option
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))
@click.pass_context
def down(ctx, store_root, file):
    """Delete the objects of FILE and everything they made; like `kubectl delete -f`.

    \b
    Examples:
      minirun kube down deployment.yaml
    """
    from minirun.kube import api

    missing = api.down(_fe(ctx, store_root), file, out=click.echo)
    for line in missing:
        click.echo(line, err=True)
    if missing:
        raise SystemExit(1)   # as kubectl: the others are deleted all the same


@kube.command("get")
@store_option
@click.pass_context
def get(ctx, store_root):
    """List the pods (with their addresses) and the services (with their endpoints).

    \b
    Examples:
      minirun kube get
    """
    from minirun.kube import api

    pods, services = api.get(_fe(ctx, store_root))
    rows = [("NAMESPACE", "NAME", "READY", "STATUS", "IP")]
    rows += [(p["namespace"], p["name"], p["ready"], p["status"], p["ip"]) for p in pods]
    _table(rows)
    if services:
        click.echo()
        rows = [("NAME", "TYPE", "CLUSTER-IP", "PORT(S)", "ENDPOINTS")]
        rows += [(s["name"], s["type"], s["cluster_ip"], s["ports"], s["endpoints"])
                 for s in services]
        _table(rows)


def _table(rows):
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        click.echo("   ".join(str(v).ljust(w) for v, w in zip(r, widths)).rstrip())
