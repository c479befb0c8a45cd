"""The restart policy: whether and when an exited container starts again.

Docker's rules: no / on-failure[:N] (non-zero exit, at most N times) / always /
unless-stopped; never after `stop`/`kill` (ManualStop) or with --rm.  The
delay backs off: 100 ms, doubled each time, at most 1 min, and back to 100 ms
once a run lasted 10 s.
"""
import os

BACKOFF_START, BACKOFF_MAX, BACKOFF_RESET_AFTER = 0.1, 60.0, 10.0


def exit_code(status):
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    if os.WIFEXITED(status):
        return os.WEXITSTATUS(status)
    return 255


def restart_delay(rec, code, ran_for):
    """Seconds until the next start, or None: the restart policy with Docker's
    back-off (100 ms, doubled each time, at most 1 min, reset after 10 s of running)."""
    host = rec["HostConfig"]
    policy = host.get("RestartPolicy") or {"Name": "no"}
    if rec.get("ManualStop") or host.get("AutoRemove") or policy["Name"] == "no":
        return None
    if policy["Name"] == "on-failure":
        if code == 0:
            return None
        limit = policy.get("MaximumRetryCount") or 0
        if limit and rec.get("RestartCount", 0) >= limit:
            return None
    previous = rec.get("RestartDelay") or 0
    if not previous or ran_for >= BACKOFF_RESET_AFTER:
        return BACKOFF_START
    return min(previous * 2, BACKOFF_MAX)
