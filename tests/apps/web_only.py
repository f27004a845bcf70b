"""A task whose dependency needs an HTTP request: a worker must refuse to start."""

from typing import Annotated

from fastapi import Depends, Request

from hasten import INJECTED, Queue

queue = Queue("web-only")


def current_user(request: Request) -> str:
    return request.headers.get("x-user", "")


@queue.task(name="notify")
async def notify(message: str, user: Annotated[str, Depends(current_user)] = INJECTED) -> None: ...
