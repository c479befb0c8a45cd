"""The field map of minirun/spec.py is true: every module it names for a field
of config.json reads or applies that field (its JSON key, or the key in
snake_case when it is passed on as a Python argument)."""
import os
import re

import pytest

from minirun import spec

PKG = os.path.dirname(os.path.abspath(spec.__file__))


def _spellings(field):
    key = field.split(".")[-1]
    snake = re.sub(r"(?<=[a-z])([A-Z])", r"_\1", key).lower()
    return {f'"{key}"', f"'{key}'", snake}


@pytest.mark.parametrize("field", sorted(spec.FIELD_MAP))
def test_each_mapped_module_handles_its_field(field):
    for module in spec.FIELD_MAP[field]:
        path = os.path.join(PKG, module)
        with open(path) as f:
            text = f.read()
        assert any(s in text for s in _spellings(field)), f"{module} does not handle {field}"


def test_the_docstring_names_every_mapped_module():
    doc = spec.__doc__
    for field, modules in spec.FIELD_MAP.items():
        assert field.split(".")[-1] in doc, field
        for module in modules:
            assert module in doc, module


def test_every_top_level_field_of_the_default_spec_is_mapped():
    mapped = {f.split(".")[0] for f in spec.FIELD_MAP}
    config = spec.default_spec() if hasattr(spec, "default_spec") else None
    if config is None:
        pytest.skip("spec.py has no default_spec()")
    for key in config:
        if key in ("ociVersion", "process", "linux"):
            continue
        assert key in mapped, key
    for key in config.get("process", {}):
        assert f"process.{key}" in spec.FIELD_MAP, key
    for key in config.get("linux", {}):
        assert f"linux.{key}" in spec.FIELD_MAP, key
