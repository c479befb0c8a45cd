"""A real registry for the image tests: Debian's docker-registry on 127.0.0.1
with its own config and storage under a temp dir (stopped by PID), a small
token server, and helpers to push with skopeo and to run the minirun CLI."""
import base64
import http.server
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request

ENV = dict(os.environ, PATH=f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}")


def _port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Registry:
    def __init__(self, base, auth_yaml=""):
        self.port = _port()
        self.addr = f"127.0.0.1:{self.port}"
        self.data = os.path.join(base, "data")
        os.makedirs(self.data)
        config = os.path.join(base, "config.yml")
        with open(config, "w") as f:
            f.write(f"""version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: {self.data}
  delete:
    enabled: true
http:
  addr: {self.addr}
{auth_yaml}""")
        self.log = open(os.path.join(base, "registry.log"), "w")
        self.proc = subprocess.Popen(["docker-registry", "serve", config], stdout=self.log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        for _ in range(100):
            try:
                urllib.request.urlopen(f"http://{self.addr}/v2/", timeout=1)
                return
            except urllib.error.HTTPError:
                return  # 401: up, and asking for auth
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("registry did not start")

    def stop(self):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()

    def blob_file(self, digest):
        hexpart = digest.split(":")[1]
        return os.path.join(self.data, "docker/registry/v2/blobs/sha256", hexpart[:2], hexpart,
                            "data")


def skopeo_push(layout, tag, dest, creds=None, extra=()):
    cmd = ["skopeo", "copy", "--quiet", "--dest-tls-verify=false", *extra]
    if creds:
        cmd += ["--dest-creds", creds]
    subprocess.run(cmd + [f"oci:{layout}:{tag}", f"docker://{dest}"], check=True,
                   capture_output=True)


def minirun(*args, store=None, check=True, env=None):
    e = dict(ENV, **(env or {}))
    if store:
        e["MINIRUN_STORE"] = store
    p = subprocess.run(["minirun", *args], capture_output=True, text=True, env=e)
    if check and p.returncode:
        raise AssertionError(f"minirun {' '.join(args)} failed: {p.stderr}")
    return p


# --- token auth ----------------------------------------------------------------------------

def _b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TokenServer:
    """Issues RS256 JWTs (signed with openssl) to alice:secret, for any scope."""

    def __init__(self, base):
        self.key, self.cert = os.path.join(base, "key.pem"), os.path.join(base, "cert.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                        self.key, "-out", self.cert, "-days", "2", "-subj", "/CN=token"],
                       check=True, capture_output=True)
        der = subprocess.run(["openssl", "x509", "-in", self.cert, "-outform", "DER"],
                             check=True, capture_output=True).stdout
        self.x5c = base64.b64encode(der).decode()
        self.requests = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                import urllib.parse

                q = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
                auth = self.headers.get("Authorization", "")
                outer.requests.append((q, auth))
                if auth != "Basic " + base64.b64encode(b"alice:secret").decode():
                    self.send_response(401)
                    self.end_headers()
                    return
                body = json.dumps({"token": outer.token(q.get("service", [""])[0],
                                                        q.get("scope", []))}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.realm = f"http://127.0.0.1:{self.server.server_address[1]}/token"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def token(self, service, scopes):
        access = []
        for scope in scopes:
            kind, name, actions = scope.split(":")
            access.append({"type": kind, "name": name, "actions": actions.split(",")})
        now = int(time.time())
        header = {"typ": "JWT", "alg": "RS256", "x5c": [self.x5c]}
        claims = {"iss": "test-issuer", "sub": "alice", "aud": service, "exp": now + 3600,
                  "nbf": now - 60, "iat": now - 60, "jti": os.urandom(8).hex(),
                  "access": access}
        signing_input = f"{_b64url(json.dumps(header).encode())}." \
                        f"{_b64url(json.dumps(claims).encode())}"
        sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", self.key],
                             input=signing_input.encode(), check=True,
                             capture_output=True).stdout
        return f"{signing_input}.{_b64url(sig)}"

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


