"""The ``hasten`` command: ``hasten worker module:attr`` and friends."""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

import typer

from hasten.dead_letters import DeadLetter
from hasten.errors import ConfigurationError, HastenError, UnsupportedRedis
from hasten.queue import Queue
from hasten.worker import Worker

__all__ = ["app", "load_target", "main", "run_async"]

T = TypeVar("T")

EXIT_CONFIGURATION = 2
"""How a worker says it cannot run as configured: restarting it would not help."""

app = typer.Typer(
    name="hasten",
    help="hasten: an async Redis job queue.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def load_target(target: str) -> Queue | Worker:
    """Import ``module:attr`` (or arq-style ``module.attr``): a `Queue` or a `Worker`."""
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    module_name, sep, attr = target.partition(":")
    if not sep:
        module_name, _, attr = target.rpartition(".")
    if not module_name or not attr:
        raise ConfigurationError(f"target {target!r} must look like module:attribute")
    module = importlib.import_module(module_name)
    obj: Any = module
    for part in attr.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            raise ConfigurationError(f"{module_name} has no attribute {attr!r}")
    if callable(obj) and not isinstance(obj, Queue | Worker):
        obj = obj()
    if not isinstance(obj, Queue | Worker):
        raise ConfigurationError(f"{target} is a {type(obj).__name__}, not a hasten Queue or Worker")
    return obj


def run_async(main: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run a coroutine on uvloop when it is installed."""
    try:
        import uvloop

        factory: Any = uvloop.new_event_loop
    except ImportError:  # pragma: no cover - uvloop is a dependency off Windows
        factory = None
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(main())


def _configure_logging(verbose: bool, quiet: bool) -> None:
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s", stream=sys.stderr
    )


def _version(value: bool) -> None:
    if value:
        from hasten import __version__

        typer.echo(f"hasten {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    """hasten: an async Redis job queue."""


@app.command()
def worker(
    target: Annotated[str, typer.Argument(help="module:attribute naming a Queue or a Worker.")],
    concurrency: Annotated[int, typer.Option("--concurrency", "-c", help="Jobs run at once.")] = 100,
    burst: Annotated[bool, typer.Option(help="Drain the queue, then exit.")] = False,
    workers: Annotated[int, typer.Option("--workers", "-w", help="Worker processes.")] = 1,
    reload: Annotated[bool, typer.Option("--reload", "--watch", help="Restart on code changes.")] = False,
    shutdown_grace: Annotated[float, typer.Option(help="Seconds jobs get to finish on SIGTERM.")] = 30.0,
    worker_id: Annotated[str | None, typer.Option("--id", help="This worker's id.")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
) -> None:
    """Run workers for a queue."""
    _configure_logging(verbose, quiet)
    argv = [a for a in sys.argv[1:] if a not in ("--reload", "--watch")]
    if reload:
        try:
            import watchfiles
        except ImportError as exc:
            raise typer.BadParameter("--reload needs watchfiles: pip install 'hasten[reload]'") from exc
        command = subprocess.list2cmdline([sys.executable, "-m", "hasten", *argv])
        watchfiles.run_process(os.getcwd(), target=command, target_type="command")
        return
    if workers > 1:
        raise typer.Exit(_supervise(argv, workers))
    try:
        obj = load_target(target)
    except (ImportError, HastenError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_CONFIGURATION) from exc
    if isinstance(obj, Queue):
        obj = Worker(
            obj, concurrency=concurrency, burst=burst, shutdown_grace=shutdown_grace, worker_id=worker_id
        )
    else:
        obj.burst = burst or obj.burst
    running = obj

    async def serve() -> None:
        try:
            await running.run()
        finally:
            # The worker has stopped: a late signal must not turn a clean exit into a kill.
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, signal.SIG_IGN)
            await running.queue.close()

    try:
        run_async(serve)
    except HastenError as exc:
        typer.echo(f"error: {exc}", err=True)
        code = EXIT_CONFIGURATION if isinstance(exc, ConfigurationError | UnsupportedRedis) else 1
        raise typer.Exit(code) from exc


def _queue_of(target: str) -> Queue:
    try:
        obj = load_target(target)
    except (ImportError, HastenError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    return obj if isinstance(obj, Queue) else obj.queue


def _run_on(queue: Queue, action: Callable[[Queue], Coroutine[Any, Any, T]], failure: str) -> T:
    """Run *action* against *queue*, closing it after; a hasten error exits 1."""
    results: list[T] = []

    async def main() -> None:
        try:
            results.append(await action(queue))
        finally:
            await queue.close()

    try:
        run_async(main)
    except HastenError as exc:
        typer.echo(f"{failure}: {exc}", err=True)
        raise typer.Exit(1) from exc
    return results[0]


TargetArg = Annotated[str, typer.Argument(help="module:attribute naming a Queue or a Worker.")]


@app.command()
def check(target: TargetArg) -> None:
    """Exit 0 if a live worker serves the queue (for health probes); say why not otherwise."""
    queue = _queue_of(target)
    found = _run_on(queue, Queue.workers, "unhealthy")
    if not found:
        typer.echo(f"unhealthy: no live worker serves queue {queue.name}", err=True)
        raise typer.Exit(1)
    for info in found:
        typer.echo(
            f"{info.id}: pid {info.pid} on {info.host}, {info.running}/{info.concurrency} jobs running"
        )


dlq = typer.Typer(help="Inspect, requeue and purge jobs that failed for good.", no_args_is_help=True)
app.add_typer(dlq, name="dlq")


def _describe(letter: DeadLetter) -> str:
    when = letter.failed_at.isoformat(timespec="seconds") if letter.failed_at else "?"
    return f"{letter.id}  {when}  {letter.task}  {letter.reason}: {letter.error_message or ''}"


@dlq.command("list")
def dlq_list(
    target: TargetArg, limit: Annotated[int, typer.Option(help="How many, newest first.")] = 20
) -> None:
    """List dead letters, newest first."""
    letters = _run_on(_queue_of(target), lambda q: q.dead_letters.list(limit=limit), "error")
    for letter in letters:
        typer.echo(_describe(letter))
    if not letters:
        typer.echo("the dead-letter queue is empty")


@dlq.command("show")
def dlq_show(target: TargetArg, job_id: Annotated[str, typer.Argument(help="The job's id.")]) -> None:
    """Show one dead letter with its traceback."""
    letter = _run_on(_queue_of(target), lambda q: q.dead_letters.get(job_id), "error")
    if letter is None:
        typer.echo(f"no dead letter {job_id}", err=True)
        raise typer.Exit(1)
    typer.echo(_describe(letter))
    typer.echo(f"attempts: {letter.attempts}, priority: {letter.priority}, error type: {letter.error_type}")
    if letter.traceback:
        typer.echo(letter.traceback.rstrip())


AllOption = Annotated[bool, typer.Option("--all", help="Every dead letter.")]
IdArg = Annotated[str | None, typer.Argument(help="The job's id (or use --all).")]


def _each(job_id: str | None, every: bool) -> str | None:
    if (job_id is None) == (not every):
        raise typer.BadParameter("give a job id or --all (not both)")
    return job_id


@dlq.command("requeue")
def dlq_requeue(target: TargetArg, job_id: IdArg = None, every: AllOption = False) -> None:
    """Put dead letters back in the queue as new jobs with the same ids."""
    chosen = _each(job_id, every)
    count = _run_on(_queue_of(target), lambda q: q.dead_letters.requeue(chosen), "error")
    typer.echo(f"requeued {count} job{'s' if count != 1 else ''}")


@dlq.command("purge")
def dlq_purge(target: TargetArg, job_id: IdArg = None, every: AllOption = False) -> None:
    """Forget dead letters."""
    chosen = _each(job_id, every)
    count = _run_on(_queue_of(target), lambda q: q.dead_letters.purge(chosen), "error")
    typer.echo(f"purged {count} job{'s' if count != 1 else ''}")


_QUICK_EXIT_S = 10.0
"""A worker process that dies sooner than this after starting is restarted after a backoff."""
_MAX_RESTART_DELAY_S = 30.0
_POLL_S = 0.2


@dataclass(slots=True)
class _Child:
    process: subprocess.Popen[bytes]
    started: float
    quick_exits: int = 0


def _supervise(argv: list[str], count: int) -> int:
    """Run *count* single-process workers, pass signals on to them, and replace one that
    dies (killed, crashed) until told to stop; a crash loop backs off up to 30 s."""
    args = list(argv)
    for flag in ("--workers", "-w"):
        while flag in args:
            i = args.index(flag)
            del args[i : i + 2]
    args = [a for a in args if not a.startswith("--workers=")]
    log = logging.getLogger("hasten.supervisor")
    stopping: list[int] = []

    def spawn(quick_exits: int = 0) -> _Child:
        process = subprocess.Popen([sys.executable, "-m", "hasten", *args])
        return _Child(process, time.monotonic(), quick_exits)

    def forward(signum: int, _frame: Any) -> None:
        stopping.append(signum)
        for child in children:
            if child.process.poll() is None:
                child.process.send_signal(signum)

    children = [spawn() for _ in range(count)]
    pending: list[tuple[float, int]] = []
    """Replacements to start: (when, quick exits so far)."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, forward)
    codes: list[int] = []
    while children or (pending and not stopping):
        time.sleep(_POLL_S)
        now = time.monotonic()
        for due in [p for p in pending if p[0] <= now and not stopping]:
            pending.remove(due)
            children.append(spawn(due[1]))
        for child in [c for c in children if c.process.poll() is not None]:
            children.remove(child)
            code = child.process.returncode
            if code == 0 or stopping:
                codes.append(code)
            elif code == EXIT_CONFIGURATION:
                log.error("worker process %d cannot run as configured; stopping", child.process.pid)
                codes.append(code)
                forward(signal.SIGTERM, None)
            else:
                lived = now - child.started
                quick = child.quick_exits + 1 if lived < _QUICK_EXIT_S else 0
                delay = min(_MAX_RESTART_DELAY_S, 2.0 ** (quick - 1)) if quick else 0.0
                log.warning(
                    "worker process %d died (%s) after %.1fs; starting another in %.0fs",
                    child.process.pid,
                    f"signal {-code}" if code < 0 else f"exit code {code}",
                    lived,
                    delay,
                )
                pending.append((now + delay, quick))
    if EXIT_CONFIGURATION in codes:
        return EXIT_CONFIGURATION
    return max((abs(code) for code in codes), default=0)


def main() -> None:
    app()
