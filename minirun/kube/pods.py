"""A Pod on this machine: one infra container holding the network namespace (and
the published hostPorts), the pod's containers joining it with
`--network container:<infra>`, and the pod's volumes as host directories.

    infra      k8s_POD_<pod>_<ns>: the first container's image running catatonit's
               pause mode (or `sleep`) under the static init, as Kubernetes'
               pause container; restart policy "no": when it dies the pod is dead
               and the controller replaces it (a new network namespace means a new pod)
    containers k8s_<name>_<pod>_<ns>, restart policy from restartPolicy (the
               front end's monitor restarts them, with Docker's back-off)
    volumes    <state dir>/pods/<ns>_<pod>/volumes/<name>: emptyDir (a directory
               shared by the pod's containers), configMap/secret (one file per
               key, written before the containers start); hostPath binds the host's
"""
import os
import re
import secrets

from minirun.kube import adapter, services
from minirun.kube.objects import KubeError

_NAME_CHARS = "bcdfghjklmnpqrstvwxz2456789"  # Kubernetes' random suffix alphabet


def generated_name(prefix):
    return prefix + "".join(secrets.choice(_NAME_CHARS) for _ in range(5))


def container_name(pod, container):
    # dockershim's names: k8s_<container>_<pod>_<namespace>
    return f"k8s_{container}_{pod['name']}_{pod['namespace']}"


def new_pod(name, namespace, labels, spec, owner=None, template_hash=None):
    """The state record of a pod, before anything is made."""
    return {"name": name, "namespace": namespace, "labels": dict(labels), "spec": spec,
            "owner": owner, "template_hash": template_hash, "infra": None, "containers": {},
            "ip": None}


# --- references to ConfigMaps and Secrets ----------------------------------------------------
def _config(configs, kind, namespace, name, optional, what):
    data = configs.get(f"{kind}/{namespace}/{name}")
    if data is None and not optional:
        raise KubeError(f"{what}: {kind.lower()} \"{name}\" not found")
    return data


def check_references(spec, namespace, configs, what):
    """Every ConfigMap/Secret the pod needs exists (before anything is made)."""
    resolve_env(spec, namespace, configs, what, check_only=True)
    for name, vol in spec["volumes"].items():
        if vol["type"] in ("configMap", "secret"):
            kind = "ConfigMap" if vol["type"] == "configMap" else "Secret"
            data = _config(configs, kind, namespace, vol["ref"], vol["optional"], what)
            for item in vol["items"]:
                if data is not None and item["key"] not in data:
                    raise KubeError(f"{what}: volume {name}: key {item['key']!r} not found in "
                                    f"{kind.lower()} {vol['ref']!r}")
        if vol["type"] == "hostPath" and vol["hostType"] in ("Directory", "File"):
            test = os.path.isdir if vol["hostType"] == "Directory" else os.path.isfile
            if not test(vol["path"]):
                raise KubeError(f"{what}: volume {name}: hostPath type check failed: "
                                f"{vol['path']} is not a {vol['hostType'].lower()}")


def resolve_env(spec, namespace, configs, what, check_only=False):
    """{container name: ["K=V", ...]}: envFrom first, then env (later wins), with
    Kubernetes' $(VAR) references to variables defined before."""
    out = {}
    for c in spec["containers"]:
        values = {}
        for src in c["envFrom"]:
            data = _config(configs, src["kind"], namespace, src["name"], src["optional"], what)
            for k, v in (data or {}).items():
                name = src["prefix"] + k
                if re.match(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$", name):
                    values[name] = v.decode(errors="replace")
        for e in c["env"]:
            if "ref" in e:
                ref = e["ref"]
                data = _config(configs, ref["kind"], namespace, ref["name"], ref["optional"],
                               f"{what}: env {e['name']}")
                if data is not None and ref["key"] not in data:
                    if ref["optional"]:
                        continue
                    raise KubeError(f"{what}: env {e['name']}: key {ref['key']!r} not found in "
                                    f"{ref['kind'].lower()} {ref['name']!r}")
                if data is not None:
                    values[e["name"]] = data[ref["key"]].decode(errors="replace")
            else:
                values[e["name"]] = expand(e["value"], values)
        out[c["name"]] = [f"{k}={v}" for k, v in values.items()]
    return None if check_only else out


def expand(text, values):
    """$(NAME) -> its value if defined, $$(NAME) -> $(NAME) (Kubernetes' rules)."""
    def sub(m):
        if m.group(0).startswith("$$"):
            return m.group(0)[1:]
        return values.get(m.group(1), m.group(0))

    return re.sub(r"\$?\$\(([-._a-zA-Z][-._a-zA-Z0-9]*)\)", sub, text)


# --- volumes --------------------------------------------------------------------------------
def _prepare_volumes(pod, configs, base):
    """{volume name: host path}, made now (under the pod's directory)."""
    out = {}
    for name, vol in pod["spec"]["volumes"].items():
        if vol["type"] == "hostPath":
            path = vol["path"]
            if vol["hostType"] == "DirectoryOrCreate" or (not vol["hostType"] and
                                                          not os.path.exists(path)):
                os.makedirs(path, 0o755, exist_ok=True)
            elif vol["hostType"] == "FileOrCreate" and not os.path.exists(path):
                os.makedirs(os.path.dirname(path), 0o755, exist_ok=True)
                open(path, "a").close()
            out[name] = path
            continue
        path = os.path.join(base, "volumes", name)
        os.makedirs(path, 0o755)
        if vol["type"] in ("configMap", "secret"):
            kind = "ConfigMap" if vol["type"] == "configMap" else "Secret"
            data = configs.get(f"{kind}/{pod['namespace']}/{vol['ref']}") or {}
            items = vol["items"] or [{"key": k, "path": k} for k in sorted(data)]
            for item in items:
                dest = os.path.join(path, item["path"])
                os.makedirs(os.path.dirname(dest), 0o755, exist_ok=True)
                fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW,
                             vol["defaultMode"])
                with os.fdopen(fd, "wb") as f:
                    f.write(data.get(item["key"], b""))
                os.chmod(dest, vol["defaultMode"])
        out[name] = path
    return out


