"""`minirun kube play/down` with real containers: pods sharing a network
namespace, a Deployment that replaces a killed pod, Services answering from
every pod (ClusterIP from the host and from a pod, NodePort from the host),
Service names through the pods' resolver, liveness and readiness probes, and
nothing left after `kube down`."""
import os
import signal

import pytest

from kube_helpers import free_port, http_get, wait_for

# The course's Deployment, as written (nginx:1.14.2 is a local busybox httpd image here).
COURSE_DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: nginx-deployment
  labels:
    app: nginx
spec:
  replicas: 3
  selector:
    matchLabels:
      app: nginx
  template:
    metadata:
      labels:
        app: nginx
    spec:
      containers:
      - name: nginx
        image: nginx:1.14.2
        ports:
        - containerPort: 80
"""


def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def _http(ip, port, path="/", timeout=2.0):
    import http.client

    conn = http.client.HTTPConnection(ip, port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.read().decode() if resp.status == 200 else None
    except OSError:
        return None
    finally:
        conn.close()


def _answers(get, expected, tries=60):
    """Ask `get()` until every expected answer was seen (numgen random picks a pod
    per connection); returns the set seen."""
    seen = set()
    for _ in range(tries):
        body = get()
        if body:
            seen.add(body.strip())
        if seen >= expected:
            break
    return seen


def test_pod_containers_share_localhost_volumes_config_and_host_port(kube, tmp_path):
    host_port = free_port()
    host_dir = tmp_path / "host-data"
    manifest = _write(tmp_path, "pod.yaml", f"""\
apiVersion: v1
kind: ConfigMap
metadata: {{name: settings}}
data:
  GREETING: hello from a configmap
  app.conf: "mode=learning\\n"
---
apiVersion: v1
kind: Secret
metadata: {{name: creds}}
type: Opaque
data:
  password: czNjcjN0         # s3cr3t
stringData:
  user: admin
---
apiVersion: v1
kind: Pod
metadata:
  name: duo
  labels: {{app: duo}}
spec:
  restartPolicy: Always
  volumes:
  - name: shared
    emptyDir: {{}}
  - name: config
    configMap: {{name: settings}}
  - name: secret
    secret: {{secretName: creds}}
  - name: host
    hostPath: {{path: {host_dir}, type: DirectoryOrCreate}}
  containers:
  - name: web
    image: busybox:latest
    command: ["sh", "-c"]
    args: ["echo $(GREETING) > /shared/index.html && exec httpd -f -p 8080 -h /shared"]
    env:
    - name: GREETING
      valueFrom: {{configMapKeyRef: {{name: settings, key: GREETING}}}}
    ports:
    - containerPort: 8080
      hostPort: {host_port}
    volumeMounts:
    - {{name: shared, mountPath: /shared}}
    resources:
      limits: {{memory: 64Mi, cpu: 250m}}
  - name: client
    image: busybox:latest
    command: ["sh", "-c", "echo up > /host/client-was-here; exec sleep 3600"]
    envFrom:
    - secretRef: {{name: creds}}
      prefix: DB_
    volumeMounts:
    - {{name: shared, mountPath: /from-web, readOnly: true}}
    - {{name: config, mountPath: /etc/app}}
    - {{name: secret, mountPath: /etc/creds}}
    - {{name: host, mountPath: /host}}
