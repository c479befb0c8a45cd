"""Dockerfiles (with their contexts) built by both minirun and podman; their
images must unpack to the same trees and carry the same config fields."""
import gzip
import io
import tarfile


def _tar(entries, compress=False):
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for name, content, mode, uid in entries:
            info = tarfile.TarInfo(name)
            info.mode, info.uid, info.gid, info.mtime = mode, uid, uid, 1700000000
            if content is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))
    data = raw.getvalue()
    return gzip.compress(data, mtime=0) if compress else data


CASES = {
    # ENV/ARG substitution, metadata instructions, shell-form CMD
    "metadata": {
        "Dockerfile": """\
FROM busybox
ARG GREETING=hello
ARG EMPTY
ENV NAME=world DIR=/srv/app
ENV LEGACY value with spaces
ENV SUB1=${NAME:-none} SUB2=${UNSET:-fallback} SUB3=${NAME:+set} SUB4=${EMPTY:+x}
LABEL maintainer="dev team" version=1.0 "quoted key"=v$NAME
EXPOSE 80 443/tcp 53/udp
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=5s --retries=3 CMD wget -q -O- http://localhost/ || exit 1
MAINTAINER someone@example.com
RUN echo "$GREETING $NAME" > /greeting && echo "$SUB1 $SUB2 $SUB3 [$SUB4]" > /subst
VOLUME /data
VOLUME ["/cache", "/logs"]
CMD echo $NAME
""",
    },
    # a file of the base deleted in a RUN, one of an earlier layer too; a
    # directory replaced (opaque), a symlink and a hard link made
    "deletions": {
        "Dockerfile": """\
FROM busybox
RUN mkdir -p /opt/a/b && echo 1 > /opt/a/b/f && echo 2 > /opt/keep && ln -s /opt/keep /opt/link
RUN rm -rf /var/www /opt/a/b && rm /etc/group && mkdir /var/www && echo new > /var/www/new
RUN rm /opt/link && ln /opt/keep /opt/hard && chmod 4755 /opt/keep && mkfifo /opt/fifo
""",
    },
    # COPY: files, directories, globs, --chown (names and ids), --chmod, dest creation
    "copy": {
        "Dockerfile": """\
FROM busybox
COPY a.txt /dst/
COPY a.txt /renamed.txt
COPY dir /copied-dir
COPY *.md /docs/
COPY --chown=demo:demo a.txt dir /owned/
COPY --chown=1234 a.txt /numeric/a.txt
COPY --chmod=0750 run.sh /usr/local/bin/
COPY ["with space.txt", "/spaced/"]
COPY link /link-copy
""",
        "a.txt": "alpha\n",
        "dir/one": "1\n",
        "dir/sub/two": "2\n",
        "dir/sub/deeper/three": "3\n",
        "dir/sub/hard": ("hardlink", "dir/one"),
        "x.md": "# x\n",
        "y.md": "# y\n",
        "run.sh": "#!/bin/sh\necho run\n",
        "with space.txt": "space\n",
        "link": ("link", "a.txt"),
    },
    # ADD of local tar archives (plain and gzip) and of a plain file
    "add": {
        "Dockerfile": """\
FROM busybox
ADD plain.tar /unpacked/
ADD packed.tar.gz /unpacked-gz
ADD a.txt /added.txt
""",
        "plain.tar": _tar([("p", None, 0o755, 0), ("p/file", b"plain\n", 0o640, 0),
                           ("p/owned", b"o\n", 0o600, 1000)]),
        "packed.tar.gz": _tar([("g/file", b"gz\n", 0o644, 0)], compress=True),
        "a.txt": "alpha\n",
    },
    # .dockerignore with ** and ! exceptions
    "dockerignore": {
        "Dockerfile": "FROM busybox\nCOPY . /ctx/\n",
        ".dockerignore": "# comment\n*.log\n!keep.log\n**/*.tmp\nsecret/\nnested/**/drop\n",
        "a.log": "no\n",
        "keep.log": "yes\n",
        "x.tmp": "no\n",
        "deep/er/y.tmp": "no\n",
        "deep/er/ok": "yes\n",
        "secret/key": "no\n",
        "nested/a/b/drop": "no\n",
        "nested/a/b/stay": "yes\n",
    },
    # USER and WORKDIR that must be created; RUN as that user
    "user_workdir": {
        "Dockerfile": """\
FROM busybox
WORKDIR /app/sub
RUN touch made-by-root && id -u > uid-root
USER demo
WORKDIR /home/demo/app
RUN touch mine && id -u > uid && pwd > pwd
USER 1000:1000
RUN id > /home/demo/app/ids
""",
    },
    # exec-form CMD and ENTRYPOINT
    "exec_form": {
        "Dockerfile": """\
FROM busybox
ENTRYPOINT ["/bin/echo", "entry"]
CMD ["default", "args"]
RUN ["/bin/sh", "-c", "echo exec-form > /exec"]
""",
    },
    # shell-form ENTRYPOINT after a CMD (which it does not reset), SHELL
    "shell_form": {
        "Dockerfile": """\
FROM busybox
CMD ["kept"]
ENTRYPOINT echo shell $0
SHELL ["/bin/sh", "-e", "-c"]
RUN echo via-shell > /shell
""",
    },
    # multi-stage with --target: builds 'final' from 'build'; 'unused' is not needed
    "multistage": {
        "Dockerfile": """\
FROM busybox AS build
RUN mkdir /out && echo built > /out/artifact && chown 1000:1000 /out/artifact
FROM busybox AS other
RUN echo other > /other
FROM scratch AS final
COPY --from=build /out /
COPY --from=build /bin/busybox /bin/busybox
COPY --from=0 /etc/passwd /etc/passwd
FROM busybox AS last
RUN echo last > /last
""",
        "args": ["--target", "final"],
    },
    # escape directive, continuations, comments, syntax directive
    "syntax": {
        "Dockerfile": """\
# escape=`
# syntax=docker/dockerfile:1
FROM busybox
# a comment
RUN echo one `
    # a comment inside a continuation
    two `
    three > /joined
RUN echo "a\\b" > /backslash
""",
    },
    # ONBUILD recorded in the config; ARG after FROM with --build-arg
    "onbuild_args": {
        "Dockerfile": """\
ARG BASE=busybox
FROM $BASE
ARG VERSION=0
ARG FROM_CLI
ONBUILD RUN echo triggered > /trigger
ONBUILD COPY . /src
RUN echo "$VERSION $FROM_CLI" > /version
""",
        "args": ["--build-arg", "FROM_CLI=cli-value", "--build-arg", "VERSION=2"],
    },
    # FROM scratch with only COPY; WORKDIR on scratch
    "scratch": {
        "Dockerfile": """\
FROM scratch
COPY a.txt /
WORKDIR /w
COPY dir ./d
""",
        "a.txt": "alpha\n",
        "dir/one": "1\n",
    },
}
