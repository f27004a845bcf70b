"""FastAPI ``Depends`` resolved inside jobs, from the same dependency functions the app uses.

```python
async def get_session(engine: Annotated[AsyncEngine, Depends(get_engine)]) -> AsyncIterator[AsyncSession]:
    async with AsyncSession(engine) as session:
        yield session                                   # cleaned up when the job ends

@queue.task()
async def build_report(report_id: int, db: Annotated[AsyncSession, Depends(get_session)] = INJECTED) -> None:
    ...
```
A worker plans every task's dependencies when it starts and refuses one that needs what
only an HTTP request has (a ``Request``, a query parameter, a header...), naming the task
and the parameter. Per job it resolves sub-dependencies once each (unless
``use_cache=False``), runs sync dependencies in the worker's thread pool, and closes
``yield`` dependencies after the job in reverse order, with the job's exception thrown in
when it failed, timed out or was aborted.

``Queue.dependency_overrides`` replaces a dependency in workers as
``app.dependency_overrides`` does in the app; `provide_in_worker` lets an integration say
what a web-side dependency means in a worker (``hasten.fastapi.get_resources`` gives
the worker lifespan's resources).

This module never imports FastAPI: a task can only declare ``Depends`` if the app has.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import sys
import typing
from collections.abc import Awaitable, Callable, Hashable, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Annotated, Any, Literal

from hasten.context import JobContext
from hasten.errors import ConfigurationError
from hasten.progress import Progress

if TYPE_CHECKING:
    from hasten.queue import Queue
    from hasten.task import Task

__all__ = [
    "JobScope",
    "TaskDependencies",
    "find_depends",
    "injected_by_type",
    "plan_dependencies",
    "provide_in_worker",
]

Provider = Callable[["JobScope"], Any]
Kind = Literal["async", "sync", "async_gen", "gen", "provided"]

_PROVIDERS: dict[Callable[..., Any], Provider] = {}


def provide_in_worker(dependency: Callable[..., Any], provider: Provider) -> None:
    """Resolve *dependency* in workers by calling ``provider(scope)`` instead."""
    _PROVIDERS[dependency] = provider


def injected_by_type(annotation: Any) -> Literal["context", "progress"] | None:
    """What a worker injects into a parameter by its annotation alone."""
    if (typing.get_origin(annotation) or annotation) is JobContext:
        return "context"
    if annotation is Progress:
        return "progress"
    return None


def find_depends(annotation: Any, default: Any) -> Any | None:
    """The ``fastapi.params.Depends`` a parameter declares (as default or in ``Annotated``)."""
    fastapi_params = sys.modules.get("fastapi.params")
    if fastapi_params is None:
        return None
    depends_type = fastapi_params.Depends
    if isinstance(default, depends_type):
        return default
    if typing.get_origin(annotation) is Annotated:
        for meta in reversed(annotation.__metadata__):
            if isinstance(meta, depends_type):
                return meta
    return None


@dataclass(slots=True)
class JobScope:
    """What one job's dependencies are resolved from, and the per-job cache."""

    queue: Queue
    resources: Any
    """What the worker lifespan yielded."""
    context: JobContext[Any] | None
    progress: Progress | None
    threads: Executor
    cache: dict[Hashable, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Node:
    call: Callable[..., Any]
    kind: Kind
    arguments: tuple[tuple[str, _Node | str], ...]
    """Each parameter with its source: a sub-dependency, "context" or "progress"."""
    cache_key: Hashable | None


@dataclass(frozen=True, slots=True)
class TaskDependencies:
    """One task's planned dependencies: what each injected parameter is resolved from."""

    parameters: tuple[tuple[str, _Node], ...]
    needs_context: bool
    needs_progress: bool

    async def call(self, scope: JobScope, run: Callable[[dict[str, Any]], Awaitable[Any]]) -> Any:
        """Resolve the parameters, ``await run(values)``, then close ``yield`` dependencies."""
        async with contextlib.AsyncExitStack() as stack:
            values = {name: await _solve(node, scope, stack) for name, node in self.parameters}
            return await run(values)


def plan_dependencies(queue: Queue) -> dict[str, TaskDependencies]:
    """Plan the dependencies of every task on *queue*; raise one `ConfigurationError`
    listing every task parameter a worker cannot resolve."""
    plans: dict[str, TaskDependencies] = {}
    problems: list[str] = []
    for name, task in queue.tasks.items():
        declared = task.signature.dependency_params
        if not declared:
            continue
        try:
            plans[name] = _plan_task(task, declared, queue.dependency_overrides)
        except ConfigurationError as exc:
            problems.append(str(exc))
    if problems:
        raise ConfigurationError("\n".join(problems))
    return plans


class _Planner:
    def __init__(self, overrides: Mapping[Callable[..., Any], Callable[..., Any]]) -> None:
        self.overrides = overrides
        self.needs_context = False
        self.needs_progress = False
        self._resolving: list[Callable[..., Any]] = []

    def node(self, depends: Any, annotation: Any, path: list[str]) -> _Node:
        call = depends.dependency
        if call is None:  # `Annotated[Service, Depends()]`: the annotated class is the dependency
            call = _unannotated(annotation)
        original = call
        call = self.overrides.get(call, call)
        scopes = tuple(getattr(depends, "scopes", None) or ())
        cache_key = (original, scopes) if depends.use_cache else None
        provider = _PROVIDERS.get(call)
        if provider is not None:
            return _Node(provider, "provided", (), cache_key)
        if not callable(call):
            raise _Unresolvable([*path, repr(call)], "is not callable", web_only=False)
        path = [*path, _name_of(call)]
        if any(call is seen for seen in self._resolving):
            raise _Unresolvable(path, "depends on itself", web_only=False)
        try:
            signature = inspect.signature(call, eval_str=True)
        except (NameError, TypeError, ValueError) as exc:
            raise _Unresolvable(path, f"has a signature that cannot be read: {exc}", web_only=False) from exc
        self._resolving.append(call)
        arguments: list[tuple[str, _Node | str]] = []
        for param in signature.parameters.values():
            source = self.source(param, path)
            if source is not None:
                arguments.append((param.name, source))
        self._resolving.pop()
        return _Node(call, _kind_of(call), tuple(arguments), cache_key)

    def source(self, param: inspect.Parameter, path: list[str]) -> _Node | str | None:
        annotation = param.annotation
        base = _unannotated(annotation)
        depends = find_depends(annotation, param.default)
        if depends is not None:
            if param.kind is param.POSITIONAL_ONLY:
                raise _Unresolvable(path, f"injects positional-only parameter {param.name!r}", web_only=False)
            return self.node(depends, annotation, path)
        if (injected := injected_by_type(base)) is not None:
            self.needs_context = self.needs_context or injected == "context"
            self.needs_progress = self.needs_progress or injected == "progress"
            return injected
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            return None
        if (web_only := _web_only(base)) is not None:
            raise _Unresolvable(path, f"needs {web_only} (parameter {param.name!r})")
        if param.default is param.empty:
            raise _Unresolvable(
                path,
                f"needs request data (parameter {param.name!r}: a query, path, header, cookie or body value)",
            )
        if _is_request_marker(param.default):
            raise _Unresolvable(path, f"reads request data (parameter {param.name!r})")
        return None  # a plain default: the call uses it


class _Unresolvable(Exception):
    def __init__(self, path: list[str], problem: str, *, web_only: bool = True) -> None:
        super().__init__(f"{' -> '.join(path)} {problem}")
        self.web_only = web_only


_HINT = (
    "A job has no HTTP request: read shared resources through hasten.fastapi.get_resources, "
    "or replace the dependency in workers with queue.dependency_overrides[dependency] = ..."
)


def _plan_task(
    task: Task[Any, Any], declared: Mapping[str, tuple[Any, Any]], overrides: Any
) -> TaskDependencies:
    planner = _Planner(overrides)
    parameters: list[tuple[str, _Node]] = []
    for name, (annotation, depends) in declared.items():
        try:
            parameters.append((name, planner.node(depends, annotation, [])))
        except _Unresolvable as exc:
            hint = f", which a worker cannot provide. {_HINT}" if exc.web_only else ""
            where = f"task {task.name}, parameter {name!r}"
            raise ConfigurationError(f"{where}: dependency {exc}{hint}") from None
    return TaskDependencies(tuple(parameters), planner.needs_context, planner.needs_progress)


async def _solve(node: _Node, scope: JobScope, stack: contextlib.AsyncExitStack) -> Any:
    if node.cache_key is not None and node.cache_key in scope.cache:
        return scope.cache[node.cache_key]
    kwargs: dict[str, Any] = {}
    for name, source in node.arguments:
        if source == "context":
            kwargs[name] = scope.context
        elif source == "progress":
            kwargs[name] = scope.progress
        else:
            kwargs[name] = await _solve(typing.cast(_Node, source), scope, stack)
    value: Any
    match node.kind:
        case "provided":
            value = node.call(scope)
        case "async":
            value = await node.call(**kwargs)
        case "sync":
            loop = asyncio.get_running_loop()
            value = await loop.run_in_executor(scope.threads, functools.partial(node.call, **kwargs))
        case "async_gen":
            manager = contextlib.asynccontextmanager(node.call)(**kwargs)
            value = await manager.__aenter__()
            stack.push_async_exit(_never_suppress(manager.__aexit__))
        case "gen":
            value = await _enter_in_thread(contextlib.contextmanager(node.call)(**kwargs), scope, stack)
    if node.cache_key is not None:
        scope.cache[node.cache_key] = value
    return value


ExitCallback = Callable[
    [type[BaseException] | None, BaseException | None, TracebackType | None], Awaitable[bool | None]
]


def _never_suppress(exit_: ExitCallback) -> ExitCallback:
    """A dependency's cleanup sees the job's exception but cannot swallow it: a failed job
    must not be recorded as complete because a ``yield`` dependency caught its error."""

    async def close(
        exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool:
        await exit_(exc_type, exc, tb)
        return False

    return close


async def _enter_in_thread(
    manager: contextlib.AbstractContextManager[Any], scope: JobScope, stack: contextlib.AsyncExitStack
) -> Any:
    loop = asyncio.get_running_loop()
    value = await loop.run_in_executor(scope.threads, manager.__enter__)

    async def exit_in_thread(
        exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool | None:
        return await loop.run_in_executor(scope.threads, manager.__exit__, exc_type, exc, tb)

    stack.push_async_exit(_never_suppress(exit_in_thread))
    return value


def _kind_of(call: Callable[..., Any]) -> Kind:
    target = call
    if not (inspect.isroutine(call) or isinstance(call, functools.partial) or inspect.isclass(call)):
        target = getattr(call, "__call__", call)  # noqa: B004  (a callable instance)
    while isinstance(target, functools.partial):
        target = target.func
    if inspect.isasyncgenfunction(target):
        return "async_gen"
    if inspect.isgeneratorfunction(target):
        return "gen"
    if inspect.iscoroutinefunction(target):
        return "async"
    return "sync"


def _name_of(call: Callable[..., Any]) -> str:
    name = str(getattr(call, "__qualname__", None) or type(call).__qualname__)
    return name.rpartition("<locals>.")[2]


def _unannotated(annotation: Any) -> Any:
    return typing.get_args(annotation)[0] if typing.get_origin(annotation) is Annotated else annotation


def _is_type(annotation: Any, cls: type) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, cls)


def _web_only(annotation: Any) -> str | None:
    """What web-only object a parameter annotated *annotation* asks for, if any."""
    for module, name, what in (
        ("starlette.requests", "HTTPConnection", "a Request"),
        ("starlette.responses", "Response", "a Response"),
        ("starlette.background", "BackgroundTasks", "BackgroundTasks"),
        ("fastapi.security", "SecurityScopes", "SecurityScopes"),
    ):
        cls = getattr(sys.modules.get(module), name, None)
        if cls is not None and _is_type(annotation, cls):
            return what
    return None


def _is_request_marker(default: Any) -> bool:
    """``Query()``, ``Header()``, ``Body()``... as a default."""
    fastapi_params = sys.modules.get("fastapi.params")
    return fastapi_params is not None and isinstance(default, fastapi_params.Param | fastapi_params.Body)
