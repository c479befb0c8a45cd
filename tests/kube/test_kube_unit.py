"""kube's pure logic: YAML checking with kubectl-like messages, quantities,
$(VAR) expansion, ClusterIP allocation and the Services' nftables rules."""
import pytest

from minirun.kube import objects, pods, services
from minirun.kube.objects import KubeError, load_text

pytestmark = pytest.mark.unprivileged

POD = """\
apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  containers:
  - name: c
    image: busybox
"""


def test_multi_document_file_with_defaults():
    objs = load_text(POD + "---\n# a comment-only document\n---\n" + """\
apiVersion: v1
kind: Service
metadata: {name: s, namespace: team}
spec:
  selector: {app: x}
  ports: [{port: 80}]
""")
    pod, svc = objs
    assert (pod["kind"], pod["namespace"], pod["spec"]["restartPolicy"]) == ("Pod", "default",
                                                                           "Always")
    c = pod["spec"]["containers"][0]
    assert (c["command"], c["args"], c["liveness"], c["limits"]) == (
        [], [], None, {"cpu": None, "memory": None})
    assert svc["type"] == "ClusterIP" and svc["namespace"] == "team"
    assert svc["ports"] == [{"name": "", "port": 80, "targetPort": 80, "nodePort": None,
                             "protocol": "TCP"}]


@pytest.mark.parametrize("text, message", [
    ("kind: Pod\napiVersion: v1\nmetadata: {name: Bad_Name}\nspec: {containers: []}",
     "Pod: metadata.name: Invalid value: 'Bad_Name'"),
    ("kind: Job\napiVersion: batch/v1\nmetadata: {name: j}", "kind 'Job' is not supported"),
    ("kind: Deployment\napiVersion: v1\nmetadata: {name: d}",
     "Deployment: apiVersion 'v1': no matches for kind \"Deployment\""),
    (POD.replace("image: busybox", "image: busybox\n    ports: [{containerPort: 99999}]"),
     "Pod p: spec.containers[0].ports[0].containerPort: must be less than or equal to 65535"),
    (POD.replace("image: busybox", "image: busybox\n    resources: {limits: {memory: lots}}"),
     "Pod p: spec.containers[0].resources.limits.memory: Invalid value: 'lots'"),
    (POD.replace("image: busybox", "image: busybox\n    volumeMounts: [{name: v, mountPath: /v}]"),
     "Pod p: spec.containers[0].volumeMounts[0].name: Not found: 'v'"),
    (POD + "  restartPolicy: Sometimes\n", "Pod p: spec.restartPolicy: Unsupported value"),
    ("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec:\n  replicas: 2\n"
     "  selector: {matchLabels: {app: a}}\n  template:\n    metadata: {labels: {app: b}}\n"
     "    spec: {containers: [{name: c, image: i}]}\n",
     "Deployment d: spec.template.metadata.labels: Invalid value: `selector` does not match"),
    ("apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec:\n  ports: [{port: 80, "
     "nodePort: 30001}]\n", "Service s: spec.ports[0].nodePort: Forbidden"),
    ("apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata: {k: '%%%'}\n",
     "Secret s: data[k]: illegal base64 data"),
    (POD + "---\n" + POD, "Pod p: defined twice"),
    ("a: [1, 2", "error parsing <input>"),
    ("", "no objects passed to play"),
])
def test_errors_name_the_object_and_the_field(text, message):
    with pytest.raises(KubeError) as e:
        load_text(text)
    assert message in str(e.value)


def test_quantities():
    where = objects._Where("x")
    assert objects.quantity("500m", where, "cpu") == 0.5
    assert objects.quantity(2, where, "cpu") == 2
    assert objects.quantity("128Mi", where, "m") == 128 << 20
    assert objects.quantity("1G", where, "m") == 10 ** 9
    assert objects.quantity("1e3", where, "m") == 1000


def test_env_expansion_follows_kubernetes():
    values = {"A": "1", "B": "two"}
    assert pods.expand("$(A)-$(B)-$(C)", values) == "1-two-$(C)"
    assert pods.expand("$$(A) stays", values) == "$(A) stays"


def test_env_from_configmap_and_secret_with_later_env_winning():
    (pod,) = load_text(POD.replace("image: busybox", """image: busybox
    envFrom: [{configMapRef: {name: cm}}, {secretRef: {name: s}, prefix: S_}]
    env:
    - {name: X, value: "$(K)!"}
    - {name: K, value: override}"""))
    configs = {"ConfigMap/default/cm": {"K": b"from-cm", "bad key": b"skipped"},
               "Secret/default/s": {"pw": b"pw"}}
    env = pods.resolve_env(pod["spec"], "default", configs, "pod p")
    assert env == {"c": ["K=override", "S_pw=pw", "X=from-cm!"]}
    with pytest.raises(KubeError, match='configmap "cm" not found'):
        pods.check_references(pod["spec"], "default", {}, "pod p")


