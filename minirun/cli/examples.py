"""Examples for `minirun COMMAND --help`, for commands whose docstring has none.

Kept in one table so that tests/teaching/test_help.py can check that every
command has one and that each example still parses against the real options
(a renamed flag fails the test, not a reader).  The key is the command as
typed; aliases (`minirun logs` = `minirun container logs`) share an entry.
`attach()` is called by the lazy command loader in cli/app.py: it only sets
click's `epilog`, so it costs nothing until --help.
"""

_RUNC = {
    "start": """
        minirun create --bundle images/out/busybox c1
        minirun start c1         # the process execs the program of config.json""",
    "state": """
        minirun state c1         # {"ociVersion", "id", "status", "pid", "bundle", ...}""",
    "delete": """
        minirun delete c1        # a stopped container
        minirun delete --force c1   # kill it first if it runs""",
    "list": """
        minirun list
        minirun list -q
        minirun --root /run/containerd/runc/k8s.io list --format json""",
    "features": """
        minirun features         # namespaces, capabilities, seccomp actions, ... as JSON""",
    "pause": """
        minirun pause c1         # freeze every process (cgroup freezer)
        minirun resume c1""",
    "resume": """
        minirun resume c1""",
    "events": """
        minirun events --stats c1       # runc's: one reading: cpu, memory, pids, ...
        minirun events --interval 1 c1  # a JSON line per second, and oom events
        minirun events --since 10m --filter event=die   # Docker's: front-end containers
        minirun events --format '{{.Action}} {{.Actor.Attributes.name}}'""",
}

_DOCKER = {
    "container": """
        minirun container run --rm busybox echo hello
        minirun container ls -a""",
    "container create": """
        minirun container create --name web -p 8080:80 busybox httpd -f -p 80 -h /var/www
        minirun container create -l team=web -e MODE=test busybox env""",
    "container start": """
        minirun container start web
        minirun container start -a job   # attach: print its output, exit with its status""",
    "container exec": """
        minirun exec -it web sh
        minirun container exec web ps   # `exec` alone is runc's for a container not made by `run`
        minirun exec -e DEBUG=1 -w /tmp web env""",
    "container inspect": """
        minirun inspect web
        minirun inspect -f '{{.State.Status}}' web
        minirun inspect --type image busybox""",
    "container kill": """
        minirun container kill web         # SIGKILL (`minirun kill` is runc's verb)
        minirun container kill -s HUP web""",
    "container ls": """
        minirun ps               # running containers
        minirun ps -a --filter status=exited
        minirun ps -q --no-trunc""",
    "container logs": """
        minirun logs web
        minirun logs -f --tail 10 web
        minirun logs --since 10m -t web""",
    "container pause": """
        minirun container pause web
        minirun container unpause web""",
    "container unpause": """
        minirun container unpause web""",
    "container port": """
        minirun port web         # 80/tcp -> 0.0.0.0:8080
        minirun port web 80""",
    "container prune": """
        minirun container prune -f""",
    "container rename": """
        minirun rename web www""",
    "container restart": """
        minirun restart web
        minirun restart -t 2 web""",
    "container rm": """
        minirun rm web
        minirun container rm -f -v web   # kill it first; remove its anonymous volumes""",
    "container update": """
        minirun container update --memory 64m --cpus 0.5 web
        minirun container update --restart on-failure:3 web""",
    "container cp": """
        minirun cp web:/etc/hosts ./hosts     # out of a container (running or stopped)
        minirun cp ./site web:/var/www        # into it
        minirun cp web:/var/log - | tar tvf -   # a tar archive on stdout""",
    "container diff": """
        minirun diff web         # A added, C changed, D deleted""",
    "container export": """
        minirun export -o web.tar web
        minirun export web | minirun import - web-copy:1""",
    "container attach": """
        minirun attach web       # Ctrl-P Ctrl-Q detaches
        minirun attach --detach-keys ctrl-x web""",
    "import": """
        minirun import web.tar web-copy:1
        minirun export web | minirun import - web-copy:1""",
    "container stats": """
        minirun stats
        minirun stats --no-stream web""",
    "container stop": """
        minirun stop web         # SIGTERM, then SIGKILL after 10 s
        minirun stop -t 2 web""",
    "container top": """
        minirun top web
        minirun top web -o pid,args""",
    "container wait": """
        minirun wait job         # prints the exit code""",
    "system": """
        minirun system prune -f""",
    "system prune": """
        minirun system prune -f
        minirun system prune -a --volumes -f""",
    "volume": """
        minirun volume create data
        minirun run --rm -v data:/data busybox sh -c 'date > /data/created'
        minirun volume ls""",
    "volume create": """
        minirun volume create data
        minirun volume create -l project=demo""",
    "volume inspect": """
        minirun volume inspect data""",
    "volume ls": """
        minirun volume ls
        minirun volume ls -q""",
    "volume prune": """
        minirun volume prune -f
        minirun volume prune -a -f   # named volumes too""",
    "volume rm": """
        minirun volume rm data""",
}

