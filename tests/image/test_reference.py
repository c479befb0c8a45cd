import pytest

from minirun.image import manifest as mf
from minirun.image.reference import InvalidReference, parse
from minirun.image.registry import parse_challenge

pytestmark = pytest.mark.unprivileged  # pure logic: runs without root

D = "sha256:" + "a" * 64


@pytest.mark.parametrize("text,domain,path,tag,digest", [
    ("busybox", "docker.io", "library/busybox", "latest", None),
    ("busybox:1.36", "docker.io", "library/busybox", "1.36", None),
    ("user/app", "docker.io", "user/app", "latest", None),
    ("docker.io/library/debian:12", "docker.io", "library/debian", "12", None),
    ("index.docker.io/foo/bar", "docker.io", "foo/bar", "latest", None),
    ("localhost/app", "localhost", "app", "latest", None),
    ("localhost:5000/ns/sub/repo:v1", "localhost:5000", "ns/sub/repo", "v1", None),
    ("127.0.0.1:5000/a:b", "127.0.0.1:5000", "a", "b", None),
    ("quay.io/org/img@" + D, "quay.io", "org/img", None, D),
    ("ghcr.io/o/i:t@" + D, "ghcr.io", "o/i", "t", D),
    ("a-b_c__d/x.y", "docker.io", "a-b_c__d/x.y", "latest", None),
])
def test_parse(text, domain, path, tag, digest):
    ref = parse(text)
    assert (ref.domain, ref.path, ref.tag, ref.digest) == (domain, path, tag, digest)


def test_strings_and_api_host():
    ref = parse("busybox")
    assert str(ref) == "docker.io/library/busybox:latest"
    assert ref.familiar == "busybox"
    assert ref.api_host == "registry-1.docker.io"
    assert parse("localhost:5000/x").is_local and parse("127.0.0.1:5000/x").is_local
    assert not parse("example.com/x").is_local
    assert parse("x@" + D).reference == D


@pytest.mark.parametrize("bad", [
    "", "Busybox", "a//b", "a/../b", "busybox:", "busybox:-x", "busybox@sha256:abc",
    "host:5000/", "a b", "-a", "a_", "x:" + "t" * 129, "a/b/..", "../etc",
])
def test_invalid(bad):
    with pytest.raises(InvalidReference):
        parse(bad)


def test_challenge_parsing():
    scheme, params = parse_challenge(
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
        'scope="repository:samalba/my-app:pull,push"')
    assert scheme == "bearer"
    assert params == {"realm": "https://auth.docker.io/token", "service": "registry.docker.io",
                      "scope": "repository:samalba/my-app:pull,push"}
    assert parse_challenge('Basic realm="r"') == ("basic", {"realm": "r"})


def test_chain_ids_and_platform():
    a, b = "sha256:" + "1" * 64, "sha256:" + "2" * 64
    chain = mf.chain_ids([a, b])
    assert chain[0] == a
    assert chain[1] == mf.sha256_digest(f"{a} {b}".encode())
    index = {"manifests": [
        {"digest": D, "size": 1, "platform": {"os": "linux", "architecture": "arm64",
                                              "variant": "v8"}},
        {"digest": "sha256:" + "b" * 64, "size": 1,
         "platform": {"os": "linux", "architecture": "amd64"}},
    ]}
    assert mf.select_platform(index, {"os": "linux", "architecture": "amd64"})["size"] == 1
    assert mf.select_platform(index, mf.parse_platform("linux/arm64/v8"))["digest"] == D
    with pytest.raises(mf.ManifestError, match="linux/s390x.*offers"):
        mf.select_platform(index, mf.parse_platform("linux/s390x"))


def test_manifest_validation():
    with pytest.raises(mf.ManifestError):
        mf.parse_manifest(b'{"config": {"digest": "sha256:../../x", "size": 1}, "layers": []}')
    with pytest.raises(mf.ManifestError, match="disagrees"):
        mf.kind({"mediaType": mf.OCI_INDEX}, mf.DOCKER_MANIFEST)
    with pytest.raises(mf.ManifestError, match="schema1"):
        mf.kind({"schemaVersion": 1})


# The distribution spec's expressions, as reference.py implemented them with
# `re` before; its hand-written checks must accept exactly the same strings.
_SPEC = {
    "_is_component": r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*\Z",
    "_is_tag": r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}\Z",
    "_is_domain": r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)"
                  r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*"
                  r"(?::[0-9]+)?\Z|\[[0-9A-Fa-f:]+\](?::[0-9]+)?\Z",
    "valid_digest": r"(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})\Z",
}
# Characters the grammar cares about, look-alikes and non-ASCII digits/letters.
_ALPHABET = "aAzZ09fF._-:[]@/ \n\u0660\u00e9\u0131K"


@pytest.mark.parametrize("check", sorted(_SPEC))
def test_grammar_checks_match_the_spec_expressions(check):
    import re

    from hypothesis import given, settings
    from hypothesis import strategies as st

    from minirun.image import reference

    pattern, func = re.compile(_SPEC[check]), getattr(reference, check)
    samples = st.one_of(
        st.text(_ALPHABET, max_size=12),
        st.text(max_size=8),
        st.builds(lambda a, h: a + ":" + h, st.sampled_from(["sha256", "sha512", "md5", ""]),
                  st.text("0123456789abcdefA", min_size=60, max_size=130)),
        st.builds(lambda n: "a" * n, st.integers(120, 135)))

    @settings(max_examples=1000, deadline=None, database=None)
    @given(samples)
    def agree(s):
        assert func(s) == bool(pattern.match(s)), s

    agree()
    fixed = ["a", "a-b", "a--b", "a__b", "a___b", "a._b", "-a", "a-", "1.2.3.4:5000",
             "[::1]:5000", "[::1]", "[]", "[::1]x", "host:", "host:x", "a.b-c.d", "a..b",
             "sha256:" + "a" * 64, "sha512:" + "f" * 128, "sha256:" + "a" * 63, "_x", "x" * 128,
             "x" * 129]
    for s in fixed:
        assert func(s) == bool(pattern.match(s)), s
