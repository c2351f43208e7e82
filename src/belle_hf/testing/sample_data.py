"""The sample data under its test-fixture name; it lives in :mod:`belle_hf.samples` (a product feature)."""

from belle_hf.samples import *  # noqa: F401,F403
