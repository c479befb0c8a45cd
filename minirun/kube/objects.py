"""Kubernetes YAML -> checked, normalised objects (pure: no side effects).

Only the part of the API that `kube play` runs is accepted: Pod, Deployment,
Service (ClusterIP, NodePort), ConfigMap, Secret.  Every document is checked
before anything is made, and an error names the object and the field, as
kubectl's validation does ("Deployment web: spec.replicas: must be >= 0").
Fields that only matter to a real cluster (imagePullPolicy, requests,
strategy, ...) are accepted and ignored.
"""
import base64
import re

from minirun.errors import MinirunError

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
CONFIG_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
KINDS = ("Pod", "Deployment", "Service", "ConfigMap", "Secret")
API_VERSIONS = {"Pod": ("v1",), "Service": ("v1",), "ConfigMap": ("v1",), "Secret": ("v1",),
                "Deployment": ("apps/v1",)}
NODE_PORT_RANGE = (30000, 32767)
RESTART_POLICIES = ("Always", "OnFailure", "Never")


class KubeError(MinirunError):
    """A Kubernetes YAML that cannot be played (exit status 1, like kubectl)."""


class _Where:
    """Error messages that name the object and the path of the bad field."""

    def __init__(self, obj):
        self.obj = obj

    def fail(self, path, message):
        raise KubeError(f"{self.obj}: {path}: {message}")

    def mapping(self, value, path, required=False):
        if value is None:
            if required:
                self.fail(path, "Required value")
            return {}
        if not isinstance(value, dict):
            self.fail(path, f"must be a mapping, not {type(value).__name__}")
        return value

    def sequence(self, value, path, required=False):
        if value is None:
            if required:
                self.fail(path, "Required value")
            return []
        if not isinstance(value, list):
            self.fail(path, f"must be a list, not {type(value).__name__}")
        return value

    def string(self, value, path, required=False):
        if value is None or value == "":
            if required:
                self.fail(path, "Required value")
            return None
        if not isinstance(value, str):
            self.fail(path, f"must be a string, not {type(value).__name__}")
        return value

    def strings(self, value, path):
        items = self.sequence(value, path)
        for i, item in enumerate(items):
            if not isinstance(item, (str, int, float)) or isinstance(item, bool):
                self.fail(f"{path}[{i}]", "must be a string")
        return [str(x) for x in items]

    def integer(self, value, path, default=None, low=None, high=None):
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(path, f"must be an integer, not {value!r}")
        if low is not None and value < low:
            self.fail(path, f"must be greater than or equal to {low}")
        if high is not None and value > high:
            self.fail(path, f"must be less than or equal to {high}")
        return value

    def name(self, value, path, pattern=DNS1123_LABEL, limit=63):
        value = self.string(value, path, required=True)
        if len(value) > limit or not pattern.match(value):
            self.fail(path, f"Invalid value: {value!r}: a lowercase RFC 1123 name must consist "
                            f"of lower case alphanumeric characters or '-', and must start and "
                            f"end with an alphanumeric character")
        return value

    def labels(self, value, path):
        out = {}
        for k, v in self.mapping(value, path).items():
            if not isinstance(k, str) or not isinstance(v, (str, int, float)) or \
                    isinstance(v, bool):
                self.fail(f"{path}.{k}", "label keys and values must be strings")
            out[k] = str(v)
        return out


# --- quantities ----------------------------------------------------------------------------
_QUANTITY = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei|e[0-9]+)?$")
_SUFFIX = {None: 1, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18,
           "Ki": 2 ** 10, "Mi": 2 ** 20, "Gi": 2 ** 30, "Ti": 2 ** 40, "Pi": 2 ** 50,
           "Ei": 2 ** 60}


def quantity(value, where, path):
    """A Kubernetes resource.Quantity ('500m', '128Mi', '1.5', 2) as a float."""
    m = _QUANTITY.match(str(value).strip())
    if isinstance(value, bool) or not m:
        where.fail(path, f"Invalid value: {value!r}: quantities must match the regular "
                         f"expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")
    suffix = m.group(2)
    scale = 10 ** int(suffix[1:]) if suffix and suffix.startswith("e") else _SUFFIX[suffix]
    return float(m.group(1)) * scale


