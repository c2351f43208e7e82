"""The tiny model under its test-fixture name; it lives in :mod:`belle_hf.tiny_model` (a product feature)."""

from belle_hf.tiny_model import *  # noqa: F401,F403
