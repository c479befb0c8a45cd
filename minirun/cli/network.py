"""`minirun network create/ls/rm/inspect`: thin wrappers over minirun.network."""
import json

import click


def _root(ctx):
    return (ctx.find_root().obj or {}).get("root", "/run/minirun")


@click.group("network")
def network():
    """Manage networks (bridge networks for `minirun run`)."""


@network.command("create")
@click.option("--subnet", metavar="CIDR", help="IPv4 subnet, e.g. 10.89.7.0/24 (default: a free /24).")
@click.option("--gateway", metavar="IP", help="The bridge's address (default: the subnet's first).")
@click.option("-d", "--driver", default="bridge", show_default=True, type=click.Choice(["bridge"]),
              help="Only bridge networks can be created.")
@click.argument("name")
@click.pass_context
def create(ctx, subnet, gateway, driver, name):
    """Create a bridge network NAME; prints its id."""
    from minirun import network as net

    click.echo(net.create_network(name, subnet=subnet, gateway=gateway, root=_root(ctx))["id"])


@network.command("ls")
@click.option("-q", "--quiet", is_flag=True, help="Only print network names.")
@click.option("--format", "fmt", default="table", show_default=True,
              help="table, json, or a Go template ('{{.Name}} {{.Subnet}}').")
@click.pass_context
def ls(ctx, quiet, fmt):
    """List networks."""
    from minirun import network as net

    nets = net.list_networks(root=_root(ctx))
    if quiet:
        for n in nets:
            click.echo(n["name"])
    elif fmt == "json":
        click.echo(json.dumps(nets, indent=2))
    elif fmt != "table":
        from minirun.cli.dockerlike import show

        show([{"ID": n["id"][:12], "Name": n["name"], "Driver": n["driver"], "Scope": "local",
               "Subnet": n.get("subnet", ""), "Gateway": n.get("gateway", ""),
               "Bridge": n.get("bridge", "")} for n in nets], fmt, [])
    else:
        rows = [("NETWORK ID", "NAME", "DRIVER", "BRIDGE", "SUBNET", "GATEWAY")]
        rows += [(n["id"][:12], n["name"], n["driver"], n.get("bridge", ""), n.get("subnet", ""),
                  n.get("gateway", "")) for n in nets]
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        for r in rows:
            click.echo("   ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())


@network.command("rm")
@click.argument("names", nargs=-1, required=True)
@click.pass_context
def rm(ctx, names):
    """Remove networks (none of their containers may still be attached)."""
    from minirun import network as net
    from minirun.errors import MinirunError

    errors = []
    for name in names:
        try:
            net.remove_network(name, root=_root(ctx))
            click.echo(name)
        except MinirunError as e:
            errors.append(e)
    # Docker-style: remove what can be removed, report each failure, exit 1.
    for e in errors[:-1]:
        click.echo(f"minirun: {e}", err=True)
    if errors:
        raise errors[-1]

@network.command("inspect")
@click.argument("names", nargs=-1, required=True)
@click.pass_context
def inspect(ctx, names):
    """Show networks as JSON, with their containers."""
    from minirun import network as net

    click.echo(json.dumps([net.inspect_network(n, root=_root(ctx)) for n in names], indent=2))
