"""Reading compose files: interpolation, .env, anchors and merge keys, merging
-f files, validation messages, the canonical `config` form, project names.
Pure logic: no containers, runs without root."""
import os

import pytest
import yaml

from minirun.compose import loader, model, project
from minirun.compose.loader import ComposeError

pytestmark = pytest.mark.unprivileged  # pure logic: runs without root


def load(tmp_path, text, name="compose.yaml", environ=None, **kw):
    (tmp_path / name).write_text(text)
    src = loader.load(workdir=str(tmp_path), environ=environ or {}, **kw)
    return model.normalize(src)


def test_interpolation_forms():
    env = {"A": "a", "E": ""}.get
    it = loader.interpolate
    assert it("x$A-${A}", env, "w") == "xa-a"
    assert it("${NOPE:-d} ${E:-d} ${E-d} ${NOPE-d}", env, "w") == "d d  d"
    assert it("${A:+alt} ${E:+alt} ${E+alt}", env, "w") == "alt  alt"
    assert it("$$A costs $${A}", env, "w") == "$A costs ${A}"
    assert it("${NOPE:-${A}}", env, "w") == "a"
    with pytest.raises(ComposeError, match="required variable NOPE is missing a value: "
                                           "set it"):
        it("${NOPE:?set it}", env, "w")
    with pytest.raises(ComposeError, match="required variable E"):
        it("${E:?}", env, "w")
    assert it("${E?}", env, "w") == ""
    with pytest.raises(ComposeError, match="invalid interpolation format for services.web"):
        it("${A", env, "services.web.image")
    with pytest.raises(ComposeError, match="invalid interpolation"):
        it("a $ b", env, "w")


def test_env_file_and_environment_precedence(tmp_path):
    (tmp_path / ".env").write_text("# comment\nTAG=1.0\nexport PORT=8080\nQ='lit $TAG'\n"
                                   'D="x${TAG}y"\nU=u # trailing\n')
    doc = load(tmp_path, "services:\n  web:\n    image: busybox:${TAG}\n"
                         "    ports: ['${PORT}:80']\n    environment:\n      - Q=${Q}\n"
                         "      - D=${D}\n      - U=${U}\n", environ={"PORT": "9090"})
    web = doc["services"]["web"]
    assert web["image"] == "busybox:1.0"
    assert web["ports"][0]["published"] == "9090"   # the environment wins over .env
    assert web["environment"] == {"Q": "lit $TAG", "D": "x1.0y", "U": "u"}
    other = tmp_path / "other.env"
    other.write_text("TAG=2.0\n")
    doc = load(tmp_path, (tmp_path / "compose.yaml").read_text(), env_files=[str(other)])
    assert doc["services"]["web"]["image"] == "busybox:2.0"


def test_yaml_12_booleans_a_service_named_off(tmp_path):
    doc = load(tmp_path, """
services:
  off:
    image: busybox
    labels: {enabled: yes, debug: "true"}
    read_only: true
""")
    off = doc["services"]["off"]
    assert off["labels"] == {"enabled": "yes", "debug": "true"}
    assert off["read_only"] is True


def test_anchors_merge_keys_and_extensions(tmp_path):
    doc = load(tmp_path, """
x-base: &base
  image: busybox
  restart: on-failure:3
  environment: &env
    LEVEL: info
  labels: [tier=back]
services:
  api:
    <<: *base
    environment:
      <<: *env
      EXTRA: "1"
  worker:
    <<: *base
    restart: always
""")
    assert "x-base" not in doc
    api, worker = doc["services"]["api"], doc["services"]["worker"]
    assert api["image"] == worker["image"] == "busybox"
    assert api["environment"] == {"LEVEL": "info", "EXTRA": "1"}
    assert api["restart"] == "on-failure:3" and worker["restart"] == "always"
    assert api["labels"] == {"tier": "back"}


