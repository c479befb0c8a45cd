"""`kube play` / `kube down` / `kube get`: the library calls the CLI makes.

play   checks every document and every reference (ConfigMaps, Secrets, images)
       before anything is made, records the objects, then reconciles: pods
       started, Deployments brought to `replicas`, Services' rules written;
       then makes sure the controller runs (controller.py: it replaces dead pods,
       runs liveness probes and follows pod addresses into the Service rules).
down   removes exactly what the file's objects made (pods, their containers
       and volume directories, Service rules); the last object gone, the
       controller leaves and the nftables table is deleted.
Both print kubectl's lines: "deployment.apps/web created", "service/web deleted".
"""
import base64
import hashlib
import json

from minirun.errors import MinirunError
from minirun.kube import adapter, pods, services
from minirun.kube.objects import load_file
from minirun.kube.state import State, key

RESOURCE = {"Pod": "pod", "Deployment": "deployment.apps", "Service": "service",
            "ConfigMap": "configmap", "Secret": "secret"}
ORDER = ("ConfigMap", "Secret", "Service", "Pod", "Deployment")


def _configs(data):
    """{"ConfigMap/ns/name": {key: bytes}} from the recorded objects."""
    out = {}
    for k, obj in data["objects"].items():
        if obj["kind"] in ("ConfigMap", "Secret"):
            out[k] = {name: base64.b64decode(v) for name, v in obj["data"].items()}
    return out


def _stored(obj):
    """An object as recorded (ConfigMap/Secret values as base64: JSON has no bytes)."""
    obj = dict(obj)
    if obj["kind"] in ("ConfigMap", "Secret"):
        obj["data"] = {k: base64.b64encode(v).decode() for k, v in obj["data"].items()}
    return obj