""")
    out = kube.play(manifest).stdout
    assert out.splitlines() == ["configmap/settings created", "secret/creds created",
                                "pod/duo created"]
    client = "k8s_client_duo_default"
    # The client reaches the web container on 127.0.0.1: one network namespace.
    body = wait_for(lambda: kube.exec(client, "wget", "-qO-", "http://127.0.0.1:8080/",
                                      check=False).stdout, what="web over localhost")
    assert body == "hello from a configmap\n"
    assert kube.exec(client, "cat", "/from-web/index.html").stdout == body   # emptyDir
    # One network and one IPC namespace (the infra container's), each its own pid namespace.
    for ns in ("net", "ipc"):
        links = {kube.exec(f"k8s_{c}_duo_default", "readlink", f"/proc/1/ns/{ns}").stdout
                 for c in ("POD", "web", "client")}
        assert len(links) == 1, links
    assert kube.exec(client, "readlink", "/proc/1/ns/pid").stdout != \
        kube.exec("k8s_web_duo_default", "readlink", "/proc/1/ns/pid").stdout
    assert kube.exec(client, "cat", "/etc/app/app.conf").stdout == "mode=learning\n"
    assert kube.exec(client, "cat", "/etc/creds/password").stdout == "s3cr3t"
    env = kube.exec(client, "env").stdout.splitlines()
    assert "DB_user=admin" in env and "DB_password=s3cr3t" in env and "HOSTNAME=duo" in env
    assert kube.exec(client, "touch", "/etc/app/x", check=False).returncode != 0  # read-only
    wait_for(lambda: (host_dir / "client-was-here").exists(), what="the hostPath write")
    # hostPort: published on the pod's infra container, reached from the host.
    assert wait_for(lambda: http_get(host_port), what="the hostPort") == body
    # resources.limits reach the cgroup (through the front end's --memory/--cpus).
    web = kube.inspect("k8s_web_duo_default")
    assert web["HostConfig"]["Memory"] == 64 << 20
    assert web["HostConfig"]["NanoCpus"] == 250_000_000 or web["HostConfig"]["CpuQuota"] == 25000
    # Played again unchanged: nothing is re-made.
    assert kube.play(manifest).stdout.splitlines()[-1] == "pod/duo unchanged"
    old_id = kube.inspect(client)["Id"]
    assert old_id == kube.pods()["duo"]["containers"]["client"]
    # A container removed by hand: the controller makes the pod again.
    kube("rm", "-f", client)
    wait_for(lambda: kube.pods().get("duo", {}).get("containers", {}).get("client")
             not in (None, old_id), timeout=30, what="the pod to be made again")
    assert wait_for(lambda: kube.exec(client, "cat", "/etc/creds/password",
                                      check=False).stdout, what="the new client") == "s3cr3t"

    assert kube.down(manifest).stdout.splitlines() == [
        'configmap "settings" deleted', 'secret "creds" deleted', 'pod "duo" deleted']
    assert (host_dir / "client-was-here").exists()   # hostPath is the host's: kept
    assert kube.kube_leftovers() == []


def test_course_deployment_with_services_replaces_a_killed_pod(kube, tmp_path):
    node_port = 30000 + free_port() % 2700
    manifest = _write(tmp_path, "deployment.yaml", COURSE_DEPLOYMENT + f"""\
---
apiVersion: v1
kind: Service
metadata:
  name: nginx-service
spec:
  selector:
    app: nginx
  ports:
  - port: 80
    targetPort: 80
---
apiVersion: v1
kind: Service
metadata:
  name: nginx-nodeport
spec:
  type: NodePort
  selector:
    app: nginx
  ports:
  - port: 8080
    targetPort: 80
    nodePort: {node_port}
