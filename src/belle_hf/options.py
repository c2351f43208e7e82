"""Command-line options declared once, on the config dataclass they fill.

A dataclass field with ``metadata={"help": ..., "cli": {...}}`` becomes the typer option
``--field-name`` with that help, the field's type and the field's default, so every command
that takes these settings shows the same flags with the same defaults (the way TRL's
``TrlParser`` and ``HfArgumentParser`` derive arguments from dataclasses; typer has no such
feature, hence this small bridge). The library raises :class:`~belle_hf.errors.ConfigError`
naming a field; :func:`flag_errors` reports it as the flag the user typed.

Only ``typer`` and the standard library are imported here: ``belle --help`` must stay fast.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import inspect
import typing
from typing import Any, Annotated, Callable, Iterator, Sequence

import typer

from belle_hf.errors import BelleError, ConfigError


def flag_of(field_name: str) -> str:
    """The option a config field is given as: ``api_key_env`` -> ``--api-key-env``."""
    return "--" + field_name.replace("_", "-")


@contextlib.contextmanager
def flag_errors(**renamed: str) -> Iterator[None]:
    """Report a :class:`ConfigError` raised in the block as the flag of its field
    (``--base-url: must be ...``); ``renamed`` maps fields whose flag is not ``--field-name``
    (``target="-n"``). Wrap only the building of configs from options, not the work itself."""
    try:
        yield
    except ConfigError as error:
        flag = renamed.get(error.field, flag_of(error.field))
        raise BelleError(f"{flag}: {error.reason}") from None


def config_options(
    config_class: type,
    into: str,
    fields: Sequence[str],
    *,
    shared: Sequence[str] = (),
    optional: bool = False,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorate a typer command so that ``fields`` of ``config_class`` are its options and its
    parameter ``into`` receives the built config.

    ``shared`` names fields the command declares itself (because it uses them for something else
    too, with its own help); their values are passed to the config as well. With ``optional``,
    the fields without a default are optional too, and ``into`` receives ``None`` when the first
    of them is not given (``eval generate``: no ``--base-url``, no endpoint).
    """
    hints = typing.get_type_hints(config_class)
    declared = {f.name: f for f in dataclasses.fields(config_class)}
    unknown = [name for name in (*fields, *shared) if name not in declared]
    if unknown:
        raise TypeError(f"{config_class.__name__} has no field(s) {unknown}")
    required = [name for name in fields if _default_of(declared[name]) is inspect.Parameter.empty]

    def option(name: str) -> inspect.Parameter:
        spec = declared[name]
        cli = dict(spec.metadata.get("cli", {}))
        annotation = hints[name]
        default = _default_of(spec)
        if optional and default is inspect.Parameter.empty:
            annotation, default = typing.Optional[annotation], None
        info = typer.Option(flag_of(name), help=spec.metadata.get("help"), **cli)
        return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default,
                                 annotation=Annotated[annotation, info])

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        signature = inspect.signature(command)
        if into not in signature.parameters:
            raise TypeError(f"{command.__name__} has no parameter {into!r} to receive the config")
        command_hints = typing.get_type_hints(command, include_extras=True)
        parameters: list[inspect.Parameter] = []
        for parameter in signature.parameters.values():
            if parameter.name == into:
                parameters.extend(option(name) for name in fields)
            else:  # keyword-only, so that required options may follow ones with defaults
                parameters.append(parameter.replace(kind=inspect.Parameter.KEYWORD_ONLY,
                                                    annotation=command_hints.get(parameter.name, parameter.annotation)))

        @functools.wraps(command)
        def wrapper(**values: Any) -> Any:
            settings = {name: values.pop(name) for name in fields}
            settings.update({name: values[name] for name in shared})
            if optional and required and settings[required[0]] is None:
                values[into] = None
            else:
                with flag_errors():
                    values[into] = config_class(**settings)
            return command(**values)

        # typer reads the parameters from the signature and their types from __annotations__.
        wrapper.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
        wrapper.__annotations__ = {p.name: p.annotation for p in parameters}
        del wrapper.__wrapped__  # so that inspect and typing look at the new signature only
        return wrapper

    return decorate


def _default_of(spec: dataclasses.Field) -> Any:
    if spec.default is not dataclasses.MISSING:
        return spec.default
    if spec.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return spec.default_factory()  # type: ignore[misc]
    return inspect.Parameter.empty
