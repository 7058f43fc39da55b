"""Helpers the tests import (``pyproject.toml`` puts ``tests/`` on ``sys.path``); not shipped."""