""")
    out = kube.play(manifest).stdout.splitlines()
    assert out == ["service/nginx-service created", "service/nginx-nodeport created",
                   "deployment.apps/nginx-deployment created"]
    pods = kube.pods()
    assert len(pods) == 3 and all(n.startswith("nginx-deployment-") for n in pods)
    svc = kube.service("nginx-service")
    assert sorted(svc["endpoints"]) == sorted(p["ip"] for p in pods.values())
    cluster_ip = svc["clusterIP"]
    table = kube("kube", "get").stdout
    assert cluster_ip in table and f"8080:{node_port}/TCP" in table

    # ClusterIP from the host, NodePort from the host: every pod answers.
    names = set(pods)
    assert _answers(lambda: _http(cluster_ip, 80), names) == names
    assert _answers(lambda: http_get(node_port), names) == names
    # ClusterIP from inside a pod (it may land on itself: the hairpin case).
    some = "k8s_nginx_" + sorted(names)[0] + "_default"
    script = f"for i in $(seq 40); do wget -qO- http://{cluster_ip}/; done"
    got = set(kube.exec(some, "sh", "-c", script, check=False).stdout.split())
    assert got == names
    # Cluster DNS: the Service by name, through the pod's resolver (127.0.0.11),
    # kubelet's search list and ndots:5.
    resolv = kube.exec(some, "cat", "/etc/resolv.conf").stdout
    assert resolv == ("nameserver 127.0.0.11\nsearch default.svc.cluster.local "
                      "svc.cluster.local cluster.local\noptions ndots:5\n")
    for name in ("nginx-service", "nginx-service.default.svc.cluster.local"):
        # busybox's nslookup tries the search list only for a name without a dot,
        # and prints each domain's NXDOMAIN (exit 1), as against a cluster's DNS
        res = kube.exec(some, "nslookup", name, check=False)
        assert f"Address: {cluster_ip}" in res.stdout, res.stdout
    res = kube.exec(some, "nslookup", "no-such-service", check=False)
    assert "NXDOMAIN" in res.stdout and "Name:" not in res.stdout
    # The C library's resolver (wget) applies the search list to every short form.
    script = " && ".join(f"wget -qO- http://{name}/" for name in (
        "nginx-service", "nginx-service.default", "nginx-service.default.svc"))
    got = kube.exec(some, "sh", "-c", script).stdout.split()
    assert len(got) == 3 and set(got) <= names

    # Kill a pod (its infra container holds the network namespace): replaced.
    victim = sorted(names)[1]
    os.kill(kube.inspect(f"k8s_POD_{victim}_default")["State"]["Pid"], signal.SIGKILL)
    wait_for(lambda: victim not in kube.pods() and len(kube.pods()) == 3
             and all(p["ip"] for p in kube.pods().values()), timeout=30,
             what="the killed pod to be replaced")
    new_names = set(kube.pods())
    assert len(new_names - names) == 1
    wait_for(lambda: sorted(kube.service("nginx-service")["endpoints"]) ==
             sorted(p["ip"] for p in kube.pods().values()), what="the endpoints to follow")
    assert _answers(lambda: _http(cluster_ip, 80), new_names) == new_names
    assert not kube("ps", "-a", "-q", "--filter", f"name={victim}").stdout.strip()

    # Kill a container (not its pod): the monitor restarts it in place (restartPolicy Always).
    keep = sorted(new_names & names)[0]
    app = f"k8s_nginx_{keep}_default"
    os.kill(kube.inspect(app)["State"]["Pid"], signal.SIGKILL)
    wait_for(lambda: kube.inspect(app)["RestartCount"] >= 1
             and kube.inspect(app)["State"]["Running"], timeout=30, what="the restart")
    assert set(kube.pods()) == new_names

    # Scaled down by playing the file again with another replicas count.
    scaled = _write(tmp_path, "deployment.yaml",
                    open(manifest).read().replace("replicas: 3", "replicas: 2"))
    out = kube.play(scaled).stdout.splitlines()
    assert "deployment.apps/nginx-deployment configured" in out
    assert "service/nginx-service unchanged" in out
    assert len(kube.pods()) == 2 and set(kube.pods()) < new_names
    assert sorted(kube.service("nginx-service")["endpoints"]) == sorted(
        p["ip"] for p in kube.pods().values())

    out = kube.down(manifest).stdout.splitlines()
    assert out == ['deployment.apps "nginx-deployment" deleted',
                   'service "nginx-service" deleted', 'service "nginx-nodeport" deleted']
    assert kube.kube_leftovers() == []
    assert http_get(node_port, timeout=0.5) is None


def test_probes_restart_the_container_and_gate_the_endpoints(kube, tmp_path):
    manifest = _write(tmp_path, "probes.yaml", """\
