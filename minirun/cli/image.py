"""Image commands: pull, push, images, rmi, image {ls,inspect,prune,rm}, load, save,
login, logout, unpack, bundle.  Thin: parse flags, call minirun.image."""
import json
import os
import sys

import click

from minirun.cli.imagefast import strip_scheme as _strip_scheme
from minirun.errors import MinirunError

store_option = click.option(
    "--store", "store_root", envvar="MINIRUN_STORE", metavar="DIR",
    help="Image store directory (default /var/lib/minirun, or $MINIRUN_STORE).")


def _store(root):
    from minirun.image.store import Store

    return Store(root)


def _human_size(n):
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f}{unit}" if unit == "B" else f"{n:.1f}{unit}"
        n /= 1000


def _ago(created):
    import datetime

    if not created:
        return "N/A"
    try:  # RFC 3339; seconds are enough here
        when = datetime.datetime.strptime(created[:19], "%Y-%m-%dT%H:%M:%S").replace(
            tzinfo=datetime.timezone.utc)
    except ValueError:
        return created
    secs = (datetime.datetime.now(datetime.timezone.utc) - when).total_seconds()
    for unit, length in (("year", 31536000), ("month", 2592000), ("week", 604800),
                         ("day", 86400), ("hour", 3600), ("minute", 60)):
        if secs >= length:
            n = int(secs // length)
            return f"{n} {unit}{'s' if n > 1 else ''} ago"
    return "Less than a minute ago"




@click.command()
@click.option("--insecure", is_flag=True, help="Allow plain http and unverified TLS.")
@click.option("--platform", metavar="OS/ARCH[/VARIANT]", help="Platform to pull (default: host).")
@click.option("-q", "--quiet", is_flag=True, help="No progress output.")
@store_option
@click.argument("ref")
def pull(insecure, platform, quiet, store_root, ref):
    """Pull an image from a registry into the store."""
    from minirun.cli import imagefast  # its plain forms skip click: same options, same call

    imagefast.pull_command(imagefast.PullOptions(ref, insecure, platform, quiet, store_root),
                           lambda text, err: click.echo(text, err=err))


@click.command()
@click.option("--insecure", is_flag=True, help="Allow plain http and unverified TLS.")
@click.option("-q", "--quiet", is_flag=True, help="No progress output.")
@store_option
@click.argument("ref")
def push(insecure, quiet, store_root, ref):
    """Push an image from the store to the registry its name points at."""
    from minirun.image import push as pushmod

    ref, plain_http = _strip_scheme(ref)
    digest = pushmod.push(ref, store=_store(store_root), insecure=insecure or plain_http,
                          stream=open(os.devnull, "w") if quiet else sys.stderr)
    if quiet:
        click.echo(digest)


def _filter_rows(rows, filters):
    """Docker's --filter dangling=true|false and reference=PATTERN."""
    import fnmatch

    for item in filters:
        key, eq, value = item.partition("=")
        if key == "dangling" and eq and value.lower() in ("true", "1", "false", "0"):
            want = value.lower() in ("true", "1")
            rows = [r for r in rows if r["dangling"] == want and not r["intermediate"]]
        elif key == "reference" and eq:
            rows = [r for r in rows if not r["dangling"] and
                    (fnmatch.fnmatch(f"{r['repository']}:{r['tag']}", value)
                     or fnmatch.fnmatch(r["repository"], value))]
        else:
            raise MinirunError(f"invalid filter '{item}' (dangling=true|false, reference=NAME)")
    return rows


def _list_images(store_root, quiet, digests, fmt, all_images=False, filters=()):
    rows = _filter_rows(_store(store_root).images(all_images), filters)
    if fmt not in ("table", "json") and not quiet:
        from minirun.cli.dockerlike import show

        show([_docker_row(r) for r in rows], fmt, [])
        return
    if fmt == "json":
        click.echo(json.dumps(rows, indent=2))
        return
    if quiet:
        seen = []
        for r in rows:
            short = r["id"].split(":")[1][:12]
            if short not in seen:
                seen.append(short)
        click.echo("\n".join(seen)) if seen else None
        return
    cols = ["REPOSITORY", "TAG"] + (["DIGEST"] if digests else []) + \
        ["IMAGE ID", "CREATED", "SIZE"]
    table = [cols]
    for r in rows:
        table.append([r["repository"], r["tag"]] + ([r["digest"]] if digests else []) +
                     [r["id"].split(":")[1][:12], _ago(r["created"]), _human_size(r["size"])])
    widths = [max(len(row[i]) for row in table) for i in range(len(cols))]
    for row in table:
        click.echo("   ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip())


def _docker_row(r):
    """An images row with Docker's --format field names."""
    return {"ID": r["id"].split(":")[1][:12], "Repository": r["repository"], "Tag": r["tag"],
            "Digest": r.get("digest") or "<none>", "CreatedAt": r["created"] or "",
            "CreatedSince": _ago(r["created"]), "Size": _human_size(r["size"])}


_list_options = [
    click.option("-a", "--all", "all_images", is_flag=True,
                 help="Also the intermediate images of build steps."),
    click.option("-f", "--filter", "filters", multiple=True, metavar="KEY=VALUE",
                 help="dangling=true (untagged images) or false, reference=NAME[:TAG] glob."),
    click.option("-q", "--quiet", is_flag=True, help="Only image ids."),
    click.option("--digests", is_flag=True, help="Show manifest digests."),
    click.option("--format", "fmt", default="table",
                 help="table, json, or a Go template ('{{.Repository}}:{{.Tag}}')."),
    store_option,
]


def _with(options):
    def deco(f):
        for opt in reversed(options):
            f = opt(f)
        return f
    return deco


@click.command()
@_with(_list_options)
def images(all_images, filters, quiet, digests, fmt, store_root):
    """List images in the store (name, tag, id, created, size); images known
    only by id show as <none>:<none>."""
    _list_images(store_root, quiet, digests, fmt, all_images, filters)


def _running_check(ctx, store_root):
    """container id -> True if that front-end container runs (Docker refuses to
    delete its image even with -f)."""
    def running(cid):
        from minirun.frontend import control
        from minirun.frontend.records import Frontend

        root = (ctx.find_root().obj or {}).get("root", "/run/minirun")
        fe = Frontend(store_root, root)
        try:
            return control.is_running(fe, fe.load(cid))
        except MinirunError:
            return False  # not a front-end container (a build step's)
    return running


def _familiar(key):
    """docker.io/library/busybox:latest -> busybox:latest, as Docker prints names."""
    from minirun.image import reference

    return reference.parse(key).familiar_string


@click.command()
@click.option("-f", "--force", is_flag=True, help="Remove even if in use or multiply tagged.")
@click.option("--no-prune", is_flag=True, help="Keep the now unreferenced blobs.")
@store_option
@click.argument("names", nargs=-1, required=True)
@click.pass_context
def rmi(ctx, force, no_prune, store_root, names):
    """Remove images (names or ids); unreferenced blobs are collected."""
    store = _store(store_root)
    failed = []
    for name in names:
        try:
            for action, value in store.delete(name, force=force,
                                              running=_running_check(ctx, store_root)):
                click.echo(f"{action}: {_familiar(value) if action == 'Untagged' else value}")
        except MinirunError as e:
            failed.append(e)
    if not no_prune:
        removed, freed = store.gc()
        if removed:
            click.echo(f"Deleted {removed} blobs ({_human_size(freed)})")
    for e in failed[:-1]:
        click.echo(f"minirun: {e}", err=True)
    if failed:
        raise failed[-1]


@click.command()
@click.option("-a", "--all", "all_", is_flag=True,
              help="Remove every image no container uses, not only dangling ones.")
@click.option("-f", "--force", is_flag=True, help="Do not prompt (there is no prompt).")
@store_option
def prune(all_, force, store_root):
    """Remove dangling images (untagged, no container uses them) and the build
    steps only they were built on, then blobs and layers nothing refers to."""
    store = _store(store_root)
    records = store.prune(all_images=all_)
    _, freed = store.gc()
    if records:
        click.echo("Deleted Images:")
        for action, value in records:
            click.echo(f"{action.lower()}: {_familiar(value) if action == 'Untagged' else value}")
        click.echo("")
    click.echo(f"Total reclaimed space: {_human_size(freed)}")


@click.command()
@click.option("--format", "fmt", type=click.Choice(["docker", "raw"]), default="docker",
              help="docker: `docker image inspect` shape; raw: manifest and config.")
@store_option
@click.argument("names", nargs=-1, required=True)
def inspect(fmt, store_root, names):
    """Show details of images as JSON."""
    store = _store(store_root)
    out = []
    for name in names:
        image = store.resolve(name)
        if fmt == "raw":
            out.append({"Digest": image.digest, "Manifest": image.manifest,
                        "Config": image.config})
            continue
        refs = store.refs()
        tags = [k for k, v in refs.items() if v["manifest"] == image.digest and "@" not in k]
        repo_digests = sorted({k.split("@")[0].rsplit(":", 1)[0] + "@" + (v.get("index")
                                                                          or v["manifest"])
                               for k, v in refs.items() if v["manifest"] == image.digest})
        cfg = image.config
        out.append({
            "Id": image.id, "RepoTags": tags, "RepoDigests": repo_digests,
            "Created": cfg.get("created"), "Author": cfg.get("author", ""),
            "Architecture": cfg.get("architecture"), "Variant": cfg.get("variant"),
            "Os": cfg.get("os"), "Size": image.size, "Config": cfg.get("config", {}),
            "RootFS": {"Type": "layers", "Layers": image.diff_ids},
            "History": cfg.get("history") or [],
            "Manifest": {"Digest": image.digest, "MediaType": image.manifest.get("mediaType"),
                         "Layers": image.layers},
        })
    click.echo(json.dumps(out, indent=4))


@click.command()
@click.option("-i", "--input", "input_", metavar="FILE", required=True,
              help="OCI archive, OCI layout directory or docker-save archive.")
@click.option("--name", metavar="NAME[:TAG]", help="Name for images the archive does not name.")
@click.option("--platform", metavar="OS/ARCH[/VARIANT]",
              help="Which image of a multi-platform index (default: this host's, e.g. linux/amd64).")
@store_option
def load(input_, name, platform, store_root):
    """Load images from an archive into the store."""
    from minirun.image import layout, manifest

    plat = manifest.parse_platform(platform) if platform else None
    for key, image in layout.load_archive(_store(store_root), input_, name, plat):
        click.echo(f"Loaded image: {key}")


@click.command()
@click.option("-o", "--output", required=True, metavar="FILE", help="Archive to write.")
@store_option
@click.argument("names", nargs=-1, required=True)
def save(output, store_root, names):
    """Save images to a tar that is both an OCI archive and a docker archive."""
    from minirun.image import layout

    layout.save_archive(_store(store_root), list(names), output)


@click.command()
@click.option("-u", "--username", help="Registry user name (asked for if not given).")
@click.option("-p", "--password", help="Password or token (visible to `ps`: prefer --password-stdin).")
@click.option("--password-stdin", is_flag=True, help="Read the password from stdin.")
@click.option("--insecure", is_flag=True, help="Allow plain http and unverified TLS.")
@click.argument("server", default="docker.io")
def login(username, password, password_stdin, insecure, server):
    """Log in to a registry (credentials are checked, then saved)."""
    from minirun.image import registry

    server, plain = _strip_scheme(server.rstrip("/"))
    if password_stdin:
        password = sys.stdin.read().rstrip("\n")
    if not username:
        username = click.prompt("Username")
    if password is None:
        password = click.prompt("Password", hide_input=True)
    registry.login(server, username, password, insecure=insecure or plain)
    click.echo("Login Succeeded")


@click.command()
@click.argument("server", default="docker.io")
def logout(server):
    """Forget the credentials for a registry."""
    from minirun.image import registry

    server, _ = _strip_scheme(server.rstrip("/"))
    if registry.remove_credentials(server):
        click.echo(f"Removing login credentials for {server}")
    else:
        click.echo(f"Not logged in to {server}")


def _image_from(spec, store_root, platform=None, pull_missing=False):
    """LAYOUT_DIR[:TAG] (an OCI layout on disk) or a store name/id."""
    from minirun.cli.imagefast import image_from

    return image_from(spec, store_root, platform, pull_missing)


@click.command()
@click.option("--image", "image_spec", required=True, metavar="LAYOUT[:TAG]|NAME",
              help="An OCI layout directory and tag, or an image in the store.")
@click.option("--platform", metavar="OS/ARCH[/VARIANT]",
              help="Which image of a multi-platform index (default: this host's, e.g. linux/amd64).")
@click.option("--no-config", is_flag=True, help="Only the rootfs, no config.json.")
@store_option
@click.argument("dest")
def unpack(image_spec, platform, no_config, store_root, dest):
    """Unpack an image into DEST/rootfs (+ DEST/config.json), like `umoci unpack`."""
    from minirun.cli import imagefast  # its plain forms skip click: same options, same call

    imagefast.unpack_command(imagefast.UnpackOptions(dest, image_spec, platform, no_config,
                                                     store_root))


@click.command()
@click.option("--platform", metavar="OS/ARCH[/VARIANT]",
              help="Which image of a multi-platform index (default: this host's, e.g. linux/amd64).")
@click.option("-u", "--user", help="User (name|uid[:group|gid]) instead of the image's.")
@click.option("-e", "--env", multiple=True, help="Extra KEY=VALUE environment.")
@click.option("-w", "--workdir", help="Working directory instead of the image's.")
@click.option("-t", "--tty", is_flag=True, help="Set process.terminal.")
@store_option
@click.argument("image_name", metavar="IMAGE")
@click.argument("bundle_dir", metavar="DIR")
@click.argument("args", nargs=-1)
def bundle(platform, user, env, workdir, tty, store_root, image_name, bundle_dir, args):
    """Write a runnable OCI bundle (DIR/rootfs + DIR/config.json) for IMAGE
    (a store name, pulled if missing, or LAYOUT:TAG); ARGS replace the image's Cmd."""
    from minirun.image import bundle as bundlemod

    image = _image_from(image_name, store_root, platform, pull_missing=True)
    bundlemod.image_to_bundle(image, bundle_dir, args=list(args) or None, user=user,
                              env=env, workdir=workdir, terminal=tty)
    click.echo(bundle_dir)


@click.command("ls")
@_with(_list_options)
def image_ls(all_images, filters, quiet, digests, fmt, store_root):
    """List images (same as `minirun images`)."""
    _list_images(store_root, quiet, digests, fmt, all_images, filters)


@click.group()
def image():
    """Manage images: ls, inspect, prune, rm, pull, push, load, save."""


image.add_command(image_ls)
image.add_command(inspect)
image.add_command(prune)
image.add_command(rmi, "rm")
image.add_command(pull)
image.add_command(push)
image.add_command(load)
image.add_command(save)

# `image tag` and `image history` are the build module's tag and history.
from minirun.cli import build as _build_cli  # noqa: E402

image.add_command(_build_cli.tag)
image.add_command(_build_cli.history)
