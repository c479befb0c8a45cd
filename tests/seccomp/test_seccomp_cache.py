"""The compiled-program cache: a hit is exactly what compile_filter makes, and
nothing but a program compile_filter made is ever read back."""
import os

import pytest

from minirun.errors import ConfigError
from minirun.linux import seccomp, seccomp_cache
from seccomp_profiles import DOCKER_SHAPED

pytestmark = pytest.mark.unprivileged  # pure logic: runs without root

BLOCK_MKDIR = {
    "defaultAction": "SCMP_ACT_ALLOW",
    "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}],
}


def entries(cache):
    return sorted(os.listdir(cache)) if os.path.isdir(cache) else []


def test_second_compile_reads_the_same_program_back(tmp_path):
    cache = str(tmp_path / "cache")
    expected = seccomp.compile_filter(DOCKER_SHAPED)
    assert seccomp_cache.cached_compile(DOCKER_SHAPED, cache) == expected
    [name] = entries(cache)
    stamp = os.stat(os.path.join(cache, name)).st_mtime_ns
    assert seccomp_cache.cached_compile(DOCKER_SHAPED, cache) == expected
    assert entries(cache) == [name]
    assert os.stat(os.path.join(cache, name)).st_mtime_ns == stamp  # read, not rewritten


def test_each_profile_has_its_own_entry(tmp_path):
    cache = str(tmp_path / "cache")
    a = seccomp_cache.cached_compile(DOCKER_SHAPED, cache)
    b = seccomp_cache.cached_compile(BLOCK_MKDIR, cache)
    assert a != b and len(entries(cache)) == 2
    assert seccomp_cache.cached_compile(BLOCK_MKDIR, cache) == seccomp.compile_filter(BLOCK_MKDIR)


def test_a_damaged_entry_is_compiled_again(tmp_path):
    cache = str(tmp_path / "cache")
    expected = seccomp_cache.cached_compile(BLOCK_MKDIR, cache)
    [name] = entries(cache)
    path = os.path.join(cache, name)
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) - 3)  # not a whole number of instructions
    assert seccomp_cache.cached_compile(BLOCK_MKDIR, cache) == expected
    with open(path, "wb") as f:
        f.write(b"\0" * 64)  # not ours at all
    assert seccomp_cache.cached_compile(BLOCK_MKDIR, cache) == expected


def test_a_symlinked_entry_is_not_followed(tmp_path):
    cache = str(tmp_path / "cache")
    expected = seccomp_cache.cached_compile(BLOCK_MKDIR, cache)
    [name] = entries(cache)
    path = os.path.join(cache, name)
    planted = tmp_path / "planted"
    with open(path, "rb") as f:
        data = f.read()
    planted.write_bytes(data[:-8] + b"\x06\x00\x00\x00\x00\x00\xff\x7f")  # last insn: allow
    os.unlink(path)
    os.symlink(planted, path)
    assert seccomp_cache.cached_compile(BLOCK_MKDIR, cache) == expected


def test_a_bad_profile_is_refused_and_not_stored(tmp_path):
    cache = str(tmp_path / "cache")
    with pytest.raises(ConfigError):
        seccomp_cache.cached_compile({"defaultAction": "SCMP_ACT_NOPE"}, cache)
    assert entries(cache) == []


def test_no_profile_means_no_program_and_no_entry(tmp_path):
    cache = str(tmp_path / "cache")
    assert seccomp_cache.cached_compile(None, cache) == (None, 0)
    assert seccomp_cache.cached_compile({}, cache) == (None, 0)
    assert entries(cache) == []


def test_an_unwritable_cache_still_compiles(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    assert seccomp_cache.cached_compile(BLOCK_MKDIR, str(blocker / "cache")) == \
        seccomp.compile_filter(BLOCK_MKDIR)


def test_write_filter_fd_with_a_cache_seals_the_same_program(tmp_path):
    cache = str(tmp_path / "cache")
    for _ in range(2):
        fd, flags = seccomp.write_filter_fd(DOCKER_SHAPED, cache)
        try:
            program = os.pread(fd, os.fstat(fd).st_size, 0)
        finally:
            os.close(fd)
        assert (program, flags) == seccomp.compile_filter(DOCKER_SHAPED)


def test_a_trace_always_compiles(tmp_path, monkeypatch):
    """--trace shows libseccomp's work every time (and the tour stays the same)."""
    import io

    from minirun.linux import trace

    cache = str(tmp_path / "cache")
    fd, _ = seccomp.write_filter_fd(BLOCK_MKDIR, cache)  # now cached
    os.close(fd)
    out = io.StringIO()
    monkeypatch.setattr(trace, "_out", out)  # what trace.enable(out) sets, undone afterwards
    monkeypatch.setattr(trace, "_fd", None)
    fd, _ = seccomp.write_filter_fd(BLOCK_MKDIR, cache)
    os.close(fd)
    assert "seccomp compiled default=SCMP_ACT_ALLOW" in out.getvalue()
    assert "from " + cache not in out.getvalue()
