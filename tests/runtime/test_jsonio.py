"""minirun.jsonio reads and writes exactly what the json module does."""
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minirun import jsonio

pytestmark = pytest.mark.unprivileged

values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(values)
def test_same_text_as_json(value):
    assert jsonio.dumps(value) == json.dumps(value)
    assert jsonio.dumps(value, indent=2) == json.dumps(value, indent=2)
    text = json.dumps(value)
    assert jsonio.loads(text) == json.loads(text)
    assert jsonio.loads(text.encode()) == json.loads(text)
    assert jsonio.loads(f" \n{text}\t ") == value or value != value


@pytest.mark.parametrize("text", ["", "{", "[1,]", "1 2", "nul", '{"a": 1} x', '"\\x"'])
def test_bad_documents_raise_jsons_error(text):
    with pytest.raises(json.JSONDecodeError) as ours:
        jsonio.loads(text)
    with pytest.raises(json.JSONDecodeError) as theirs:
        json.loads(text)
    assert str(ours.value) == str(theirs.value)


def test_non_string_keys_and_unserializable_values():
    assert jsonio.dumps({1: True, None: 2}, indent=2) == json.dumps({1: True, None: 2}, indent=2)
    with pytest.raises(TypeError):
        jsonio.dumps({"a": object()})


def test_special_floats():
    assert jsonio.dumps([float("inf"), float("-inf")]) == "[Infinity, -Infinity]"
    assert jsonio.loads("[NaN]")[0] != jsonio.loads("[NaN]")[0]