def test_cluster_ips_are_unique_and_checked():
    taken = {"a": {"clusterIP": "10.96.0.10"}}
    assert services.allocate_ip(taken) == "10.96.0.11"
    assert services.allocate_ip({}, wanted="10.96.3.4") == "10.96.3.4"
    assert services.allocate_ip({}, "10.97.5.0/24") == "10.97.5.10"
    with pytest.raises(KubeError, match="already allocated"):
        services.allocate_ip(taken, wanted="10.96.0.10")
    with pytest.raises(KubeError, match="not in the valid range"):
        services.allocate_ip({}, wanted="192.0.2.1")


def test_ruleset_dnats_with_numgen_over_the_endpoints():
    svc = {"clusterIP": "10.96.0.10", "endpoints": ["10.88.0.3", "10.88.0.2"],
           "ports": [{"port": 80, "targetPort": 8080, "nodePort": 30080, "protocol": "TCP"}]}
    cmds = services.ruleset("t", {"default/web": svc, "default/empty": dict(svc, endpoints=[])})
    rules = [c["add"]["rule"] for c in cmds if "rule" in c.get("add", {})]
    svc_rules = [r for r in rules if r["chain"] == "services"]
    assert len(svc_rules) == 2   # ClusterIP and NodePort; the Service without endpoints: none
    dnat = svc_rules[0]["expr"][-1]["dnat"]
    assert dnat["port"] == 8080
    assert dnat["addr"]["map"]["key"] == {"numgen": {"mode": "random", "mod": 2, "offset": 0}}
    assert dnat["addr"]["map"]["data"]["set"] == [[0, "10.88.0.2"], [1, "10.88.0.3"]]
    assert svc_rules[1]["expr"][1]["match"]["right"] == 30080
    drops = [r for r in rules if r["chain"] in ("filter_out", "filter_fwd")]
    assert len(drops) == 2 and all(r["expr"][-1] == {"drop": None} for r in drops)
    one = services.ruleset("t", {"x": dict(svc, endpoints=["10.88.0.9"])})
    single = [c["add"]["rule"] for c in one if "rule" in c.get("add", {})
              and c["add"]["rule"]["chain"] == "services"][0]
    assert single["expr"][-1] == {"dnat": {"addr": "10.88.0.9", "port": 8080}}


def test_probes_readiness_and_tcp_socket():
    (pod,) = load_text(POD.replace("image: busybox", """image: busybox
    ports: [{name: web, containerPort: 8080}]
    readinessProbe: {tcpSocket: {port: web}, periodSeconds: 2, successThreshold: 2}
    livenessProbe: {tcpSocket: {port: 8080}}"""))
    c = pod["spec"]["containers"][0]
    assert c["readiness"] == {"tcpSocket": {"port": 8080}, "initialDelaySeconds": 0,
                              "periodSeconds": 2, "timeoutSeconds": 1, "failureThreshold": 3,
                              "successThreshold": 2}
    assert c["liveness"]["tcpSocket"] == {"port": 8080}
    # No verdict yet: not ready; a pod without readiness probes is always ready.
    record = pods.new_pod("p", "default", {}, pod["spec"])
    assert not pods.ready(record)
    record["ready"] = {"c": True}
    assert pods.ready(record)
    assert pods.ready(pods.new_pod("q", "default", {}, load_text(POD)[0]["spec"]))
    for probe, message in [
            ("livenessProbe: {tcpSocket: {port: 80}, successThreshold: 2}",
             "livenessProbe.successThreshold: Invalid value: 2: must be 1"),
            ("readinessProbe: {tcpSocket: {port: nope}}",
             "readinessProbe.tcpSocket.port: Invalid value: 'nope'"),
            ("readinessProbe: {grpc: {port: 80}}", "must have exec, httpGet or tcpSocket")]:
        with pytest.raises(KubeError, match=message):
            load_text(POD.replace("image: busybox", "image: busybox\n    " + probe))


def test_prober_readiness_verdicts(monkeypatch):
    """The controller's Prober: not ready until successThreshold successes, not
    ready after failureThreshold failures, verdicts written into the pod records."""
    from minirun.kube import adapter, controller

    (obj,) = load_text(POD.replace("image: busybox", """image: busybox
    readinessProbe: {tcpSocket: {port: 80}, periodSeconds: 1, successThreshold: 2,
                     failureThreshold: 2}"""))
    pod = pods.new_pod("p", "default", {}, obj["spec"])
    pod["containers"] = {"c": "cid1"}
    data = {"pods": {"default/p": pod}}

    class FakeFrontend:
        def load(self, cid):
            return {"State": {"StartedAt": "t0"}}

    monkeypatch.setattr(adapter, "state", lambda fe, cid: "running")
    answers = []
    prober = controller.Prober(FakeFrontend())
    monkeypatch.setattr(prober, "check", lambda cid, probe, pod: answers.pop(0))
    verdicts = []
    for t, answer in enumerate([True, True, False, True, False, False]):
        answers.append(answer)
        prober.run(data, float(t))
        prober.record(data)
        verdicts.append(pod["ready"]["c"])
    assert verdicts == [False, True, True, True, True, False]
