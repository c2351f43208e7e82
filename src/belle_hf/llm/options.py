"""The endpoint options of every command that talks to an OpenAI-compatible endpoint
(``belle eval judge``, ``eval generate``, ``eval serve-page``, ``data generate``), derived from
:class:`~belle_hf.llm.EndpointConfig` so that their flags, help texts and defaults are declared
once."""

from __future__ import annotations

from typing import Any, Callable, Sequence

ENDPOINT_OPTIONS = ("base_url", "model", "api_key", "api_key_env", "concurrency", "timeout", "max_retries")
"""The :class:`~belle_hf.llm.EndpointConfig` fields given as ``--base-url``, ``--model``, ..."""


def endpoint_options(fields: Sequence[str] = ENDPOINT_OPTIONS, **kwargs: Any) -> Callable:
    """Decorate a typer command: ``fields`` become its options and its ``endpoint`` parameter
    receives the :class:`~belle_hf.llm.EndpointConfig` (see :func:`belle_hf.options.config_options`)."""
    from belle_hf.llm.client import EndpointConfig
    from belle_hf.options import config_options

    return config_options(EndpointConfig, "endpoint", fields, **kwargs)
