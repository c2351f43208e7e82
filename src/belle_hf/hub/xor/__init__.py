"""XOR-diff publishing for license-restricted bases (see :mod:`belle_hf.hub.xor.diff`) and
BELLE's legacy ``.enc`` files (:mod:`belle_hf.hub.xor.legacy`)."""

from belle_hf.hub.xor.diff import MANIFEST_NAME, XorReport, decode, encode, read_manifest
from belle_hf.hub.xor.legacy import legacy_decode, legacy_encode

__all__ = ["MANIFEST_NAME", "XorReport", "decode", "encode", "legacy_decode", "legacy_encode", "read_manifest"]