def _mounts(container, volumes, spec):
    out = []
    for m in container["volumeMounts"]:
        src = volumes[m["name"]]
        if m["subPath"]:
            src = os.path.join(src, m["subPath"])
            if spec["volumes"][m["name"]]["type"] == "emptyDir":
                os.makedirs(src, 0o755, exist_ok=True)
        read_only = m["readOnly"] or spec["volumes"][m["name"]]["type"] in ("configMap", "secret")
        out.append((src, m["mountPath"], read_only))
    return out


# --- the pod ---------------------------------------------------------------------------------
def start(fe, st, pod, configs):
    """Make and start the pod recorded in `pod` (a state record, updated in place as
    containers appear).  On failure the caller removes what the record names."""
    spec = pod["spec"]
    what = f"pod {pod['name']}"
    env = resolve_env(spec, pod["namespace"], configs, what)
    base = st.pod_dir(pod["namespace"], pod["name"])
    os.makedirs(base, 0o700, exist_ok=True)
    volumes = _prepare_volumes(pod, configs, base)
    labels = {"io.kubernetes.pod.name": pod["name"],
              "io.kubernetes.pod.namespace": pod["namespace"]}
    first = spec["containers"][0]
    ports = [p for c in spec["containers"] for p in c["ports"]]
    infra = {"image": first["image"], "command": adapter.infra_command(), "ports": ports}
    adapter.ensure_network(fe)
    pod["infra"] = adapter.create_and_start(fe, adapter.run_options(
        infra, name=container_name(pod, "POD"), env=[],
        labels=dict(labels, **{"io.kubernetes.container.name": "POD"}), mounts=[],
        hostname=spec["hostname"] or pod["name"], restart="Never",
        # kubelet's resolv.conf for ClusterFirst: the Services' names (services.py)
        dns_search=services.search_domains(pod["namespace"]), dns_options=["ndots:5"]))
    pod["ip"] = adapter.address(fe, pod["infra"])
    for c in spec["containers"]:
        # $(VAR) in command and args: the container's own variables (Kubernetes' rule)
        values = dict(item.split("=", 1) for item in env[c["name"]])
        c = dict(c, command=[expand(a, values) for a in c["command"]],
                 args=[expand(a, values) for a in c["args"]])
        cid = adapter.create_and_start(fe, adapter.run_options(
            c, name=container_name(pod, c["name"]),
            # Kubernetes' HOSTNAME is the pod's name in every container
            env=[f"HOSTNAME={spec['hostname'] or pod['name']}", *env[c["name"]]],
            labels=dict(labels, **{"io.kubernetes.container.name": c["name"]}),
            mounts=_mounts(c, volumes, spec), network="container:" + pod["infra"],
            restart=spec["restartPolicy"], grace=spec.get("terminationGracePeriodSeconds", 30)))
        pod["containers"][c["name"]] = cid


def remove(fe, st, pod):
    """Remove the pod's containers (the infra last: the others use its netns) and
    its volume directories.  Idempotent."""
    for cid in list(pod["containers"].values()):
        adapter.remove(fe, cid)
    if pod.get("infra"):
        adapter.remove(fe, pod["infra"])
    import shutil

    shutil.rmtree(st.pod_dir(pod["namespace"], pod["name"]), ignore_errors=True)


def ready(pod):
    """Every container with a readiness probe passed it (the controller records the
    verdicts in pod["ready"]; none yet: not ready, as a new pod in a cluster)."""
    verdicts = pod.get("ready") or {}
    return all(verdicts.get(c["name"], False) for c in pod["spec"]["containers"]
               if c.get("readiness"))


def alive(fe, pod):
    """A pod lives while its infra container runs (it holds the netns) and every
    container of it exists (running, or exited and left to its restart policy).
    A container removed by hand (`minirun rm -f`) takes its pod with it: the
    controller makes the pod again, as a kubelet would make the container."""
    if not pod.get("infra") or adapter.state(fe, pod["infra"]) != "running":
        return False
    return all(adapter.state(fe, cid) is not None for cid in pod["containers"].values())
