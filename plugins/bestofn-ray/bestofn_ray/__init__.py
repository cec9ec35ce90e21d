"""bestofn-ray: run ``Module.batch`` on a Ray cluster.

``module.batch(examples, executor="ray")`` runs each example as a Ray task on the cluster Ray connects to
(a new local one by default), with the kernel's batch semantics (order, ``max_errors``, stragglers,
progress, failed examples, usage). ``executor=RayExecutor(address="ray://head:10001", ...)`` chooses the
cluster and the tasks' resources and runtime environment. See docs/ray.md.

Importing this package (and building the plugin registry) does not import ``ray``: the executor imports
it when it opens its first batch.
"""

from __future__ import annotations

from bestofn_core import hookimpl
from bestofn_core.hookspecs import RegisterExecutor
from bestofn_ray.errors import ShippingError
from bestofn_ray.executor import RayExecutor, RaySession

__version__ = "0.1.0"

__all__ = ["RayExecutor", "RaySession", "ShippingError", "__version__", "register_executors"]


@hookimpl
def register_executors(register: RegisterExecutor) -> None:
    """Offer ``RayExecutor()`` as ``"ray"`` (``"ray:ray"`` when qualified)."""
    register(RayExecutor(), name="ray")
