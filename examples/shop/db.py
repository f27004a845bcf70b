"""The shop's database, shared by the web app and the worker through one dependency.

```python
@app.get("/outbox")                                   # in a route
async def outbox(db: SessionDep) -> list[OutboxOut]: ...

@queue.task(name="send_welcome")                      # in a task: the same dependency
async def send_welcome(user_id: int, db: SessionDep = INJECTED) -> int: ...
```
`resources()` creates the engine once per process: the app runs it in its lifespan
(``hasten.fastapi.lifespan(queue, resources)``), each worker process in the queue's
(``Queue("shop", lifespan=resources)``). `get_session` reaches it through
`hasten.fastapi.get_resources`, which knows which of the two it runs in.

``DATABASE_URL`` picks the database: SQLite in the temporary directory by default, or
PostgreSQL (``postgresql://user@host/db``, run through asyncpg).
"""

import asyncio
import os
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends
from sqlalchemy import DateTime, String, Text, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from hasten.fastapi import get_resources

DEFAULT_URL = f"sqlite+aiosqlite:///{Path(tempfile.gettempdir()) / 'hasten-shop.db'}"

_SQLITE_BUSY_TIMEOUT_MS = 10_000


def _now() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)


class Outbox(Base):
    """Emails the shop has sent: this example writes them here instead of to an SMTP server."""

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(primary_key=True)
    recipient: Mapped[str] = mapped_column(String(320))
    subject: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)


class Report(Base):
    """A signups report: ``pending`` until the `build_report` job has filled it in."""

    __tablename__ = "reports"

    id: Mapped[int] = mapped_column(primary_key=True)
    status: Mapped[str] = mapped_column(String(20), default="pending")
    users: Mapped[int | None]
    emails_sent: Mapped[int | None]
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


@dataclass(frozen=True, slots=True)
class Resources:
    """What one process shares between its requests or jobs (add an HTTP client here)."""

    engine: AsyncEngine


def database_url(environ: dict[str, str] | None = None) -> str:
    """``DATABASE_URL`` with an async driver: ``postgresql://`` runs through asyncpg."""
    raw = (os.environ if environ is None else environ).get("DATABASE_URL") or DEFAULT_URL
    url = make_url(raw)
    if url.drivername in ("postgres", "postgresql"):
        url = url.set(drivername="postgresql+asyncpg")
    elif url.drivername == "sqlite":
        url = url.set(drivername="sqlite+aiosqlite")
    return url.render_as_string(hide_password=False)


def create_engine(url: str) -> AsyncEngine:
    if not url.startswith("sqlite"):
        return create_async_engine(url, pool_pre_ping=True)
    engine = create_async_engine(url, connect_args={"timeout": _SQLITE_BUSY_TIMEOUT_MS / 1000})

    # The web app and the worker are two processes writing one file: WAL lets readers
    # and a writer work at once, and the busy timeout makes a writer wait its turn.
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(connection: Any, _record: Any) -> None:
        cursor = connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={_SQLITE_BUSY_TIMEOUT_MS}")
        cursor.close()

    return engine


async def create_tables(engine: AsyncEngine, attempts: int = 5) -> None:
    """Create missing tables. The web app and the worker start together and may both try
    to create a table; the loser's error is harmless, and its next try finds the table."""
    for attempt in range(1, attempts + 1):
        try:
            async with engine.begin() as connection:
                await connection.run_sync(Base.metadata.create_all)
            return
        except DBAPIError:
            if attempt == attempts:
                raise
            await asyncio.sleep(0.1 * attempt)


@asynccontextmanager
async def resources() -> AsyncIterator[Resources]:
    """Once per process: the engine, the tables; the engine's connections closed at exit."""
    engine = create_engine(database_url())
    try:
        await create_tables(engine)
        yield Resources(engine=engine)
    finally:
        await engine.dispose()


async def get_engine(resources: Annotated[Resources, Depends(get_resources)]) -> AsyncEngine:
    return resources.engine


async def get_session(engine: Annotated[AsyncEngine, Depends(get_engine)]) -> AsyncIterator[AsyncSession]:
    """A session per request or job. Nothing commits for you: commit what you mean to keep,
    before you enqueue a job that reads it. What is left uncommitted is rolled back."""
    async with AsyncSession(engine, expire_on_commit=False) as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]
"""A database session, in a route or in a task."""
