"""`build:` of a service through the image builder's library API (minirun/build/)."""


def available():
    try:
        from minirun.build import executor  # noqa: F401
    except ImportError:
        return False
    return hasattr(executor, "run_build") and hasattr(executor, "BuildOptions")


def build(fe, svc, tag, out=None):
    """Build the service's image and tag it `tag` (its image: or <project>-<service>)."""
    from minirun.build import executor

    import os

    spec = svc["build"]
    # Compose's dockerfile is relative to the context (the builder's -f is relative to cwd).
    dockerfile = os.path.join(spec["context"], spec.get("dockerfile") or "Dockerfile")
    opts = executor.BuildOptions(spec["context"], dockerfile=dockerfile,
                                 tags=[tag], build_args={k: v for k, v in
                                                         (spec.get("args") or {}).items()
                                                         if v is not None},
                                 target=spec.get("target"), runtime_root=fe.root,
                                 store_root=fe.store_root)
    return executor.run_build(opts, out=out)
