"""OCI hooks: programs run at fixed points of the lifecycle with the state
JSON on stdin.

  createRuntime, prestart  runtime namespace, during create (before pivot_root)
  createContainer          container namespace, during create (before pivot_root)
  startContainer           container namespace, after start, before the user's program
  poststart                runtime namespace, after start;   failure: warning only
  poststop                 runtime namespace, after delete;  failure: warning only
"""
from minirun import jsonio as json
from minirun import log
from minirun.errors import MinirunError
from minirun.linux.trace import step

WARN_ONLY = {"poststart", "poststop"}


def has(config, phase):
    return bool((config.get("hooks") or {}).get(phase))


def run_phase(config, phase, state):
    for hook in (config.get("hooks") or {}).get(phase) or []:
        try:
            run_hook(hook, state)
        except MinirunError as e:
            if phase in WARN_ONLY:
                log.warning(f"{phase} hook: {e}")
            else:
                raise MinirunError(f"{phase} hook: {e}") from None


def run_hook(hook, state):
    path = hook["path"]
    args = hook.get("args") or [path]
    env = dict(e.partition("=")[::2] for e in hook.get("env") or [])
    import subprocess

    step("exec hook", f"{path} {args[1:]}", "an OCI hook", "runtime-spec config.md#posix-platform-hooks")
    try:
        result = subprocess.run(args, executable=path, env=env, input=json.dumps(state).encode(),
                                timeout=hook.get("timeout"), capture_output=True, close_fds=True)
    except FileNotFoundError:
        raise MinirunError(f"{path}: no such file or directory") from None
    except PermissionError:
        raise MinirunError(f"{path}: permission denied") from None
    except subprocess.TimeoutExpired:
        raise MinirunError(f"{path}: timed out after {hook.get('timeout')}s") from None
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).decode(errors="replace").strip()
        raise MinirunError(f"{path} exited with status {result.returncode}"
                           + (f": {detail}" if detail else ""))
