"""Optional dependencies (``pip install 'belle-hf[EXTRA]'``): one check and one message for all.

GPTQ, GGUF export and ``belle serve`` need packages that most users never install; the
feature that needs them says so in one line instead of an import traceback from deep inside.
"""

from __future__ import annotations

import importlib.util
import sys

from belle_hf.errors import BelleError


def _installed(module: str) -> bool:
    if module in sys.modules:
        return sys.modules[module] is not None  # None: the import is blocked
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def require_extra(extra: str, feature: str, *modules: str) -> None:
    """Raise :class:`BelleError` naming the ``extra`` to install when any of ``modules`` is missing.

    ``feature`` says what needs them (``"GGUF export"``). Only finds the modules, never imports
    them, so the check is instant even for heavy packages.
    """
    missing = [module for module in modules if not _installed(module)]
    if missing:
        raise BelleError(f"{feature} needs {' and '.join(missing)}, which {'is' if len(missing) == 1 else 'are'} "
                         f"not installed: pip install 'belle-hf[{extra}]'")
