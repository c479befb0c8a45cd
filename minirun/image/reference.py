"""Image references as Docker spells them: `[host[:port]/]path[:tag][@digest]`.

A bare name means Docker Hub's official images (`busybox` is
`docker.io/library/busybox:latest`).  The first component is a registry host
only if it looks like one (has a `.` or `:`, or is `localhost`); otherwise
`foo/bar` is a Docker Hub user repository.  Every part is validated against
the distribution spec's grammar before it is used in a URL or a file name.

The grammar is checked by small functions instead of regular expressions:
`minirun pull` parses a reference first thing, and importing `re` (with
`enum`) costs about as much as the rest of its imports together.  Each
function says the expression it implements; tests/image/test_reference.py
checks them against those expressions.
"""
from minirun.errors import MinirunError

DEFAULT_DOMAIN = "docker.io"
DEFAULT_TAG = "latest"
# Docker Hub's API lives on another host than its name.
_API_HOSTS = {"docker.io": "registry-1.docker.io"}
_DOMAIN_ALIASES = {"index.docker.io": "docker.io", "registry-1.docker.io": "docker.io"}

_DIGITS = frozenset("0123456789")
_LOWER_HEX = frozenset("0123456789abcdef")
_LOWER_ALNUM = frozenset("abcdefghijklmnopqrstuvwxyz") | _DIGITS
_ALNUM = _LOWER_ALNUM | frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
_TAG_FIRST = _ALNUM | {"_"}
_TAG_CHARS = _TAG_FIRST | {".", "-"}
_LABEL_CHARS = _ALNUM | {"-"}
_IPV6_CHARS = _LOWER_HEX | frozenset("ABCDEF:")
_DIGEST_LENGTHS = {"sha256": 64, "sha512": 128}


def _is_component(s):
    """[a-z0-9]+(?:(?:\\.|_|__|-+)[a-z0-9]+)*  (a path component)"""
    if not s or s[0] not in _LOWER_ALNUM or s[-1] not in _LOWER_ALNUM:
        return False
    separator = ""
    for c in s:
        if c in _LOWER_ALNUM:
            if separator and separator not in (".", "_", "__") and separator.strip("-"):
                return False
            separator = ""
        elif c in "._-":
            separator += c
        else:
            return False
    return True


def _is_tag(s):
    """[A-Za-z0-9_][A-Za-z0-9._-]{0,127}"""
    return 0 < len(s) <= 128 and s[0] in _TAG_FIRST and all(c in _TAG_CHARS for c in s)


def _is_port(s):
    """(?::[0-9]+)?  (s is what follows the host)"""
    return not s or (s[0] == ":" and len(s) > 1 and all(c in _DIGITS for c in s[1:]))


def _is_domain(s):
    """label(?:\\.label)*(?::[0-9]+)?, label = [A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?,
    or \\[[0-9A-Fa-f:]+\\](?::[0-9]+)?"""
    if s.startswith("["):
        inside, close, rest = s[1:].partition("]")
        return bool(close and inside) and all(c in _IPV6_CHARS for c in inside) \
            and _is_port(rest)
    colon = s.find(":")
    host, rest = (s, "") if colon < 0 else (s[:colon], s[colon:])
    return _is_port(rest) and all(
        label and label[0] != "-" and label[-1] != "-" and all(c in _LABEL_CHARS for c in label)
        for label in host.split("."))


class InvalidReference(MinirunError):
    def __init__(self, ref, why):
        super().__init__(f"invalid reference format {ref!r}: {why}")


def valid_digest(digest):
    """(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})"""
    if not isinstance(digest, str):
        return False
    algo, colon, hexpart = digest.partition(":")
    return bool(colon) and len(hexpart) == _DIGEST_LENGTHS.get(algo) and \
        all(c in _LOWER_HEX for c in hexpart)


def check_digest(digest, what="digest"):
    if not valid_digest(digest):
        raise MinirunError(f"invalid {what}: {digest!r}")
    return digest


