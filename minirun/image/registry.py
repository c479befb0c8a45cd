"""Pull images from registries speaking the distribution v2 API.

    GET /v2/<name>/manifests/<tag|digest>   (Accept: OCI + Docker schema2 types)
    GET /v2/<name>/blobs/<digest>           (config, then layers in parallel)

Auth follows the registry's 401 challenge: `Bearer realm=..,service=..,scope=..`
means "get a token from realm" (with Basic credentials if we have some, from
`minirun login` or ~/.docker/config.json); `Basic` means send them directly.
The bearer token is never forwarded to another host on a redirect (blob GETs
are often redirected to a CDN).

Every byte is verified: a manifest asked for by digest must hash to it, a
Docker-Content-Digest header must match the body, and each blob streams
through a hash into tmp/ and is renamed into the store only if digest and size
match.  A dropped connection resumes with a Range request (or restarts if the
server ignores it).  http is used only with --insecure or for registries on
localhost/127.0.0.0/8 (when the registry answers plain http there).

A pull from a plain-http registry imports neither `ssl` nor `json` nor
`threading` (the download threads are bare `_thread`s): each costs
milliseconds, and a whole pull of a small image from a local registry takes
tens of them.
"""
import _thread
import os
import sys
import time

from minirun import jsonio
from minirun.errors import MinirunError
from minirun.image import httpwire
from minirun.image.credentials import (load_credentials, remove_credentials,  # noqa: F401
                                        save_credentials)
from minirun.image import manifest as mf
from minirun.image import reference, transfer
from minirun.image.store import Store

USER_AGENT = "minirun/0.1"
_RETRIES = 5
_TIMEOUT = 60
_PARALLEL = 4
_BUF = 1 << 20
_SMALL_BLOB = 1 << 20


class RegistryError(MinirunError):
    pass


class TransientError(RegistryError):
    """A failure worth retrying: connection trouble, 429, 5xx."""


def parse_challenge(header):
    """'Bearer realm="x",service="y"' -> ('bearer', {'realm': 'x', 'service': 'y'})"""
    scheme, _, rest = header.strip().partition(" ")
    params, i = {}, 0
    while i < len(rest):
        while i < len(rest) and rest[i] in " ,":
            i += 1
        eq = rest.find("=", i)
        if eq < 0:
            break
        key = rest[i:eq].strip().lower()
        i = eq + 1
        if i < len(rest) and rest[i] == '"':
            j, value = i + 1, []
            while j < len(rest) and rest[j] != '"':
                if rest[j] == "\\" and j + 1 < len(rest):
                    j += 1
                value.append(rest[j])
                j += 1
            params[key] = "".join(value)
            i = j + 1
        else:
            j = rest.find(",", i)
            j = len(rest) if j < 0 else j
            params[key] = rest[i:j].strip()
            i = j
    return scheme.lower(), params


# --- HTTP ---------------------------------------------------------------------------------

class Response:
    def __init__(self, raw, conn_key):
        self.raw = raw
        self.status = raw.status
        self.headers = raw.headers
        self.conn_key = conn_key

    def read(self):
        return self.raw.read()


