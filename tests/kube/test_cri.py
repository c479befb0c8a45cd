"""minirun as a Kubernetes node's runtime: the kubelet's calls, made over
containerd's CRI gRPC socket to a `minirun` runtime handler (see cri_node.py).

One pod, two containers sharing its network namespace: a web server listening
on 127.0.0.1 only, and a client that reaches it over localhost (ExecSync).
Logs are read from the file the CRI names; at the end nothing is left (the
sandbox checks processes, cgroups and mounts; here: minirun's state, the pod's
veth, the CNI address).
"""
import os
import shutil
import uuid

import pytest

from cri_node import HANDLER, Node, wait
from cri_proto import CONTAINER, CONTAINER_EXITED, CONTAINER_RUNNING, POD

pytestmark = pytest.mark.skipif(
    not (shutil.which("containerd") and shutil.which("containerd-shim-runc-v2")
         and shutil.which("docker-registry") and shutil.which("skopeo")
         and os.path.exists("/usr/lib/cni/ptp")),
    reason="needs containerd, docker-registry, skopeo and containernetworking-plugins")


@pytest.fixture(scope="module")
def node():
    pytest.importorskip("grpc")
    with Node() as n:
        yield n


def test_version(node):
    assert node.version["runtime_name"] == "containerd"
    assert node.version["runtime_api_version"] == "v1"


def _sandbox_config(node, name):
    uid = uuid.uuid4().hex
    return {"metadata": {"name": name, "uid": uid, "namespace": "default", "attempt": 0},
            "hostname": name, "log_directory": os.path.join(node.dir, "logs", uid),
            "labels": {"app": name},
            "linux": {"cgroup_parent": node.sandbox.cgroup_parent,
                      "security_context": {"namespace_options": {
                          "network": POD, "pid": CONTAINER, "ipc": POD}}}}


def _container(node, sandbox_id, config, name, script):
    request = {"pod_sandbox_id": sandbox_id, "sandbox_config": config, "config": {
        "metadata": {"name": name, "attempt": 0},
        "image": {"image": node.busybox_image},
        "command": ["sh", "-c"], "args": [script],
        "envs": [{"key": "ROLE", "value": name}],
        "log_path": f"{name}/0.log", "labels": {"container": name},
        "linux": {"security_context": {"namespace_options": {
            "network": POD, "pid": CONTAINER, "ipc": POD}}}}}
    cid = node.runtime("CreateContainer", "CreateContainerRequest", "CreateContainerResponse",
                       request)["container_id"]
    node.runtime("StartContainer", "ContainerIdRequest", "Empty", {"container_id": cid})
    return cid


def _status(node, cid):
    return node.runtime("ContainerStatus", "ContainerStatusRequest", "ContainerStatusResponse",
                        {"container_id": cid})["status"]


def _exec(node, cid, *cmd):
    return node.runtime("ExecSync", "ExecSyncRequest", "ExecSyncResponse",
                        {"container_id": cid, "cmd": list(cmd), "timeout": 20})


def test_pod_of_two_containers_sharing_the_network(node):
    pulled = node.images("PullImage", "PullImageRequest", "PullImageResponse",
                         {"image": {"image": node.busybox_image}})
    assert pulled["image_ref"].startswith("sha256:")
    node.images("PullImage", "PullImageRequest", "PullImageResponse",
                {"image": {"image": node.pause_image}})

    config = _sandbox_config(node, "web")
    sandbox_id = node.runtime("RunPodSandbox", "RunPodSandboxRequest", "RunPodSandboxResponse",
                              {"config": config, "runtime_handler": HANDLER})["pod_sandbox_id"]
    stopped = removed = False
    try:
        assert sandbox_id in node.minirun_states(), "the pause container is not minirun's"
        assert len(node.our_links()) == 1      # CNI ptp's host end of the pod's veth
        server = _container(node, sandbox_id, config, "server",
                            "mkdir -p /www && echo hello over localhost > /www/index.html && "
                            "echo server ready && exec httpd -f -p 127.0.0.1:8080 -h /www")
        client = _container(node, sandbox_id, config, "client",
                            'echo "client $ROLE up"; exec sleep 3600')
        assert {server, client} <= set(node.minirun_states())
        for cid in (server, client):
            wait(lambda cid=cid: _status(node, cid)["state"] == CONTAINER_RUNNING,
                 what=f"{cid[:12]} to run")
        status = _status(node, server)
        assert status["metadata"]["name"] == "server"
        assert status["labels"]["container"] == "server"
        assert status["started_at"] > 0

        # The client reaches the server's 127.0.0.1 listener: one network namespace.
        out = wait(lambda: (r := _exec(node, client, "wget", "-qO-",
                                       "http://127.0.0.1:8080/"))["exit_code"] == 0 and r,
                   what="the server to answer over localhost")
        assert out["stdout"] == b"hello over localhost\n"
        ns = [_exec(node, cid, "readlink", "/proc/self/ns/net")["stdout"] for cid in
              (server, client)]
        assert ns[0] == ns[1] and ns[0].startswith(b"net:[")
        # ... with the pod's hostname and its own pid namespace (pid: CONTAINER).
        assert _exec(node, client, "hostname")["stdout"] == b"web\n"
        assert _exec(node, client, "cat", "/proc/1/cmdline")["stdout"].startswith(b"sleep")
        failed = _exec(node, client, "sh", "-c", "echo to-stderr >&2; exit 3")
        assert (failed["exit_code"], failed["stderr"]) == (3, b"to-stderr\n")

        # Logs: the CRI's file format, "<RFC 3339 time> <stream> <P|F> <line>".
        log_file = os.path.join(config["log_directory"], status["log_path"])
        assert status["log_path"] == "server/0.log" or log_file == status["log_path"]
        log_file = status["log_path"] if os.path.isabs(status["log_path"]) else log_file
        with open(log_file) as f:
            first = f.readline().split(" ", 3)
        assert first[1:] == ["stdout", "F", "server ready\n"]
        with open(os.path.join(config["log_directory"], "client", "0.log")) as f:
            assert f.readline().endswith(" stdout F client client up\n")

        for cid in (server, client):
            node.runtime("StopContainer", "StopContainerRequest", "Empty",
                         {"container_id": cid, "timeout": 2})
            assert _status(node, cid)["state"] == CONTAINER_EXITED
            node.runtime("RemoveContainer", "ContainerIdRequest", "Empty", {"container_id": cid})
        assert not {server, client} & set(node.minirun_states())
        node.runtime("StopPodSandbox", "PodSandboxIdRequest", "Empty",
                     {"pod_sandbox_id": sandbox_id})
        stopped = True
        node.runtime("RemovePodSandbox", "PodSandboxIdRequest", "Empty",
                     {"pod_sandbox_id": sandbox_id})
        removed = True
        assert node.minirun_states() == []
        assert node.our_links() == [], "the pod's veth is left on the host"
    finally:
        if not stopped:
            node.runtime("StopPodSandbox", "PodSandboxIdRequest", "Empty",
                         {"pod_sandbox_id": sandbox_id})
        if not removed:
            node.runtime("RemovePodSandbox", "PodSandboxIdRequest", "Empty",
                         {"pod_sandbox_id": sandbox_id})