@pytest.mark.parametrize("text, message", [
    ("services:\n  web:\n    image: busybox\n    prots: ['80']\n",
     "services.web: additional property 'prots' is not allowed"),
    ("services:\n  web:\n    image: busybox\n    ports: ['80:abc']\n",
     r"services.web.ports\[0\]: invalid port '80:abc'"),
    ("services:\n  web:\n    command: x\n",
     "services.web: has neither an image nor a build context"),
    ("services:\n  web:\n    image: busybox\n    depends_on: [db]\n",
     "services.web.depends_on: depends on undefined service 'db'"),
    ("services:\n  web:\n    image: busybox\n    depends_on:\n      db: {condition: healthy}\n"
     "  db:\n    image: busybox\n", "services.web.depends_on.db.condition: must be one of"),
    ("services:\n  web:\n    image: busybox\n    volumes: ['data:/d']\n",
     r"services.web.volumes\[0\]: service refers to undefined volume data"),
    ("services:\n  web:\n    image: busybox\n    volumes: ['./x:rel']\n",
     "must be absolute"),
    ("services:\n  web:\n    image: busybox\n    restart: sometimes\n",
     "services.web.restart: invalid restart policy 'sometimes'"),
    ("services:\n  web:\n    image: busybox\n    healthcheck: {test: [RUN, x]}\n",
     "services.web.healthcheck.test: must start with CMD"),
    ("services:\n  web:\n    image: busybox\n    read_only: yes please\n",
     "services.web.read_only: must be a boolean"),
    ("services:\n  a:\n    image: busybox\n    depends_on: [b]\n  b:\n    image: busybox\n"
     "    depends_on: [a]\n", "dependency cycle detected: a -> b -> a"),
    ("services:\n  web:\n    image: busybox\n    container_name: ww\n    deploy: {replicas: 2}\n",
     "services.web: container_name 'ww' is unique"),
    ("servics:\n  web:\n    image: busybox\n", "additional property 'servics'"),
    ("services:\n  web:\n    image: busybox\n   bad-indent: 1\n", "yaml: compose.yaml line 4"),
])
def test_errors_name_the_key(tmp_path, text, message):
    with pytest.raises(ComposeError, match=message):
        load(tmp_path, text)


def test_config_is_canonical(tmp_path):
    (tmp_path / "web.env").write_text("FROM_FILE=1\nB=file\n")
    doc = load(tmp_path, """
services:
  web:
    image: busybox
    command: httpd -f -p "80"
    env_file: web.env
    environment: {B: 2, C: true}
    ports: ["8080:80", "127.0.0.1::53/udp", {target: 443, published: 8443}]
    volumes: ["data:/data:ro", "./site:/www", "/cache", {type: tmpfs, target: /tmp}]
    depends_on: [db]
    networks:
      back: {aliases: [www]}
  db:
    image: busybox
    healthcheck: {test: "true", interval: 2s}
volumes:
  data: {}
networks:
  back:
""", environ={}, project_name="demo_1")
    assert doc["name"] == "demo_1"
    web = doc["services"]["web"]
    assert web["command"] == ["httpd", "-f", "-p", "80"]
    assert web["environment"] == {"FROM_FILE": "1", "B": "2", "C": "true"}
    assert web["ports"] == [
        {"mode": "ingress", "target": 80, "published": "8080", "protocol": "tcp"},
        {"mode": "ingress", "target": 53, "host_ip": "127.0.0.1", "protocol": "udp"},
        {"mode": "ingress", "target": 443, "published": "8443", "protocol": "tcp"}]
    assert web["volumes"] == [
        {"type": "volume", "source": "data", "target": "/data", "read_only": True},
        {"type": "bind", "source": str(tmp_path / "site"), "target": "/www",
         "bind": {"create_host_path": True}},
        {"type": "volume", "target": "/cache"},
        {"type": "tmpfs", "target": "/tmp"}]
    assert web["depends_on"] == {"db": {"condition": "service_started", "required": True}}
    assert web["networks"] == {"back": {"aliases": ["www"]}}
    assert doc["services"]["db"]["healthcheck"] == {"test": ["CMD-SHELL", "true"],
                                                    "interval": "2s"}
    assert doc["services"]["db"]["networks"] == {"default": None}
    assert doc["networks"] == {"back": {"name": "demo_1_back"},
                               "default": {"name": "demo_1_default"}}
    assert doc["volumes"] == {"data": {"name": "demo_1_data"}}
    assert list(doc) == ["name", "services", "networks", "volumes"]
    # It prints as YAML and reads back to the same document.
    assert yaml.safe_load(yaml.safe_dump(doc, sort_keys=False)) == doc


