"""Image configs as a build sees them: one State per step, written to the
store as config + manifest blobs (an untagged image per step, as Docker's
classic builder keeps intermediate images: they are what the cache finds)."""
import copy
import datetime
import json

from minirun.image import manifest as mf

EMPTY_CONFIG = {"architecture": None, "os": "linux", "config": {},
                "rootfs": {"type": "layers", "diff_ids": []}, "history": []}


def timestamp(epoch=None):
    """RFC 3339 time; SOURCE_DATE_EPOCH (epoch) fixes it."""
    if epoch is not None:
        when = datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc)
        return when.strftime("%Y-%m-%dT%H:%M:%SZ")
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class State:
    """The image a stage has built so far: its config dict and layer descriptors."""

    def __init__(self, config, layers, digest=None):
        self.config = config
        self.layers = layers
        self.digest = digest  # manifest digest once written

    @classmethod
    def scratch(cls):
        cfg = copy.deepcopy(EMPTY_CONFIG)
        cfg["architecture"] = mf.host_platform()["architecture"]
        return cls(cfg, [])

    @classmethod
    def from_image(cls, image):
        cfg = copy.deepcopy(image.config)
        cfg.setdefault("config", {})
        cfg.setdefault("history", [])
        # The new manifest is OCI: a Docker base's layer types become OCI ones
        # (one manifest never mixes the two families).
        return cls(cfg, [mf.oci_layer(layer) for layer in image.layers], image.digest)

    @property
    def run_config(self):
        return self.config.setdefault("config", {})

    @property
    def diff_ids(self):
        return self.config["rootfs"]["diff_ids"]

    def child(self):
        return State(copy.deepcopy(self.config), [dict(x) for x in self.layers], self.digest)

    def add_history(self, created_by, epoch, empty_layer, comment=None):
        entry = {"created": timestamp(epoch), "created_by": created_by}
        if comment:
            entry["comment"] = comment
        if empty_layer:
            entry["empty_layer"] = True
        self.config.setdefault("history", []).append(entry)
        self.config["created"] = entry["created"]

    def add_layer(self, descriptor, diff_id):
        self.layers.append(descriptor)
        self.diff_ids.append(diff_id)

    def env(self):
        """The config's Env as a dict (order kept)."""
        out = {}
        for item in self.run_config.get("Env") or []:
            key, _, value = item.partition("=")
            out[key] = value
        return out

    def set_env(self, key, value):
        set_env(self.run_config, key, value)

    def write(self, store):
        """Put config and manifest in the store; returns the manifest digest."""
        cfg = _clean(self.config)
        config_bytes = json.dumps(cfg, sort_keys=True, separators=(",", ":")).encode()
        config_digest = store.put_bytes(config_bytes, what="image config")
        manifest = {"schemaVersion": 2, "mediaType": mf.OCI_MANIFEST,
                    "config": {"mediaType": mf.OCI_CONFIG, "digest": config_digest,
                               "size": len(config_bytes)},
                    "layers": self.layers}
        manifest_bytes = json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()
        self.digest = store.put_bytes(manifest_bytes, what="manifest")
        return self.digest


def set_env(run_config, key, value):
    """Set KEY=value in a config's Env, in place of an earlier KEY."""
    env = list(run_config.get("Env") or [])
    for i, item in enumerate(env):
        if item.partition("=")[0] == key:
            env[i] = f"{key}={value}"
            break
    else:
        env.append(f"{key}={value}")
    run_config["Env"] = env


def _clean(cfg):
    """Drop empty fields the way Docker's config writer omits them."""
    cfg = copy.deepcopy(cfg)
    run = cfg.get("config") or {}
    cfg["config"] = {k: v for k, v in run.items() if v not in (None, "", [], {})}
    return {k: v for k, v in cfg.items() if v is not None}