class Client:
    """One registry; thread-safe (a connection per thread and host)."""

    def __init__(self, domain, insecure=False, credentials=None):
        self.domain = domain
        self.host = reference.Reference(domain, "x").api_host
        self.insecure = insecure
        self.allow_http = insecure or reference.Reference(domain, "x").is_local
        self.credentials = credentials if credentials is not None else load_credentials(domain)
        self.scheme = None
        self._auth = {}        # scope -> Authorization header value
        self._auth_lock = _thread.allocate_lock()
        self._tls = _thread._local()
        self._ctx = None

    # connections
    def _connection(self, scheme, host):
        conns = getattr(self._tls, "conns", None)
        if conns is None:
            conns = self._tls.conns = {}
        key = (scheme, host)
        conn = conns.get(key)
        if conn is None:
            conn = httpwire.Connection(host, _TIMEOUT,
                                       self._ssl_context() if scheme == "https" else None)
            conns[key] = conn
        return conn

    def _ssl_context(self):
        with self._auth_lock:
            if self._ctx is None:
                import ssl

                ctx = ssl.create_default_context()
                if self.insecure:
                    ctx.check_hostname = False
                    ctx.verify_mode = ssl.CERT_NONE
                self._ctx = ctx
            return self._ctx

    def _drop(self, key):
        conns = getattr(self._tls, "conns", {})
        conn = conns.pop(key, None)
        if conn is not None:
            conn.close()

    def _raw(self, method, scheme, host, path, headers, body=None):
        """One request; retried once on a stale keep-alive connection.  A body
        is bytes or a file object with rewind() (push.py's blob slices)."""
        for attempt in (0, 1):
            conn = self._connection(scheme, host)
            if hasattr(body, "rewind"):
                body.rewind()
            try:
                conn.request(method, path, body=body, headers=headers)
                return Response(conn.getresponse(), (scheme, host))
            except (httpwire.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self._drop((scheme, host))
                if attempt:
                    raise
            except BaseException:
                self._drop((scheme, host))
                raise

    def _base(self):
        """Pick the scheme: https; for --insecure and local registries, plain
        http if the registry answers it (an https-only server answers 400)."""
        if self.scheme:
            return self.scheme
        if self.allow_http:
            try:
                resp = self._raw("GET", "http", self.host, "/v2/", {"User-Agent": USER_AGENT})
                resp.read()
                if resp.status in (200, 401):
                    self.scheme = "http"
                    return self.scheme
            except (ConnectionError, httpwire.HTTPException, TimeoutError):
                self._drop(("http", self.host))
            except OSError as e:
                raise RegistryError(f"cannot reach {self.host}: {e.strerror or e}") from None
        self.scheme = "https"
        return self.scheme

    def _first_over_http(self, method, path, headers, body):
        """The first request to a registry that may speak plain http, sent over
        http: when it answers 200 or 401 (what _base() asks of /v2/), that is
        the scheme, and the /v2/ round trip is saved.  Anything else: None,
        and _base() decides as always."""
        try:
            resp = self._raw(method, "http", self.host, path, headers, body)
        except (ConnectionError, httpwire.HTTPException, TimeoutError):
            self._drop(("http", self.host))
            return None
        except OSError as e:
            raise RegistryError(f"cannot reach {self.host}: {e.strerror or e}") from None
        if resp.status in (200, 401):
            self.scheme = "http"
            return resp
        try:
            resp.read()
        except (OSError, httpwire.HTTPException):
            self._drop(("http", self.host))
        return None

    def request(self, method, path, scope, headers=None, body=None, ok=()):
        """A request to the registry with auth and redirects; the caller reads
        the response body (success) - error statuses raise RegistryError,
        except those listed in `ok` (e.g. 404 for a blob existence check)."""
        hdrs = {"User-Agent": USER_AGENT, **(headers or {})}
        first = None
        if self.scheme is None and self.allow_http and scope not in self._auth:
            first = self._first_over_http(method, path, hdrs, body)
        scheme = self._base()
        host = self.host
        auth_tried = False
        for _ in range(8):
            same_host = host == self.host
            if same_host and scope in self._auth:
                hdrs["Authorization"] = self._auth[scope]
            else:
                hdrs.pop("Authorization", None)
            if first is not None:
                resp, first = first, None
            else:
                try:
                    resp = self._raw(method, scheme, host, path, hdrs, body)
                except (OSError, httpwire.HTTPException) as e:
                    raise TransientError(f"{method} {scheme}://{host}{path}: {e}") from None
            if resp.status in (301, 302, 303, 307, 308):
                import urllib.parse

                resp.read()
                url = urllib.parse.urlsplit(urllib.parse.urljoin(
                    f"{scheme}://{host}{path}", resp.headers.get("Location", "")))
                if url.scheme not in ("http", "https") or not url.netloc:
                    raise RegistryError(f"bad redirect from {host}{path}")
                if url.scheme == "http" and scheme == "https" and not self.allow_http:
                    raise RegistryError(f"refusing redirect from https to {url.geturl()}")
                scheme, host = url.scheme, url.netloc
                path = url.path + (f"?{url.query}" if url.query else "")
                continue
            if resp.status == 401 and same_host and not auth_tried:
                resp.read()
                auth_tried = True
                self._authenticate(resp.headers.get("WWW-Authenticate", ""), scope)
                continue
            if resp.status >= 400 and resp.status not in ok:
                text = resp.read()
                if resp.status >= 500 or resp.status == 429:
                    self._drop(resp.conn_key)
                    raise TransientError(self._error_message(resp.status, text, path))
                raise RegistryError(self._error_message(resp.status, text, path))
            return resp
        raise RegistryError(f"too many redirects for {path}")

    def _error_message(self, status, body, path):
        detail = ""
        try:
            errors = jsonio.loads(body).get("errors") or []
            detail = "; ".join(f"{e.get('code', '')}: {e.get('message', '')}".strip(": ")
                               for e in errors)
        except (ValueError, AttributeError):
            pass
        if status == 401:
            return f"unauthorized: authentication required for {self.domain} " \
                   f"({detail or 'run minirun login'})"
        if status == 404:
            return f"not found: {self.domain}{path} ({detail or 'manifest unknown'})"
        return f"registry {self.domain} answered {status} for {path}" + \
            (f": {detail}" if detail else "")

    def _authenticate(self, header, scope):
        scheme, params = parse_challenge(header)
        with self._auth_lock:
            if scheme == "basic":
                if not self.credentials:
                    raise RegistryError(f"unauthorized: {self.domain} requires a login "
                                        f"(minirun login {self.domain})")
                import base64

                raw = f"{self.credentials[0]}:{self.credentials[1]}".encode()
                self._auth[scope] = "Basic " + base64.b64encode(raw).decode()
                return
            if scheme != "bearer" or not params.get("realm"):
                raise RegistryError(f"unauthorized: {self.domain} sent no usable "
                                    f"WWW-Authenticate challenge ({header!r})")
            self._auth[scope] = "Bearer " + self._token(params, scope)

    def _token(self, params, scope):
        import base64
        import urllib.parse

        realm = urllib.parse.urlsplit(params["realm"])
        if realm.scheme not in ("http", "https") or not realm.netloc:
            raise RegistryError(f"bad token realm {params['realm']!r}")
        if realm.scheme == "http" and not self.allow_http:
            raise RegistryError(f"refusing plain-http token realm {params['realm']}")
        query = urllib.parse.parse_qsl(realm.query)
        if params.get("service"):
            query.append(("service", params["service"]))
        query.append(("scope", params.get("scope") or scope))
        path = (realm.path or "/") + "?" + urllib.parse.urlencode(query)
        headers = {"User-Agent": USER_AGENT}
        if self.credentials:
            raw = f"{self.credentials[0]}:{self.credentials[1]}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(raw).decode()
        try:
            resp = self._raw("GET", realm.scheme, realm.netloc, path, headers)
            body = resp.read()
        except (OSError, httpwire.HTTPException) as e:
            raise RegistryError(f"token server {realm.netloc}: {e}") from None
        if resp.status != 200:
            raise RegistryError(f"unauthorized: token server {realm.netloc} answered "
                                f"{resp.status}" + (" (check minirun login)" if resp.status
                                                    in (401, 403) else ""))
        try:
            doc = jsonio.loads(body)
            token = doc.get("token") or doc.get("access_token")
        except (ValueError, AttributeError):
            token = None
        if not token or not isinstance(token, str):
            raise RegistryError(f"token server {realm.netloc} sent no token")
        return token

    def ping(self):
        """GET /v2/ with auth: checks credentials (minirun login)."""
        self.request("GET", "/v2/", scope="registry:catalog:*").read()

    # distribution API
    def get_manifest(self, repo, ref):
        resp = self.request("GET", f"/v2/{repo}/manifests/{ref}", scope=f"repository:{repo}:pull",
                            headers={"Accept": mf.ACCEPT})
        data = resp.raw.read((4 << 20) + 1)
        resp.raw.read()
        if len(data) > 4 << 20:
            raise RegistryError(f"manifest {repo}:{ref} is larger than 4 MiB")
        return data, resp.headers.get("Content-Type"), resp.headers.get("Docker-Content-Digest")

    def fetch_blob(self, repo, desc, writer, progress=None, cancelled=None):
        """Stream a blob into a BlobWriter, resuming on dropped connections."""
        digest, size = desc["digest"], desc["size"]
        attempt = 0
        buf = bytearray(_BUF)
        view = memoryview(buf)
        while True:
            headers = {"Range": f"bytes={writer.size}-"} if writer.size else {}
            resp = None
            try:
                resp = self.request("GET", f"/v2/{repo}/blobs/{digest}",
                                    scope=f"repository:{repo}:pull", headers=headers)
                if writer.size and resp.status != 206:
                    if progress:
                        progress(-writer.size)
                    writer.truncate()  # the server ignored Range: start over
                while True:
                    if cancelled is not None and cancelled.is_set():
                        raise RegistryError("cancelled")
                    n = resp.raw.readinto(buf)
                    if not n:
                        break
                    if writer.size + n > size:
                        raise RegistryError(f"blob {digest}: more data than its size {size}")
                    writer.write(view[:n])
                    if progress:
                        progress(n)
                if writer.size < size:
                    raise httpwire.IncompleteRead(b"", size - writer.size)
                return
            except (OSError, httpwire.HTTPException, TransientError) as e:
                if resp is not None:
                    self._drop(resp.conn_key)
                attempt += 1
                if attempt > _RETRIES:
                    raise RegistryError(f"blob {digest}: download failed after {_RETRIES} "
                                        f"retries: {e}") from None
                time.sleep(min(0.1 * 2 ** attempt, 2))


# --- progress -----------------------------------------------------------------------------

# --- pull ---------------------------------------------------------------------------------

def _verify_manifest(data, digest_expected, header_digest, what):
    digest = mf.sha256_digest(data)
    if digest_expected:
        mf.verify_bytes(data, digest_expected, what)
        digest = digest_expected
    if header_digest and header_digest.startswith("sha256:") and header_digest != digest:
        raise RegistryError(f"{what}: Docker-Content-Digest {header_digest} does not match "
                            f"the content ({digest})")
    return digest


def pull(ref, store=None, insecure=False, platform=None, stream=sys.stderr, client=None):
    """Pull an image (reference string or Reference) into the store; returns
    the stored Image."""
    if isinstance(ref, str):
        ref = reference.parse(ref)
    store = (store or Store()).ensure()
    want = platform if isinstance(platform, dict) else mf.parse_platform(platform)
    client = client or Client(ref.domain, insecure=insecure)
    repo = ref.path
    with store.shared():
        data, ctype, header_digest = client.get_manifest(repo, ref.reference)
        digest = _verify_manifest(data, ref.digest, header_digest, f"manifest {ref}")
        doc = mf.load_json(data, "manifest")
        index_digest = None
        if mf.kind(doc, ctype) == "index":
            index_digest = digest
            store.put_bytes(data, digest, "index")
            chosen = mf.select_platform(mf.parse_index(data), want)
            data, ctype, header_digest = client.get_manifest(repo, chosen["digest"])
            digest = _verify_manifest(data, chosen["digest"], header_digest,
                                      f"manifest {chosen['digest']}")
            if len(data) != chosen["size"]:
                raise RegistryError(f"manifest {chosen['digest']}: {len(data)} bytes, the "
                                    f"index says {chosen['size']}")
            if mf.kind(mf.load_json(data, "manifest"), ctype) != "manifest":
                raise RegistryError(f"{ref}: nested image indexes are not supported")
        manifest = mf.parse_manifest(data)
        blobs = [("config", manifest["config"])] + [("layer", layer)
                                                    for layer in manifest["layers"]]
        missing = [(what, d) for what, d in blobs if not store.has_blob(d["digest"])]
        total = sum(d["size"] for _, d in missing)
        progress = transfer.Progress(f"Pulling {ref.familiar}", total, stream)
        parallel = len(missing) > 1
        cancelled = transfer.Cancelled() if parallel else None

        def fetch(item):
            what, desc = item
            with store.lock_for(desc["digest"]):
                if store.has_blob(desc["digest"]):  # a concurrent pull got it
                    progress.add(desc["size"])
                    return
                with store.blob_writer(desc["digest"], desc["size"], what) as writer:
                    try:
                        client.fetch_blob(repo, desc, writer, progress.add, cancelled)
                        writer.commit()
                        progress.blob_done(what, desc["digest"], desc["size"])
                    except BaseException:
                        if cancelled is not None:
                            cancelled.set()
                        raise

        if parallel:
            # Small blobs share one thread; each big one may have its own.  On
            # 2 CPUs with a local registry more threads were slower (the
            # registry needs the CPU too): debian-like, 4 threads 72-93 ms,
            # 2 threads 68-81 ms in three interleaved runs.
            big = sum(d["size"] > _SMALL_BLOB for _, d in missing)
            transfer.in_parallel(fetch, sorted(missing, key=lambda item: -item[1]["size"]),
                                 max(2, min(_PARALLEL, big + 1)), cancelled, _TIMEOUT)
        else:  # a single blob: over the connection the manifest came on
            for item in missing:
                fetch(item)
        progress.finish()
        store.put_bytes(data, digest, "manifest")
        image = mf.Image(store, digest, data)
        if len(image.layers) != len(image.diff_ids):
            raise RegistryError(f"{ref}: config lists {len(image.diff_ids)} diff_ids for "
                                f"{len(image.layers)} layers")
        store.tag(ref, digest, index_digest)
        image.names = [str(ref)]
    return image


def login(domain, username, password, insecure=False):
    """Check credentials against the registry, then save them."""
    client = Client(domain, insecure=insecure, credentials=(username, password))
    client.ping()
    save_credentials(domain, username, password)


def resolve_or_pull(name, store=None, insecure=False, platform=None, stream=sys.stderr):
    """The Image for `name` from the store, pulling it first if absent
    (what `minirun run IMAGE` does)."""
    store = store or Store()
    image = store.lookup(name)
    if image is not None:
        return image
    return pull(name, store=store, insecure=insecure, platform=platform, stream=stream)