def test_project_names(tmp_path):
    d = tmp_path / "My App.v2"
    d.mkdir()
    (d / "compose.yaml").write_text("services:\n  a:\n    image: busybox\n")
    assert loader.load(workdir=str(d), environ={}).name == "myappv2"
    assert loader.load(workdir=str(d), environ={"COMPOSE_PROJECT_NAME": "env"}).name == "env"
    assert loader.load(workdir=str(d), environ={}, project_name="cli").name == "cli"
    with pytest.raises(ComposeError, match="invalid project name 'Bad'"):
        loader.load(workdir=str(d), environ={}, project_name="Bad")
    (d / "compose.yaml").write_text("name: fromfile\nservices:\n  a:\n    image: busybox\n")
    assert loader.load(workdir=str(d), environ={}).name == "fromfile"
    sub = d / "sub"
    sub.mkdir()   # files are looked for in parent directories too
    assert loader.load(workdir=str(sub), environ={}).files == [str(d / "compose.yaml")]
    with pytest.raises(ComposeError, match="no configuration file provided"):
        loader.load(workdir="/", environ={})


def test_merging_files(tmp_path):
    (tmp_path / "compose.yaml").write_text("""
services:
  web:
    image: busybox
    command: [a]
    environment: [A=1, B=1]
    ports: ["80:80"]
    volumes: ["/x", "./one:/same"]
    labels: {k: v}
""")
    (tmp_path / "compose.override.yaml").write_text("""
services:
  web:
    command: [b]
    environment: {B: 2}
    ports: ["81:81"]
    volumes: ["./two:/same"]
  extra:
    image: busybox
""")
    doc = model.normalize(loader.load(workdir=str(tmp_path), environ={}))
    web = doc["services"]["web"]
    assert web["command"] == ["b"]
    assert web["environment"] == {"A": "1", "B": "2"}
    assert [p["target"] for p in web["ports"]] == [80, 81]
    assert [v.get("source") for v in web["volumes"]] == [None, str(tmp_path / "two")]
    assert set(doc["services"]) == {"web", "extra"}
    # -f replaces the default files (and their override).
    doc = model.normalize(loader.load(["compose.yaml"], workdir=str(tmp_path), environ={}))
    assert doc["services"]["web"]["command"] == ["a"]


def test_config_hash_and_order(tmp_path):
    doc = load(tmp_path, "services:\n  a:\n    image: busybox\n    depends_on: [b]\n"
                         "  b:\n    image: busybox\n    deploy: {replicas: 2}\n")
    assert model.dependency_order(doc["services"], ["a"]) == ["b", "a"]
    b = doc["services"]["b"]
    scaled = dict(b, deploy={"replicas": 5})
    assert project.config_hash(b) == project.config_hash(scaled)
    assert project.config_hash(b) != project.config_hash(dict(b, command=["x"]))
    assert model.replicas(b) == 2


def test_deploy_restart_policy_and_refused_keys(tmp_path):
    from minirun.compose import adapter

    doc = load(tmp_path, "services:\n  w:\n    image: busybox\n    deploy:\n"
                         "      restart_policy: {condition: on-failure, max_attempts: 3}\n")
    assert doc["services"]["w"]["deploy"]["restart_policy"] == {"condition": "on-failure",
                                                               "max_attempts": 3}
    opts = adapter.run_options(doc, "w", name="x-w-1", labels={})
    assert opts.restart == {"Name": "on-failure", "MaximumRetryCount": 3}
    assert opts.network.endswith("_default")
    for text, message in [
            ("networks:\n  n: {driver: overlay}\n", "networks.n.driver: 'overlay' is not"),
            ("networks:\n  n: {internal: true}\n", "networks.n: additional property 'internal'"),
            ("volumes:\n  v: {driver: nfs}\n", "volumes.v.driver: 'nfs' is not available")]:
        with pytest.raises(ComposeError, match=message):
            load(tmp_path, "services:\n  w:\n    image: busybox\n" + text)


