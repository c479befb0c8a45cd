"""Building images from a Dockerfile (`minirun build`), plus commit, tag and history.

    dockerfile.py   the parser: lines, continuations, directives, instructions
    lexer.py        Docker's word processing: quotes and $VAR substitution
    dockerignore.py .dockerignore patterns (moby's patternmatcher rules)
    context.py      the build context: ignored files, COPY sources, checksums
    stages.py       multi-stage graph: which stages a target needs
    executor.py     runs the steps, with the cache (cache.py)
    steps_run.py    a RUN step: a real container on an overlay of the layers
    steps_copy.py   COPY/ADD into the rootfs, through fds
    layer.py        an OCI layer from an overlay upper directory
    images.py       image configs, history and manifests written to the store
"""
