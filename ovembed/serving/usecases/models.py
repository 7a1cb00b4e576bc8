"""Which model a request is about: resolve a name (and version) to its status or servable."""

from __future__ import annotations

from ovembed.errors import ModelNotFound
from ovembed.serving.api import ModelState, ModelStatus, Registry, Servable
from ovembed.serving.context import RequestContext


def not_available(registry: Registry) -> list[tuple[str, ModelStatus]]:
    """The configured models that cannot serve now, with their status (readiness says why)."""
    found = []
    for name in registry.names():
        try:
            status = registry.status(name)
        except ModelNotFound:  # removed by a reload meanwhile
            continue
        if status.state is not ModelState.AVAILABLE:
            found.append((name, status))
    return found


def check_version(name: str, version: str | None, status: ModelStatus) -> None:
    """Each model has one version; asking for another one is a 404 (``ModelNotFound``).

    ``None`` and ``""`` (gRPC's unset string) mean the default version.
    """
    if version and version != str(status.version):
        raise ModelNotFound(f"{name}/versions/{version}")


def status(registry: Registry, ctx: RequestContext, name: str, version: str | None = None) -> ModelStatus:
    """The configured model's status (``ModelNotFound`` for unknown names or versions).

    Notes the model in ``ctx`` once it is known to be configured.
    """
    found = registry.status(name)
    ctx.model = name
    check_version(name, version, found)
    return found


def servable(registry: Registry, ctx: RequestContext, name: str,
             version: str | None = None) -> tuple[Servable, ModelStatus]:
    """The servable and its status: ``ModelNotFound`` (404), ``ModelNotReady`` (503)."""
    found = status(registry, ctx, name, version)
    return registry.get(name), found
