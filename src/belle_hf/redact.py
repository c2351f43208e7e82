"""What a secret looks like, and URLs with their secrets masked: one place for both.

``--base-url https://user:sk-…@host/v1?api_key=…`` is a real way to pass a key, and every place
that records or logs an endpoint (judge summaries, generated data's metadata, response caches'
keys, log lines, cards) shows :func:`redact_url` of it instead. The token shapes here are also
what :mod:`belle_hf.hub.secrets` refuses to upload.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

MASK = "***"

TOKEN_SHAPES = {
    "a Hugging Face token": ("hf_", "A-Za-z0-9", 30),
    "an OpenAI-style API key": ("sk-", "A-Za-z0-9_-", 20),
    "a GitHub token": ("gh[pousr]_", "A-Za-z0-9", 30),
}
"""``description: (prefix regex, characters of the body, least body length)``."""

SECRET_QUERY_WORDS = ("key", "token", "secret", "password", "passwd", "signature", "sig", "auth", "credential")
"""A query-string (or fragment) parameter whose name ends with one of these carries a secret
(``api_key``, ``key``, ``access_token``, ``X-Amz-Signature``, ``sig``, ``auth`` ...; not
``tokenizer`` or ``author``)."""

_TOKEN = re.compile("|".join(f"{prefix}[{body}]{{{least},}}" for prefix, body, least in TOKEN_SHAPES.values()))


def is_secret_parameter(name: str) -> bool:
    return name.lower().endswith(SECRET_QUERY_WORDS)


def _redact_parameters(text: str) -> str:
    pairs = []
    for pair in text.split("&"):
        name, equals, value = pair.partition("=")
        pairs.append(f"{name}={MASK}" if equals and value and is_secret_parameter(name) else pair)
    return "&".join(pairs)


def redact_url(url: str | None) -> str | None:
    """``url`` with its user info (``user:password@``), secret query/fragment parameters and any
    token-shaped part replaced by ``***``; returned unchanged when it holds none of them (so keys
    derived from clean URLs stay what they were).

    >>> redact_url("https://me:sk-abc@api.example.com/v1?api_key=XYZ&version=2")
    'https://***@api.example.com/v1?api_key=***&version=2'
    """
    if not url:
        return url
    try:
        parts = urlsplit(url)
    except ValueError:  # not a URL at all: still mask what looks like a token
        return _TOKEN.sub(MASK, url)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{MASK}@{netloc.rpartition('@')[2]}"
    query, fragment = _redact_parameters(parts.query), _redact_parameters(parts.fragment)
    if (netloc, query, fragment) != (parts.netloc, parts.query, parts.fragment):
        url = urlunsplit((parts.scheme, netloc, parts.path, query, fragment))
    return _TOKEN.sub(MASK, url)