# --- documents -----------------------------------------------------------------------------
def load_file(path):
    """Every object of a multi-document YAML file ("-": standard input), checked:
    a list of dicts."""
    if path == "-":
        import sys

        return load_text(sys.stdin.buffer.read(), "<stdin>")
    try:
        with open(path, "rb") as f:
            text = f.read()
    except OSError as e:
        raise KubeError(f"the path {path!r} does not exist" if e.errno == 2 else
                        f"{path}: {e.strerror}") from None
    return load_text(text, path)


def load_text(text, source="<input>"):
    import yaml

    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as e:
        raise KubeError(f"error parsing {source}: {str(e).splitlines()[0]} "
                        f"{_yaml_where(e)}".rstrip()) from None
    objects = []
    for doc in docs:
        if isinstance(doc, dict) and doc.get("kind") == "List":
            docs.extend(doc.get("items") or [])
            continue
        objects.append(check(doc))
    if not objects:
        raise KubeError(f"{source}: no objects passed to play")
    seen = set()
    for obj in objects:
        key = (obj["kind"], obj["namespace"], obj["name"])
        if key in seen:
            raise KubeError(f"{obj['kind']} {obj['name']}: defined twice in {source}")
        seen.add(key)
    return objects


def _yaml_where(e):
    mark = getattr(e, "problem_mark", None)
    return f"(line {mark.line + 1}, column {mark.column + 1})" if mark else ""


def check(doc):
    """One YAML document -> a normalised object {kind, name, namespace, labels, ...}."""
    from minirun.kube import podspec

    if not isinstance(doc, dict):
        raise KubeError(f"a document is a {type(doc).__name__}, not a Kubernetes object")
    kind = doc.get("kind")
    if not kind:
        raise KubeError("Object 'Kind' is missing in a document")
    if kind not in KINDS:
        raise KubeError(f"kind {kind!r} is not supported by kube play (supported: "
                        f"{', '.join(KINDS)})")
    version = doc.get("apiVersion")
    if version not in API_VERSIONS[kind]:
        raise KubeError(f"{kind}: apiVersion {version!r}: no matches for kind \"{kind}\" in "
                        f"version \"{version}\" (use {API_VERSIONS[kind][0]})")
    meta = doc.get("metadata")
    where = _Where(kind)
    meta = where.mapping(meta, "metadata", required=True)
    name = where.name(meta.get("name"), "metadata.name", DNS1123_SUBDOMAIN, 253)
    where = _Where(f"{kind} {name}")
    obj = {"kind": kind, "name": name,
           "namespace": where.name(meta.get("namespace") or "default", "metadata.namespace"),
           "labels": where.labels(meta.get("labels"), "metadata.labels")}
    if kind in ("Pod", "Deployment", "Service") and len(name) > 63:
        where.fail("metadata.name", "must be no more than 63 characters")
    if kind == "Pod":
        obj["spec"] = podspec.pod_spec(where, doc.get("spec"), "spec")
    elif kind == "Deployment":
        obj.update(_deployment(where, where.mapping(doc.get("spec"), "spec", required=True)))
    elif kind == "Service":
        obj.update(_service(where, where.mapping(doc.get("spec"), "spec", required=True)))
    else:
        obj["data"] = _config_data(where, doc, kind)
    return obj


def _config_data(where, doc, kind):
    """ConfigMap data/binaryData and Secret data (base64)/stringData -> {key: bytes}."""
    out = {}
    fields = ("data", "binaryData") if kind == "ConfigMap" else ("data", "stringData")
    for field in fields:
        for key, value in where.mapping(doc.get(field), field).items():
            if not isinstance(key, str) or not CONFIG_KEY.match(key) or len(key) > 253:
                where.fail(f"{field}[{key!r}]", "a valid config key must consist of "
                                                "alphanumeric characters, '-', '_' or '.'")
            if not isinstance(value, str):
                where.fail(f"{field}[{key}]", "must be a string")
            if (kind, field) in (("ConfigMap", "binaryData"), ("Secret", "data")):
                try:
                    out[key] = base64.b64decode(value, validate=True)
                except ValueError:
                    where.fail(f"{field}[{key}]", "illegal base64 data")
            else:
                out[key] = value.encode()
    return out


