"""`minirun compose` end to end, as a user types it (root, real containers, the
locally built busybox image, a private store and --root per test)."""
import json
import os
import select
import signal
import subprocess
import time

import yaml

from fe_helpers import free_port, http_get, wait_for

# pid 1 ignores SIGTERM without a handler: trap it so `down` is quick.
HOLD = "trap 'exit 0' TERM; {} sleep 1000 & wait"

APP = """
services:
  api:
    image: busybox
    command: ["sh", "-c", "trap 'exit 0' TERM; echo api serving; httpd -f -p 80 -h /www & wait"]
    ports: ["{port}:80"]
    volumes: [data:/www]
    depends_on:
      db: {{condition: service_healthy}}
  db:
    image: busybox
    command:
      - sh
      - -c
      - >-
        trap 'exit 0' TERM; sleep 1; echo "$$GREETING" > /data/index.html;
        sleep 1000 & wait
    environment:
      - GREETING=${{GREETING:-hello}}
    volumes: [data:/data]
    healthcheck:
      test: ["CMD", "test", "-s", "/data/index.html"]
      interval: 500ms
volumes:
  data:
"""


def compose(docker, project_dir, *args, check=True, timeout=120):
    return docker("compose", "--project-directory", project_dir, "-f",
                  os.path.join(project_dir, "compose.yaml"), *args, check=check,
                  timeout=timeout)


def labels(docker, name):
    return docker.inspect(name)["Config"]["Labels"]


def test_two_services_healthcheck_ports_volume_idempotent(docker, tmp_path):
    app = tmp_path / "shop"
    app.mkdir()
    port = free_port()
    (app / "compose.yaml").write_text(APP.format(port=port))
    res = compose(docker, app, "up", "-d")
    # db became healthy before api started (the output says so, in order).
    err = res.stderr
    assert err.index("Container shop-db-1  Healthy") < err.index("Container shop-api-1  Started")
    assert "Network shop_default  Created" in err and "Volume shop_data  Created" in err
    assert wait_for(lambda: http_get(port), 30, what="api on the published port") == "hello\n"

    # Docker Compose's names and labels.
    lab = labels(docker, "shop-api-1")
    assert lab["com.docker.compose.project"] == "shop"
    assert lab["com.docker.compose.service"] == "api"
    assert lab["com.docker.compose.container-number"] == "1"
    assert lab["com.docker.compose.oneoff"] == "False"
    assert len(lab["com.docker.compose.config-hash"]) == 64
    assert docker.inspect("shop-api-1")["HostConfig"]["NetworkMode"] == "shop_default"
    vol = json.loads(docker("volume", "inspect", "shop_data").stdout)[0]
    assert vol["Labels"]["com.docker.compose.project"] == "shop"

    ps = compose(docker, app, "ps").stdout.splitlines()
    assert ps[0].split() == ["NAME", "IMAGE", "COMMAND", "SERVICE", "CREATED", "STATUS",
                             "PORTS"]
    assert [line.split()[0] for line in ps[1:]] == ["shop-api-1", "shop-db-1"]
    assert "(healthy)" in ps[2]
    logs = compose(docker, app, "logs", "api").stdout
    assert "api-1  | api serving" in logs

    # A second up changes nothing: same containers, still running.
    ids = {n: docker.inspect(n)["Id"] for n in ("shop-api-1", "shop-db-1")}
    res = compose(docker, app, "up", "-d")
    assert "Container shop-api-1  Running" in res.stderr and "Created" not in res.stderr
    assert {n: docker.inspect(n)["Id"] for n in ids} == ids

    # A changed service is recreated, the other one kept.
    (app / "compose.yaml").write_text(APP.format(port=port).replace(
        "echo api serving", "echo api v2"))
    res = compose(docker, app, "up", "-d")
    assert "Container shop-api-1  Recreated" in res.stderr
    assert docker.inspect("shop-db-1")["Id"] == ids["shop-db-1"]
    assert docker.inspect("shop-api-1")["Id"] != ids["shop-api-1"]

    # exec runs in the service's container; the name resolves through 127.0.0.11.
    out = compose(docker, app, "exec", "-T", "api", "cat", "/www/index.html").stdout
    assert out == "hello\n"
    assert compose(docker, app, "exec", "-T", "api", "cat", "/etc/resolv.conf").stdout \
        .startswith("nameserver 127.0.0.11\n")

    # down keeps the named volume; the next up finds its data.
    compose(docker, app, "down")
    assert docker.ids() == set()
    assert "shop_data" in docker("volume", "ls", "-q").stdout.split()
    assert "shop_default" not in docker("network", "ls").stdout
    compose(docker, app, "up", "-d", "db")
    out = compose(docker, app, "exec", "-T", "db", "cat", "/data/index.html").stdout
    assert out == "hello\n"
    res = compose(docker, app, "down", "-v")
    assert "Volume shop_data  Removed" in res.stderr
    assert "shop_data" not in docker("volume", "ls", "-q").stdout.split()