def test_network_mode_ulimits_sysctls_to_run_options(tmp_path):
    from minirun.compose import adapter

    doc = load(tmp_path, """\
name: shop
services:
  db:
    image: busybox
    ulimits: {nproc: 512, nofile: {soft: 1024, hard: 2048}}
    sysctls: [net.core.somaxconn=1024, kernel.shmmax=100000]
  sidecar:
    image: busybox
    network_mode: service:db
  tool: {image: busybox, network_mode: container:other}
  host: {image: busybox, network_mode: host, sysctls: {kernel.msgmax: 4096}}
  isolated: {image: busybox, network_mode: none}
""")
    s = doc["services"]
    assert s["db"]["ulimits"] == {"nproc": 512, "nofile": {"soft": 1024, "hard": 2048}}
    assert s["db"]["sysctls"] == {"net.core.somaxconn": "1024", "kernel.shmmax": "100000"}
    # service:NAME is a dependency; a network_mode service has no networks, and the
    # default network exists only for the service that uses it.
    assert s["sidecar"]["depends_on"] == {"db": {"condition": "service_started",
                                                 "required": True}}
    assert "networks" not in s["sidecar"] and list(doc["networks"]) == ["default"]
    assert model.dependency_order(s, ["sidecar"]) == ["db", "sidecar"]
    opts = {n: adapter.run_options(doc, n, name=f"shop-{n}-1", labels={}) for n in s}
    assert opts["db"].limits.ulimits == [{"Name": "nproc", "Soft": 512, "Hard": 512},
                                         {"Name": "nofile", "Soft": 1024, "Hard": 2048}]
    assert opts["db"].sysctls == {"net.core.somaxconn": "1024", "kernel.shmmax": "100000"}
    assert opts["db"].network == "shop_default" and opts["db"].network_aliases == ["db"]
    assert (opts["sidecar"].network, opts["sidecar"].network_aliases) == (
        "container:shop-db-1", [])
    assert opts["tool"].network == "container:other"
    assert (opts["host"].network, opts["isolated"].network) == ("host", "none")
    assert yaml.safe_load(yaml.safe_dump(doc)) == doc     # config prints it as is
    for text, message in [
            ("    network_mode: host\n    networks: [default]\n",
             "mutually exclusive `network_mode` and `networks`"),
            ("    network_mode: service:nope\n", "network_mode: service 'nope' is not defined"),
            ("    network_mode: overlay\n", "invalid network_mode 'overlay'"),
            ("    ulimits: {nofile: {soft: 10, hard: 5}}\n", "ulimits.nofile: soft limit 10"),
            ("    ulimits: {bogus: 1}\n", "ulimits.bogus: unknown ulimit"),
            ("    sysctls: {kernel.panic: 1}\n", "sysctls.kernel.panic: not a namespaced"),
    ]:
        with pytest.raises(ComposeError, match=message):
            load(tmp_path, "services:\n  w:\n    image: busybox\n" + text)
    # Refused by the front end's rules, before anything is made.
    from minirun.errors import BadOption

    doc = load(tmp_path, "services:\n  w:\n    image: busybox\n    network_mode: host\n"
                         "    sysctls: {net.core.somaxconn: 1}\n")
    with pytest.raises(BadOption, match="net.* is not allowed with the host network mode"):
        adapter.run_options(doc, "w", name="x-w-1", labels={})
    from minirun.frontend.runopts import RunOptions

    assert RunOptions.from_flags("busybox", sysctls=["fs.mqueue.msg_max=20"]).sysctls == {
        "fs.mqueue.msg_max": "20"}
    for bad in ("kernel.panic=1", "net.core.somaxconn"):     # run --sysctl's parser
        with pytest.raises(BadOption, match="for --sysctl"):
            RunOptions.from_flags("busybox", sysctls=[bad])


def test_extends_same_file_and_other_file(tmp_path):
    (tmp_path / "common").mkdir()
    (tmp_path / "common" / "base.yaml").write_text("""\
services:
  base:
    image: busybox
    environment: {A: "1", B: base}
    ports: ["8080:80"]
    volumes: [./data:/data]
    build: ./ctx
  deeper:
    extends: base
    command: [deeper]
""")
    doc = load(tmp_path, """\
services:
  common:
    image: busybox
    command: [sh, -c, "echo common"]
    environment: {A: common}
  web:
    extends: common
    environment: {B: web}
  api:
    extends: {service: deeper, file: common/base.yaml}
    environment: {B: api}
    ports: ["9090:90"]
""")
    s = doc["services"]
    assert s["web"]["command"] == ["sh", "-c", "echo common"]
    assert s["web"]["environment"] == {"A": "common", "B": "web"}
    api = s["api"]
    assert api["command"] == ["deeper"] and api["environment"] == {"A": "1", "B": "api"}
    assert [p["published"] for p in api["ports"]] == ["8080", "9090"]
    # Relative paths of the other file are from that file's directory.
    assert api["volumes"][0]["source"] == str(tmp_path / "common" / "data")
    assert api["build"]["context"] == str(tmp_path / "common" / "ctx")
    for text, message in [
            ("  a: {extends: b}\n  b: {extends: a}\n", "circular reference"),
            ("  a: {extends: nope}\n", "cannot extend service 'nope'"),
            ("  a: {extends: {service: x, file: missing.yaml}}\n", "missing.yaml"),
            ("  a: {extends: [x]}\n", "must be a service name or a mapping")]:
        with pytest.raises(ComposeError, match=message):
            load(tmp_path, "services:\n" + text)