def _deployment(where, spec):
    replicas = where.integer(spec.get("replicas"), "spec.replicas", default=1, low=0)
    selector = where.mapping(spec.get("selector"), "spec.selector", required=True)
    match = where.labels(selector.get("matchLabels"), "spec.selector.matchLabels")
    if selector.get("matchExpressions"):
        where.fail("spec.selector.matchExpressions", "not supported by kube play "
                                                     "(use matchLabels)")
    if not match:
        where.fail("spec.selector", "Invalid value: empty selector is invalid for deployment")
    template = where.mapping(spec.get("template"), "spec.template", required=True)
    tmeta = where.mapping(template.get("metadata"), "spec.template.metadata")
    labels = where.labels(tmeta.get("labels"), "spec.template.metadata.labels")
    if any(labels.get(k) != v for k, v in match.items()):
        where.fail("spec.template.metadata.labels", "Invalid value: `selector` does not match "
                                                    "template `labels`")
    from minirun.kube import podspec

    pod = podspec.pod_spec(where, template.get("spec"), "spec.template.spec")
    if pod["restartPolicy"] != "Always":
        where.fail("spec.template.spec.restartPolicy", "Unsupported value: "
                                                       f"{pod['restartPolicy']!r}: supported "
                                                       "values: \"Always\"")
    return {"replicas": replicas, "selector": match, "template_labels": labels, "spec": pod}


def _service(where, spec):
    kind = spec.get("type") or "ClusterIP"
    if kind not in ("ClusterIP", "NodePort"):
        where.fail("spec.type", f"Unsupported value: {kind!r}: supported values: "
                                f"\"ClusterIP\", \"NodePort\"")
    selector = where.labels(spec.get("selector"), "spec.selector")
    cluster_ip = where.string(spec.get("clusterIP"), "spec.clusterIP")
    if cluster_ip == "None":
        where.fail("spec.clusterIP", "headless services are not supported by kube play")
    ports = []
    raw = where.sequence(spec.get("ports"), "spec.ports", required=True)
    if not raw:
        where.fail("spec.ports", "Required value")
    for i, p in enumerate(raw):
        path = f"spec.ports[{i}]"
        p = where.mapping(p, path, required=True)
        port = where.integer(p.get("port"), f"{path}.port", low=1, high=65535)
        if port is None:
            where.fail(f"{path}.port", "Required value")
        target = p.get("targetPort", port)
        if isinstance(target, str) and target.isdigit():
            target = int(target)
        if isinstance(target, int) and not isinstance(target, bool):
            where.integer(target, f"{path}.targetPort", low=1, high=65535)
        elif not isinstance(target, str) or not DNS1123_LABEL.match(target):
            where.fail(f"{path}.targetPort", f"Invalid value: {target!r}")
        node_port = where.integer(p.get("nodePort"), f"{path}.nodePort",
                                  low=NODE_PORT_RANGE[0], high=NODE_PORT_RANGE[1])
        if node_port and kind != "NodePort":
            where.fail(f"{path}.nodePort", "Forbidden: may not be used when `type` is "
                                           "'ClusterIP'")
        proto = _protocol(where, p.get("protocol"), f"{path}.protocol")
        if len(raw) > 1 and not p.get("name"):
            where.fail(f"{path}.name", "Required value (several ports need names)")
        ports.append({"name": p.get("name") or "", "port": port, "targetPort": target,
                      "nodePort": node_port, "protocol": proto})
    return {"type": kind, "selector": selector, "clusterIP": cluster_ip, "ports": ports}


def _protocol(where, value, path):
    proto = value or "TCP"
    if proto not in ("TCP", "UDP"):
        where.fail(path, f"Unsupported value: {proto!r}: supported values: \"TCP\", \"UDP\"")
    return proto
