"""Which model a request is about: resolve a name (and version) to its status or servable."""

from __future__ import annotations

from ovembed.config import Task
from ovembed.errors import InvalidInput, ModelNotFound
from ovembed.serving.api import ModelInfo, ModelState, ModelStatus, Registry, Servable, wrong_task
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


async def servable(registry: Registry, ctx: RequestContext, name: str,
                   version: str | None = None) -> tuple[Servable, ModelStatus]:
    """The servable and its status: ``ModelNotFound`` (404), ``ModelNotReady`` (503). An idle-unloaded model
    loads first (:meth:`Registry.acquire`)."""
    status(registry, ctx, name, version)
    found = await registry.acquire(name)
    return found, registry.status(name)


def default_model(registry: Registry, task: Task, hint: str = "") -> str:
    """The name of the only ``task`` model being served (for requests that name none); ``hint`` follows
    the error when there is none."""
    served = served_infos(registry)
    # models of the task itself; else those that also answer it (a token model answers rerank by MaxSim)
    names = [i.name for i in served if i.task == task] or [i.name for i in served if task in i.serves]
    if len(names) == 1:
        return names[0]
    if not names:
        raise InvalidInput(f"No {task.value} model is being served{hint}", param="model")
    raise InvalidInput(f"Several {task.value} models are served ({', '.join(sorted(names))}): name one in 'model'",
                       param="model")


def served_infos(registry: Registry) -> list[ModelInfo]:
    """What each model that serves now, or on demand (idle-unloaded), is."""
    infos = [s.info for s in registry.available()]
    for name in registry.names():
        try:
            if registry.status(name).state is ModelState.UNLOADED and (info := registry.info(name)) is not None:
                infos.append(info)
        except ModelNotFound:  # removed by a reload meanwhile
            continue
    return infos


async def task_servable(registry: Registry, ctx: RequestContext, task: Task, name: str | None,
                        version: str | None = None, *, hint: str = "") -> tuple[Servable, ModelStatus]:
    """:func:`servable` for a request of ``task``: the only such model when ``name`` is None; a model of
    another task is ``InvalidInput`` naming where its own task is served."""
    found, state = await servable(registry, ctx, name if name is not None else default_model(registry, task, hint),
                            version)
    if found.info.task != task and task not in found.info.serves:
        raise wrong_task(found.info, task.value)
    return found, state