def test_scale_replicas_answer_under_one_name(docker, tmp_path):
    app = tmp_path / "scaled"
    app.mkdir()
    (app / "compose.yaml").write_text(f"""
services:
  web:
    image: busybox
    command: ["sh", "-c", "{HOLD.format('')}"]
    networks:
      back:
        aliases: [www]
  client:
    image: busybox
    command: ["sh", "-c", "{HOLD.format('')}"]
    networks: [back]
networks:
  back:
""")
    compose(docker, app, "up", "-d", "--scale", "web=2")
    names = sorted(docker("ps", "--format", "{{.Names}}").stdout.split())
    assert names == ["scaled-client-1", "scaled-web-1", "scaled-web-2"]
    ips = sorted(docker.inspect(f"scaled-web-{i}")["NetworkSettings"]["IPAddress"]
                 for i in (1, 2))
    for name in ("web", "www", "scaled-web-2"):
        out = compose(docker, app, "exec", "-T", "client", "nslookup", name).stdout
        found = sorted(line.split()[-1] for line in out.splitlines()[2:]
                       if line.startswith("Address"))
        want = ips if name != "scaled-web-2" else [docker.inspect(name)[
            "NetworkSettings"]["IPAddress"]]
        assert found == want, out
    # A static binary's resolver (busybox's ping, through libc) finds it too.
    res = compose(docker, app, "exec", "-T", "client", "ping", "-c", "1", "-W", "2", "web")
    assert "1 packets received" in res.stdout
    res = compose(docker, app, "exec", "-T", "client", "nslookup", "nosuchservice", check=False)
    assert res.returncode != 0 and "NXDOMAIN" in res.stdout + res.stderr
    # Scaling down removes the extra replica.
    compose(docker, app, "scale", "web=1")
    names = sorted(docker("ps", "--format", "{{.Names}}").stdout.split())
    assert names == ["scaled-client-1", "scaled-web-1"]
    compose(docker, app, "down")
    assert docker.ids() == set()


def test_anchors_merge_keys_and_config_output(docker, tmp_path):
    app = tmp_path / "anchors"
    app.mkdir()
    (app / ".env").write_text("TAG=latest\n")
    (app / "compose.yaml").write_text(f"""
x-defaults: &defaults
  image: busybox:${{TAG}}
  init: false
  labels:
    team: core
  command: ["sh", "-c", "{HOLD.format('echo $$ROLE;')}"]
services:
  one:
    <<: *defaults
    environment: {{ROLE: first}}
  two:
    <<: *defaults
    environment: {{ROLE: second}}
    secrets: [token]
  debug:
    <<: *defaults
    profiles: [debug]
secrets:
  token:
    file: ./token.txt
""")
    (app / "token.txt").write_text("s3cret\n")
    doc = yaml.safe_load(compose(docker, app, "config").stdout)
    assert doc["name"] == "anchors"
    assert doc["services"]["one"]["image"] == "busybox:latest"
    assert doc["services"]["two"]["labels"] == {"team": "core"}
    assert doc["services"]["two"]["command"][-1].startswith("trap 'exit 0' TERM; echo $ROLE;")
    assert doc["networks"] == {"default": {"name": "anchors_default"}}
    assert "x-defaults" not in doc
    assert compose(docker, app, "config", "--services").stdout.split() == ["debug", "one",
                                                                           "two"]
    assert doc["secrets"] == {"token": {"file": str(app / "token.txt")}}
    compose(docker, app, "up", "-d")
    assert labels(docker, "anchors-two-1")["team"] == "core"
    # A service of a profile that is not enabled is not started; secrets are files.
    assert "anchors-debug-1" not in docker("ps", "-a").stdout
    assert compose(docker, app, "exec", "-T", "two", "cat", "/run/secrets/token").stdout \
        == "s3cret\n"
    wait_for(lambda: "second" in compose(docker, app, "logs", "two").stdout, 30, what="two's log")
    compose(docker, app, "down")


