"""The distribution's version, in one place (the User-Agent header sends it)."""

__version__ = "0.1.0"
