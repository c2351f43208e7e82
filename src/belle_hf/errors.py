"""Exceptions that the ``belle`` command turns into a one-line error message and exit code 1."""


class BelleError(Exception):
    """Base class of user-facing errors: bad input, missing files, wrong settings."""


class DataFormatError(BelleError, ValueError):
    """A record does not match the schema it was read with.

    ``location`` names where the record came from (``file:line`` or ``file[index]``)
    and ``field`` the offending field, when known.
    """

    def __init__(self, message: str, *, location: str | None = None, field: str | None = None):
        self.reason = message
        self.location = location
        self.field = field
        parts = [location] if location else []
        if field:
            parts.append(f"field '{field}'")
        prefix = ": ".join(parts)
        super().__init__(f"{prefix}: {message}" if prefix else message)

    def at(self, location: str) -> "DataFormatError":
        """Return the same error located at ``location`` (a file and line)."""
        return DataFormatError(self.reason, location=location, field=self.field)


class ConfigError(BelleError, ValueError):
    """A setting of a config dataclass is invalid; ``field`` names it (``base_url``, ...).

    The library names fields; the ``belle`` command reports the flag the field came from.
    """

    def __init__(self, field: str, reason: str):
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}")