def template_hash(obj):
    text = json.dumps([obj["spec"], obj["template_labels"]], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def _check(fe, objects, data):
    """Everything that can be checked before anything is made."""
    configs = _configs(data)
    for obj in objects:
        if obj["kind"] in ("ConfigMap", "Secret"):
            configs[key(obj["kind"], obj["namespace"], obj["name"])] = obj["data"]
    images = set()
    for obj in objects:
        if "spec" in obj:
            what = f"{obj['kind']} {obj['name']}"
            pods.check_references(obj["spec"], obj["namespace"], configs, what)
            images.update(c["image"] for c in obj["spec"]["containers"])
    for ref in sorted(images):
        adapter.ensure_image(fe, ref)
    return configs


def play(fe, path, out=print):
    objects = load_file(path)
    st = State(fe)
    with st.locked() as data:
        _check(fe, objects, data)
        lines, created = [], []
        try:
            for obj in sorted(objects, key=lambda o: ORDER.index(o["kind"])):
                k = key(obj["kind"], obj["namespace"], obj["name"])
                old = data["objects"].get(k)
                stored = _stored(obj)
                verb = "created" if old is None else "unchanged" if old == stored else \
                    "configured"
                if verb == "created":
                    created.append(k)
                if obj["kind"] == "Service":
                    _record_service(fe, data, k, obj)
                if obj["kind"] == "Pod" and verb == "configured":
                    _remove_pod(fe, st, data, f"{obj['namespace']}/{obj['name']}")
                data["objects"][k] = stored
                lines.append(f"{RESOURCE[obj['kind']]}/{obj['name']} {verb}")
            reconcile(fe, st, data, strict=True)
        except BaseException:
            # A pod that could not start (a runtime failure: the input was checked):
            # what this play created goes again, so a retry starts from the same place.
            for k in created:
                _delete(fe, st, data, k)
            _sync_services(fe, data, force=True)
            raise
        for line in lines:
            out(line)
        need_controller = not st.empty(data)
    if need_controller:
        from minirun.kube import controller

        controller.ensure(fe)


def down(fe, path, out=print):
    """Delete the file's objects; returns kubectl's NotFound lines for those that
    were not there (the others are still deleted)."""
    objects = load_file(path)
    st = State(fe)
    missing = []
    with st.locked() as data:
        for obj in objects:   # file order, as `kubectl delete -f`
            k = key(obj["kind"], obj["namespace"], obj["name"])
            if not _delete(fe, st, data, k):
                plural = RESOURCE[obj["kind"]].replace(".", "s.", 1) if "." in \
                    RESOURCE[obj["kind"]] else RESOURCE[obj["kind"]] + "s"
                missing.append(f"Error from server (NotFound): {plural} \"{obj['name']}\" "
                               f"not found")
                continue
            out(f"{RESOURCE[obj['kind']]} \"{obj['name']}\" deleted")
        _sync_services(fe, data, force=True)
        empty = st.empty(data)
    if empty:
        from minirun.kube import controller

        controller.stop(fe)
    return missing


def get(fe):
    """(pods, services) rows for `kube get`."""
    data = State(fe).snapshot()
    pod_rows = []
    for pk, pod in sorted(data["pods"].items()):
        probed = {c["name"] for c in pod["spec"]["containers"] if c.get("readiness")}
        verdicts = pod.get("ready") or {}
        ready = sum(1 for name, cid in pod["containers"].items()
                    if adapter.state(fe, cid) == "running"
                    and (name not in probed or verdicts.get(name, False)))
        status = "Running" if pods.alive(fe, pod) else "Failed"
        pod_rows.append({"namespace": pod["namespace"], "name": pod["name"],
                         "ready": f"{ready}/{len(pod['spec']['containers'])}",
                         "status": status, "ip": pod["ip"] or "<none>"})
    svc_rows = []
    for sk, svc in sorted(data["services"].items()):
        ports = ",".join(f"{p['port']}" + (f":{p['nodePort']}" if p.get("nodePort") else "")
                         + f"/{p['protocol']}" for p in svc["ports"])
        svc_rows.append({"name": sk.split("/", 1)[1], "type": svc["type"],
                         "cluster_ip": svc["clusterIP"], "ports": ports,
                         "endpoints": ",".join(svc.get("endpoints") or []) or "<none>"})
    return pod_rows, svc_rows


# --- reconcile --------------------------------------------------------------------------------
def _record_service(fe, data, k, obj):
    sk = f"{obj['namespace']}/{obj['name']}"
    old = data["services"].get(sk)
    others = {s: v for s, v in data["services"].items() if s != sk}
    cluster_ip = obj["clusterIP"] or (old or {}).get("clusterIP")
    if not old or cluster_ip != old.get("clusterIP"):
        cluster_ip = services.allocate_ip(others, services.service_cidr(fe), cluster_ip,
                                          f"Service {obj['name']}")
    node_ports = {}
    ports = []
    for p in obj["ports"]:
        port = dict(p)
        if obj["type"] == "NodePort":
            pkey = f"{p['port']}/{p['protocol']}"
            wanted = p["nodePort"] or (old or {}).get("nodePorts", {}).get(pkey)
            port["nodePort"] = services.allocate_node_port(others, wanted, f"Service "
                                                                           f"{obj['name']}")
            node_ports[pkey] = port["nodePort"]
        ports.append(port)
    data["services"][sk] = {"type": obj["type"], "clusterIP": cluster_ip, "ports": ports,
                            "nodePorts": node_ports, "selector": obj["selector"],
                            "endpoints": (old or {}).get("endpoints", []), "object": k}


def _delete(fe, st, data, k):
    """Forget object `k` and remove what it made; False if it was not there."""
    obj = data["objects"].pop(k, None)
    if obj is None:
        return False
    own = f"{obj['namespace']}/{obj['name']}"
    for pk, pod in list(data["pods"].items()):
        if pod["owner"] == k or (obj["kind"] == "Pod" and pod["owner"] is None and pk == own):
            _remove_pod(fe, st, data, pk)
    if obj["kind"] == "Service":
        data["services"].pop(own, None)
    return True


def _remove_pod(fe, st, data, pk):
    pod = data["pods"].get(pk)
    if pod is not None:
        pods.remove(fe, st, pod)
        del data["pods"][pk]


def _start_pod(fe, st, data, pod, configs):
    pk = f"{pod['namespace']}/{pod['name']}"
    data["pods"][pk] = pod   # recorded first: a crash leaves nothing unexplained
    try:
        pods.start(fe, st, pod, configs)
    except BaseException:
        _remove_pod(fe, st, data, pk)
        raise


def reconcile(fe, st, data, strict=False):
    """Bring what runs in line with what is recorded (caller holds the lock).
    strict: raise the first failure (play); else report it and go on (controller).
    Returns the list of errors met."""
    configs = _configs(data)
    errors = []

    def attempt(fn, *args):
        try:
            fn(*args)
        except MinirunError as e:   # a pod that cannot start
            if strict:
                raise
            errors.append(str(e))

    # Dead pods: a Deployment's are replaced below; a bare pod is made again
    # (the kubelet re-creates a sandbox), unless restartPolicy Never.
    for pk, pod in list(data["pods"].items()):
        if pods.alive(fe, pod):
            continue
        if pod["owner"] is None and pod["spec"]["restartPolicy"] == "Never" and pod["infra"]:
            continue
        _remove_pod(fe, st, data, pk)
    for k, obj in sorted(data["objects"].items()):
        if obj["kind"] == "Pod" and f"{obj['namespace']}/{obj['name']}" not in data["pods"]:
            pod = pods.new_pod(obj["name"], obj["namespace"], obj["labels"], obj["spec"])
            attempt(_start_pod, fe, st, data, pod, configs)
        elif obj["kind"] == "Deployment":
            _scale(fe, st, data, k, obj, configs, attempt)
    _sync_services(fe, data, force=strict)
    return errors


def _scale(fe, st, data, k, obj, configs, attempt):
    h = template_hash(obj)
    mine = [(pk, p) for pk, p in data["pods"].items() if p["owner"] == k]
    for pk, pod in mine:
        if pod["template_hash"] != h:    # the template changed: replace (Recreate strategy)
            _remove_pod(fe, st, data, pk)
    mine = sorted((pk for pk, p in data["pods"].items() if p["owner"] == k), reverse=True)
    for pk in mine[obj["replicas"]:]:
        _remove_pod(fe, st, data, pk)
    for _ in range(obj["replicas"] - len(mine)):
        while True:
            name = pods.generated_name(f"{obj['name']}-{h}-")
            if f"{obj['namespace']}/{name}" not in data["pods"]:
                break
        labels = dict(obj["template_labels"], **{"pod-template-hash": h})
        pod = pods.new_pod(name, obj["namespace"], labels, obj["spec"], owner=k,
                           template_hash=h)
        attempt(_start_pod, fe, st, data, pod, configs)


def _target_port(svc_port, pod):
    target = svc_port["targetPort"]
    if isinstance(target, int):
        return target
    for c in pod["spec"]["containers"]:
        for p in c["ports"]:
            if p["name"] == target:
                return p["containerPort"]
    return None


def _sync_services(fe, data, force=False):
    """Endpoints = running and ready pods whose labels match the selector; the rules are
    rewritten when an endpoint changed (the controller, every second) or when
    asked (play and down, whose Services may have changed)."""
    changed = force
    rules = {}
    for sk, svc in data["services"].items():
        ns = sk.split("/", 1)[0]
        members = [p for p in data["pods"].values()
                   if p["namespace"] == ns and p.get("ip") and svc["selector"]
                   and all(p["labels"].get(a) == b for a, b in svc["selector"].items())
                   and pods.ready(p) and pods.alive(fe, p)]
        endpoints = sorted(p["ip"] for p in members)
        if endpoints != svc.get("endpoints"):
            svc["endpoints"] = endpoints
            changed = True
        ports = []
        for port in svc["ports"]:
            resolved = [t for t in (_target_port(port, p) for p in members) if t]
            ports.append(dict(port, targetPort=resolved[0] if resolved else 1))
        rules[sk] = dict(svc, ports=ports)
    if changed:
        services.sync(fe, rules)
    if not data["pods"]:
        adapter.remove_network(fe)