_IMAGES = {
    "bundle": """
        minirun bundle busybox /tmp/bb           # then: minirun run --bundle /tmp/bb bb
        minirun bundle images/out/oci/busybox:latest /tmp/bb -- sh -c 'echo hi'""",
    "image": """
        minirun image ls
        minirun image inspect busybox""",
    "image inspect": """
        minirun image inspect busybox
        minirun image inspect --format raw busybox   # the manifest and config as stored""",
    "image load": """
        minirun load -i images/out/oci/busybox   # an OCI layout directory
        minirun load -i busybox.tar --name busybox:saved""",
    "image ls": """
        minirun images
        minirun images -q
        minirun images -a                         # build steps' images too
        minirun images --filter dangling=true     # untagged: <none>:<none>
        minirun image ls --digests --format json""",
    "image prune": """
        minirun image prune      # dangling images (<none>:<none>) no container uses
        minirun image prune -a   # every image no container uses""",
    "image pull": """
        minirun pull busybox     # docker.io/library/busybox:latest
        minirun pull --platform linux/arm64 alpine:3.20
        minirun pull --insecure localhost:5000/demo:1""",
    "image rm": """
        minirun rmi busybox
        minirun rmi -f 2c7a3f1b0d9e   # by id, even if in use""",
    "image save": """
        minirun save -o busybox.tar busybox""",
    "image push": """
        minirun tag busybox 127.0.0.1:5000/demo:1
        minirun push --insecure 127.0.0.1:5000/demo:1   # plain HTTP to a local registry
        minirun push -q registry.example.com/me/app:2   # prints only the manifest digest""",
    "login": """
        minirun login -u me registry.example.com
        echo "$TOKEN" | minirun login -u me --password-stdin ghcr.io""",
    "logout": """
        minirun logout registry.example.com""",
    "unpack": """
        minirun unpack --image images/out/oci/busybox:latest /tmp/bb
        minirun unpack --image busybox --no-config /tmp/bb-rootfs""",
    "network": """
        minirun network create backend
        minirun network ls""",
    "network create": """
        minirun network create backend
        minirun network create --subnet 10.89.7.0/24 --gateway 10.89.7.1 lab""",
    "network inspect": """
        minirun network inspect backend""",
    "network ls": """
        minirun network ls
        minirun network ls -q""",
    "network rm": """
        minirun network rm backend lab""",
}

# runc's verb and the Docker-like command share these names (cli/docker.py).
_BOTH = {
    "ps": """
        minirun ps -a            # Docker-like: containers made by `minirun run`
        minirun ps c1            # runc: the processes of container c1
        minirun ps --format json c1""",
}

EXAMPLES = {**_RUNC, **_DOCKER, **_IMAGES, **_BOTH}

# Other names of the same commands.
ALIASES = {
    "container list": "container ls", "container ps": "container ls",
    "container run": "run", "inspect": "container inspect", "logs": "container logs",
    "stop": "container stop", "rm": "container rm", "stats": "container stats",
    "top": "container top", "wait": "container wait", "restart": "container restart",
    "port": "container port", "rename": "container rename", "images": "image ls",
    "pull": "image pull", "rmi": "image rm", "load": "image load", "save": "image save",
    "push": "image push",
    "exec": "container exec",
    "cp": "container cp", "diff": "container diff", "export": "container export",
    "attach": "container attach",
}


def text(path):
    """The examples for a command path ("image ls"), or None."""
    body = EXAMPLES.get(path) or EXAMPLES.get(ALIASES.get(path, ""))
    if body is None:
        return None
    lines = [line.strip() for line in body.strip("\n").splitlines()]
    return "\b\nExamples:\n" + "\n".join("  " + line for line in lines)


def _targets(cmd):
    """The click commands behind a name: both sides of a runc/Docker dispatcher."""
    if hasattr(cmd, "docker_cmd") and hasattr(cmd, "oci_name"):
        from minirun.cli import oci

        return [cmd.docker_cmd, getattr(oci, cmd.oci_name)]
    return [cmd]


def attach(path, cmd):
    """Give `cmd` (and its subcommands) examples, unless its help has some."""
    import click

    for target in _targets(cmd):
        help_text = target.help or ""
        if "example" not in help_text.lower() and not target.epilog:
            found = text(path)
            if found:
                target.epilog = found
        if isinstance(target, click.Group):
            for name, sub in target.commands.items():
                attach(f"{path} {name}", sub)