def test_errors_name_the_key_and_make_nothing(docker, tmp_path):
    app = tmp_path / "broken"
    app.mkdir()
    (app / "compose.yaml").write_text("services:\n  web:\n    image: busybox\n"
                                      "    prots: ['80:80']\n")
    res = compose(docker, app, "up", "-d", check=False)
    assert res.returncode == 1
    assert res.stderr.strip().splitlines() == [
        "minirun: services.web: additional property 'prots' is not allowed"]
    (app / "compose.yaml").write_text("services:\n  web:\n    image: busybox\n"
                                      "    memory: lots\n    mem_limit: lots\n".replace(
                                          "    memory: lots\n", ""))
    res = compose(docker, app, "up", "-d", check=False)
    assert res.returncode != 0 and "invalid --memory 'lots'" in res.stderr
    (app / "compose.yaml").write_text("services:\n  web:\n    image: ${IMAGE:?set IMAGE}\n")
    res = compose(docker, app, "config", check=False)
    assert "required variable IMAGE is missing a value: set IMAGE" in res.stderr
    assert docker.ids() == set()
    assert "broken_default" not in docker("network", "ls").stdout


def test_up_attached_prefixes_and_ctrl_c_stops(docker, tmp_path):
    app = tmp_path / "attached"
    app.mkdir()
    (app / "compose.yaml").write_text(f"""
services:
  talker:
    image: busybox
    command: ["sh", "-c", "{HOLD.format('echo ready;')}"]
""")
    proc = docker.popen("compose", "-f", str(app / "compose.yaml"), "up",
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out = b""
        deadline = time.monotonic() + 30
        while b"ready\n" not in out and time.monotonic() < deadline:
            if select.select([proc.stdout], [], [], 0.5)[0]:
                out += os.read(proc.stdout.fileno(), 4096)
        assert out == b"talker-1  | ready\n"
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    state = docker.inspect("attached-talker-1")["State"]
    assert state["Status"] == "exited"
    compose(docker, app, "down")


def test_build_and_one_off_run(docker, tmp_path):
    from minirun.compose import build as build_mod

    if not build_mod.available():
        import pytest

        pytest.skip("no image builder in this minirun")
    app = tmp_path / "built"
    (app / "ctx").mkdir(parents=True)
    (app / "ctx" / "Dockerfile").write_text('FROM busybox\nARG WORD=x\n'
                                            'RUN echo "$WORD" > /word\nCMD ["cat", "/word"]\n')
    (app / "compose.yaml").write_text("services:\n  app:\n    build:\n      context: ctx\n"
                                      "      args: {WORD: built}\n")
    compose(docker, app, "build")
    assert "built-app" in docker("images").stdout
    res = compose(docker, app, "run", "--rm", "-T", "app")
    assert res.stdout == "built\n"
    res = compose(docker, app, "run", "--rm", "-T", "app", "echo", "other")
    assert res.stdout == "other\n"
    assert docker.ids() == set()
    compose(docker, app, "down")
    docker("rmi", "built-app")


def test_a_service_on_two_networks(docker, tmp_path):
    app = tmp_path / "tiers"
    app.mkdir()
    hold = f'["sh", "-c", "{HOLD.format("")}"]'
    (app / "compose.yaml").write_text(f"""
services:
  proxy:
    image: busybox
    command: {hold}
    networks: [front, back]
  web:
    image: busybox
    command: {hold}
    networks: [front]
  db:
    image: busybox
    command: {hold}
    networks:
      back: {{aliases: [database]}}
networks:
  front:
  back:
""")
    compose(docker, app, "up", "-d")
    links = compose(docker, app, "exec", "-T", "proxy", "ip", "-o", "-4", "addr").stdout
    assert " eth0 " in links and " eth1 " in links
    for name in ("web", "database"):     # one on each network
        res = compose(docker, app, "exec", "-T", "proxy", "ping", "-c", "1", "-W", "2", name)
        assert "1 packets received" in res.stdout
    res = compose(docker, app, "exec", "-T", "web", "nslookup", "db", check=False)
    assert res.returncode != 0           # not on a network web shares
    out = compose(docker, app, "exec", "-T", "db", "nslookup", "proxy").stdout
    assert out.count("Address:") == 2    # the server's, and proxy's on "back" only
    from minirun import network

    second = [ep["host_veth"] for ep in network.Store(docker.root).endpoints() if ep.get("of")]
    assert len(second) == 1
    compose(docker, app, "down")
    assert docker.ids() == set()
    assert not os.path.exists(f"/sys/class/net/{second[0]}")
    assert network.Store(docker.root).endpoints() == []


def test_wait_port_pause_kill_rm_and_exit_code_from(docker, tmp_path):
    app = tmp_path / "verbs"
    app.mkdir()
    (app / "compose.yaml").write_text(f"""
services:
  web:
    image: busybox
    command: ["sh", "-c", "{HOLD.format('')}"]
    ports: ["80"]
    healthcheck: {{test: "true", interval: 500ms}}
  job:
    image: busybox
    command: ["sh", "-c", "echo bye; exit 3"]
""")
    res = compose(docker, app, "up", "--wait", "web")
    assert "Container verbs-web-1  Healthy" in res.stderr
    assert docker.inspect("verbs-web-1")["State"]["Health"]["Status"] == "healthy"
    host = compose(docker, app, "port", "web", "80").stdout.strip()
    assert host.startswith("0.0.0.0:") and int(host.split(":")[1]) > 0
    compose(docker, app, "pause", "web")
    assert docker.inspect("verbs-web-1")["State"]["Status"] == "paused"
    compose(docker, app, "unpause", "web")
    assert docker.inspect("verbs-web-1")["State"]["Status"] == "running"
    compose(docker, app, "kill", "web")
    wait_for(lambda: docker.inspect("verbs-web-1")["State"]["Status"] == "exited", 30,
             what="web to exit")
    assert docker.inspect("verbs-web-1")["State"]["ExitCode"] == 137
    compose(docker, app, "rm", "web")
    assert docker.ids() == set()
    res = compose(docker, app, "up", "--exit-code-from", "job", "job", check=False)
    assert res.returncode == 3 and "job-1  | bye" in res.stdout
    compose(docker, app, "down")
    assert docker.ids() == set()


def test_network_mode_ulimits_sysctls_and_extends(docker, tmp_path):
    app = tmp_path / "modes"
    (app / "common").mkdir(parents=True)
    hold = f'["sh", "-c", "{HOLD.format("")}"]'
    # web comes from another file (extends file:), with its own keys merged over it
    (app / "common" / "base.yaml").write_text("""
services:
  base:
    image: busybox
    command: ["sh", "-c", "trap 'exit 0' TERM; echo $$HOSTNAME-page > /tmp/index.html;
              httpd -f -p 80 -h /tmp & wait"]
    environment: {FROM_BASE: "1"}
""")
    docker("run", "-d", "--name", "outside", "busybox", "sh", "-c", HOLD.format(""))
    (app / "compose.yaml").write_text(f"""
services:
  web:
    extends: {{service: base, file: common/base.yaml}}
    hostname: webhost
    ulimits: {{nofile: {{soft: 1024, hard: 2048}}}}
    sysctls: {{net.core.somaxconn: 512, kernel.shmmax: 123456789}}
  side:
    image: busybox
    command: {hold}
    network_mode: service:web
  hostnet:
    image: busybox
    command: {hold}
    network_mode: host
  lonely:
    extends: hostnet
    network_mode: none
  peer:
    image: busybox
    command: {hold}
    network_mode: container:outside
""")
    compose(docker, app, "up", "-d")

    def run(service, script):
        return compose(docker, app, "exec", "-T", service, "sh", "-c", script).stdout

    assert run("web", "ulimit -n; ulimit -Hn").split() == ["1024", "2048"]
    assert run("web", "cat /proc/sys/net/core/somaxconn /proc/sys/kernel/shmmax").split() == [
        "512", "123456789"]
    assert "FROM_BASE=1" in run("web", "env").split()
    # service:web: web's network namespace (its localhost, its sysctls)
    assert run("side", "wget -qO- http://127.0.0.1/").strip() == "webhost-page"
    assert run("side", "cat /proc/sys/net/core/somaxconn").strip() == "512"
    assert run("hostnet", "readlink /proc/1/ns/net").strip() == os.readlink("/proc/self/ns/net")
    assert run("lonely", "ls /sys/class/net").split() == ["lo"]
    assert run("peer", "readlink /proc/1/ns/net") == docker(
        "exec", "outside", "readlink", "/proc/1/ns/net").stdout
    compose(docker, app, "down")
    assert docker.ids() == {docker.inspect("outside")["Id"]}
    docker("rm", "-f", "outside")
