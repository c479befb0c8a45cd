"""Fixtures of the kube tests (helpers live in kube_helpers.py and cri_proto.py:
conftest module names clash between test directories)."""
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
