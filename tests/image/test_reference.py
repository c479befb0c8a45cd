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