class Reference:
    """A parsed reference (immutable; build one with parse())."""

    __slots__ = ("domain", "path", "tag", "digest")

    def __init__(self, domain, path, tag=None, digest=None):
        object.__setattr__(self, "domain", domain)
        object.__setattr__(self, "path", path)
        object.__setattr__(self, "tag", tag)
        object.__setattr__(self, "digest", digest)

    def __setattr__(self, name, value):
        raise AttributeError("Reference is immutable")

    def _key(self):
        return (self.domain, self.path, self.tag, self.digest)

    def __eq__(self, other):
        return isinstance(other, Reference) and self._key() == other._key()

    def __hash__(self):
        return hash(self._key())

    def __repr__(self):
        return f"Reference({str(self)!r})"

    @property
    def name(self):
        """The fully qualified repository, e.g. docker.io/library/busybox."""
        return f"{self.domain}/{self.path}"

    @property
    def api_host(self):
        """host[:port] to send distribution API requests to."""
        return _API_HOSTS.get(self.domain, self.domain)

    @property
    def is_local(self):
        host = self.domain.rsplit(":", 1)[0] if not self.domain.startswith("[") \
            else self.domain[1:].split("]")[0]
        return host == "localhost" or host.startswith("127.") or host == "::1"

    @property
    def reference(self):
        """What goes after /manifests/: the digest if pinned, else the tag."""
        return self.digest or self.tag or DEFAULT_TAG

    def __str__(self):
        s = self.name
        if self.tag:
            s += f":{self.tag}"
        if self.digest:
            s += f"@{self.digest}"
        return s

    @property
    def familiar(self):
        """The short form `docker images` shows (busybox, user/app, host/x)."""
        if self.domain == DEFAULT_DOMAIN:
            return self.path.removeprefix("library/")
        return self.name

    @property
    def familiar_string(self):
        """busybox:latest, user/app@sha256:...: how Docker prints a name."""
        return self.familiar + (f":{self.tag}" if self.tag else "") + \
            (f"@{self.digest}" if self.digest else "")

    def with_tag(self, tag):
        return Reference(self.domain, self.path, tag, None)

    def with_digest(self, digest):
        return Reference(self.domain, self.path, None, digest)


def parse(ref, default_tag=True):
    """Parse and normalise a reference; adds `:latest` unless pinned by digest
    (or default_tag is False)."""
    if not isinstance(ref, str) or not ref:
        raise InvalidReference(str(ref), "empty")
    if ref != ref.strip() or any(c.isspace() for c in ref):
        raise InvalidReference(ref, "contains whitespace")
    rest, digest = ref, None
    if "@" in rest:
        rest, _, digest = rest.partition("@")
        if not valid_digest(digest):
            raise InvalidReference(ref, f"bad digest {digest!r}")
    tag = None
    # A ':' after the last '/' is a tag; before it, it is a port.
    slash = rest.rfind("/")
    colon = rest.rfind(":")
    if colon > slash:
        rest, tag = rest[:colon], rest[colon + 1:]
        if not _is_tag(tag):
            raise InvalidReference(ref, f"bad tag {tag!r}")
    first, sep, remainder = rest.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost" or first.startswith("[")):
        domain, path = first, remainder
        if not _is_domain(domain):
            raise InvalidReference(ref, f"bad registry host {domain!r}")
        domain = _DOMAIN_ALIASES.get(domain, domain)
    else:
        domain, path = DEFAULT_DOMAIN, rest
    if not path:
        raise InvalidReference(ref, "no repository name")
    if domain == DEFAULT_DOMAIN and "/" not in path:
        path = f"library/{path}"
    for component in path.split("/"):
        if not _is_component(component):
            if component.lower() != component and _is_component(component.lower()):
                raise InvalidReference(ref, "repository name must be lowercase")
            raise InvalidReference(ref, f"bad repository component {component!r}")
    if len(domain) + 1 + len(path) > 255:
        raise InvalidReference(ref, "repository name too long")
    if tag is None and digest is None and default_tag:
        tag = DEFAULT_TAG
    return Reference(domain, path, tag, digest)


def looks_like_digest_prefix(s):
    """True for image ids as users type them: a hex prefix, optionally sha256:."""
    s = s.removeprefix("sha256:")
    return 3 <= len(s) <= 64 and all(c in "0123456789abcdef" for c in s)