apiVersion: v1
kind: Pod
metadata: {name: probed}
spec:
  containers:
  - name: exec-probe
    image: busybox:latest
    command: ["sh", "-c", "touch /tmp/healthy; sleep 2; rm /tmp/healthy; exec sleep 3600"]
    livenessProbe:
      exec: {command: [cat, /tmp/healthy]}
      periodSeconds: 1
      failureThreshold: 2
  - name: http-probe
    image: nginx:1.14.2
    livenessProbe:
      httpGet: {path: /missing, port: 80}
      initialDelaySeconds: 1
      periodSeconds: 1
      failureThreshold: 2
  - name: tcp-probe
    image: busybox:latest
    command: ["sleep", "3600"]
    livenessProbe:
      tcpSocket: {port: 8181}       # nothing listens there
      periodSeconds: 1
      failureThreshold: 2
---
apiVersion: v1
kind: Pod
metadata: {name: late, labels: {app: late}}
spec:
  containers:
  - name: web                       # serves after 3 s
    image: nginx:1.14.2
    command: ["sh", "-c", "sleep 3; echo late > /var/www/index.html; exec httpd -f -p 80 -h /var/www"]
    readinessProbe: {httpGet: {path: /, port: 80}, periodSeconds: 1}
  - name: flag                      # ready while /tmp/ready exists
    image: busybox:latest
    command: ["sh", "-c", "sleep 2; touch /tmp/ready; exec sleep 3600"]
    readinessProbe: {exec: {command: [cat, /tmp/ready]}, periodSeconds: 1, failureThreshold: 1}
  - name: tcp
    image: busybox:latest
    command: ["sh", "-c", "sleep 2; mkdir -p /tmp/w; exec httpd -f -p 8080 -h /tmp/w"]
    readinessProbe: {tcpSocket: {port: 8080}, periodSeconds: 1}
---
apiVersion: v1
kind: Service
metadata: {name: late}
spec:
  selector: {app: late}
  ports: [{port: 80}]
""")
    kube.play(manifest)
    # Not an endpoint before its probes pass (the pod runs from the start).
    assert kube.service("late")["endpoints"] == []
    ip = kube.pods()["late"]["ip"]
    wait_for(lambda: kube.service("late")["endpoints"] == [ip], timeout=40, interval=0.5,
             what="the pod to become ready")
    rows = kube("kube", "get").stdout
    assert any(line.split()[1:3] == ["late", "3/3"] for line in rows.splitlines()), rows
    assert _http(kube.service("late")["clusterIP"], 80).strip() == "late"
    kube.exec("k8s_flag_late_default", "rm", "/tmp/ready")
    wait_for(lambda: kube.service("late")["endpoints"] == [], timeout=20, interval=0.5,
             what="the pod to leave the endpoints")
    for name in ("exec-probe", "http-probe", "tcp-probe"):
        wait_for(lambda name=name: kube.inspect(f"k8s_{name}_probed_default")["RestartCount"]
                 >= 1, timeout=40, interval=0.5, what=f"{name} to be restarted")
    kube.down(manifest)
    assert kube.kube_leftovers() == []
    again = kube.kube("down", manifest, check=False)
    assert again.returncode == 1
    assert again.stderr == ('Error from server (NotFound): pods "probed" not found\n'
                            'Error from server (NotFound): pods "late" not found\n'
                            'Error from server (NotFound): services "late" not found\n')


@pytest.mark.parametrize("text, message", [
    ("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n"
     "  - name: c\n    image: busybox:latest\n    envFrom: [{configMapRef: {name: nope}}]\n",
     'Pod p: configmap "nope" not found'),
    ("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n"
     "  - name: c\n    image: no-such-image-here:1\n", "no-such-image-here"),
])
def test_a_bad_file_makes_nothing(kube, tmp_path, text, message):
    res = kube.kube("play", _write(tmp_path, "bad.yaml", text), check=False)
    assert res.returncode != 0
    assert message in res.stderr and "Traceback" not in res.stderr
    assert kube.kube_leftovers() == []
