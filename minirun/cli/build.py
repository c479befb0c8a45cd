"""Image building commands: build, tag, history, commit.  Thin: parse flags,
call minirun.build."""
import click

# The same --store as the image commands (not imported from cli/image.py,
# which imports this module for `image tag` and `image history`).
store_option = click.option(
    "--store", "store_root", envvar="MINIRUN_STORE", metavar="DIR",
    help="Image store directory (default /var/lib/minirun, or $MINIRUN_STORE).")


@click.command()
@click.option("-t", "--tag", "tags", multiple=True, metavar="NAME[:TAG]",
              help="Name the image (repeatable).")
@click.option("-f", "--file", "dockerfile", metavar="FILE",
              help="The Dockerfile (default: CONTEXT/Dockerfile; - reads stdin).")
@click.option("--build-arg", "build_args", multiple=True, metavar="K=V",
              help="Set a build-time variable (repeatable).")
@click.option("--target", metavar="STAGE", help="Build this stage (and what it needs) only.")
@click.option("--no-cache", is_flag=True, help="Do not use the build cache.")
@click.option("--pull", is_flag=True, help="Always pull the FROM images.")
@click.option("--network", default="default", metavar="MODE",
              help="Network of RUN steps: default (= host) or none.")
@click.option("--platform", metavar="OS/ARCH", help="Platform of the FROM images.")
@click.option("-q", "--quiet", is_flag=True, help="Print only the image id.")
@click.option("--label", "labels", multiple=True, metavar="K=V",
              help="Set a label on the final image (repeatable).")
@click.option("--iidfile", metavar="FILE", help="Write the image id to FILE.")
@click.option("--rm/--no-rm", "remove", default=True,
              help="Accepted for Docker compatibility: step containers are always removed.")
@click.option("--force-rm", is_flag=True,
              help="Accepted for Docker compatibility: step containers are always removed.")
@store_option
@click.argument("context", default=".")
@click.pass_context
def build(ctx, tags, dockerfile, build_args, target, no_cache, pull, network, platform, quiet,
          labels, iidfile, remove, force_rm, store_root, context):
    """Build an image from a Dockerfile.

    \b
    Examples:
      minirun build -t app:1.0 .                      # ./Dockerfile, context .
      minirun build -f build/Dockerfile --target test --build-arg VERSION=2 .
      SOURCE_DATE_EPOCH=0 minirun build -q --no-cache .   # same digest every time
    """
    import signal

    from minirun.build.executor import BuildOptions, parse_build_args, run_build
    from minirun.errors import MinirunError

    def terminated(signum, _frame):
        # An exception, so every step's cleanup (mounts, temp dirs) runs.
        err = MinirunError(f"build stopped by signal {signum}")
        err.exit_code = 128 + signum
        raise err

    signal.signal(signal.SIGTERM, terminated)
    signal.signal(signal.SIGHUP, terminated)
    opts = BuildOptions(context, dockerfile=dockerfile, tags=tags,
                        build_args=parse_build_args(build_args), target=target,
                        no_cache=no_cache, pull=pull, network=network, quiet=quiet,
                        runtime_root=(ctx.obj or {}).get("root"), store_root=store_root,
                        platform=platform, iidfile=iidfile,
                        labels=dict(item.partition("=")[::2] for item in labels))
    run_build(opts)


@click.command()
@store_option
@click.argument("source")
@click.argument("target")
def tag(store_root, source, target):
    """Give an image another name: SOURCE[:TAG] -> TARGET[:TAG].

    \b
    Examples:
      minirun tag app:1.0 localhost:5000/app:1.0
    """
    from minirun.build.history import tag_image

    tag_image(source, target, store_root)


@click.command()
@click.option("-q", "--quiet", is_flag=True, help="Only the ids.")
@click.option("--no-trunc", is_flag=True, help="Do not truncate output.")
@click.option("-H", "--human", default=True, type=bool, show_default=True,
              help="Sizes and dates in human-readable form.")
@click.option("--format", "fmt", help="json, or a Go template ('{{.CreatedBy}} {{.Size}}').")
@store_option
@click.argument("image")
def history(quiet, no_trunc, human, fmt, store_root, image):
    """Show the history of an image.

    \b
    Examples:
      minirun history app:1.0
      minirun history --no-trunc -q app:1.0
    """
    from minirun.build.history import history_rows
    from minirun.cli.image import _ago, _human_size

    rows = history_rows(image, store_root)
    if quiet:
        for row in rows:
            click.echo(row["id"] if no_trunc else row["id"][7:19] if row["id"] != "<missing>"
                       else row["id"])
        return
    if fmt and fmt != "table":
        from minirun.cli.dockerlike import show

        show([{"ID": row["id"] if row["id"] == "<missing>" or no_trunc else row["id"][7:19],
               "CreatedSince": _ago(row["created"]), "CreatedAt": row["created"] or "",
               "CreatedBy": row["created_by"], "Size": _human_size(row["size"]),
               "Comment": row["comment"]} for row in rows], fmt, [])
        return
    table = [("IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT")]
    for row in rows:
        ident = row["id"] if row["id"] == "<missing>" or no_trunc else row["id"][7:19]
        by = row["created_by"]
        if not no_trunc and len(by) > 45:
            by = by[:44] + "…"
        created = _ago(row["created"]) if human else (row["created"] or "")
        size = _human_size(row["size"]) if human else str(row["size"])
        table.append((ident, created, by, size, row["comment"]))
    # Columns as wide as their longest cell plus 3, as Docker's tabwriter makes them.
    widths = [max(len(r[i]) for r in table) + 3 for i in range(4)]
    for r in table:
        click.echo(("".join(cell.ljust(w) for cell, w in zip(r, widths)) + r[4]).rstrip())


@click.command()
@click.option("-c", "--change", "changes", multiple=True, metavar="INSTRUCTION",
              help="Apply a Dockerfile instruction (CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, "
                   "ONBUILD, USER, VOLUME, WORKDIR, STOPSIGNAL, HEALTHCHECK, SHELL).")
@click.option("-m", "--message", default="", help="Commit message.")
@click.option("-a", "--author", default="", help="Author.")
@click.option("-p", "--pause/--no-pause", default=True, help="Accepted for Docker compatibility.")
@store_option
@click.argument("container")
@click.argument("ref", required=False)
@click.pass_context
def commit(ctx, changes, message, author, pause, store_root, container, ref):
    """Create an image from a container's changes.

    \b
    Examples:
      minirun commit web snapshot:1
      minirun commit -c 'CMD ["httpd", "-f"]' -c 'EXPOSE 80' web web:v2
    """
    from minirun.build.commit import commit_container

    image = commit_container(container, ref, changes=changes, message=message, author=author,
                             store_root=store_root, runtime_root=(ctx.obj or {}).get("root"))
    click.echo(image.id)
