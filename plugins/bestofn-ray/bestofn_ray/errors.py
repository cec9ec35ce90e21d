"""The one error this plugin raises on purpose."""

from __future__ import annotations

from bestofn_core.errors import ConfigurationError

__all__ = ["ShippingError"]


class ShippingError(ConfigurationError):
    """The program or the settings of a batch could not be shipped to a Ray worker.

    Raised on the driver when cloudpickle cannot pickle them (the batch ends at once), and on a worker
    when it cannot unpickle them, usually because code they reference is not importable there (each
    example then fails with this error). The message names what failed and why.
    """
