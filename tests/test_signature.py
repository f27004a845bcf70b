from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import BaseModel

from hasten import INJECTED, ArgumentError, ConfigurationError, JobContext, Queue


class Address(BaseModel):
    city: str
    zip: str


q = Queue("signature-tests")


@q.task
async def ship(order_id: int, to: Address, when: datetime, *, express: bool = False) -> str:
    return f"{order_id} {to.city} {when.isoformat()} {express}"


@q.task
async def with_context(n: int, ctx: JobContext[None] = INJECTED) -> int:
    return n


@q.task
def positional(a: int, /, b: int = 2) -> int:
    return a + b


def test_validates_and_dumps_rich_arguments() -> None:
    when = datetime(2026, 1, 2, 3, 4, tzinfo=UTC)
    dumped = ship.signature.dump_arguments((7, Address(city="Oslo", zip="0150"), when), {"express": True})
    assert dumped == {"order_id": 7, "to": {"city": "Oslo", "zip": "0150"}, "when": when, "express": True}
    args, kwargs = ship.signature.load_arguments(
        {"order_id": 7, "to": {"city": "Oslo", "zip": "0150"}, "when": "2026-01-02T03:04:00Z"}
    )
    assert args == []
    assert kwargs["to"] == Address(city="Oslo", zip="0150")
    assert kwargs["when"] == when


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        (("7", Address(city="a", zip="b"), datetime.now(UTC)), {}, "order_id"),
        ((7,), {}, "to"),
        ((7, Address(city="a", zip="b"), datetime.now(UTC), True), {}, "positional"),
        ((7, Address(city="a", zip="b"), datetime.now(UTC)), {"nope": 1}, "nope"),
        ((7, Address(city="a", zip="b")), {"order_id": 8, "when": datetime.now(UTC)}, "multiple"),
    ],
)
def test_wrong_calls_raise_argument_error(
    args: tuple[object, ...], kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(ArgumentError, match=message):
        ship.signature.dump_arguments(args, kwargs)


def test_argument_error_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        ship.signature.dump_arguments((), {})


def test_context_parameter_is_not_an_argument() -> None:
    assert with_context.signature.context_param == "ctx"
    assert with_context.signature.dump_arguments((1,), {}) == {"n": 1}
    with pytest.raises(ArgumentError):
        with_context.signature.dump_arguments((1,), {"ctx": None})


def test_positional_only_parameters_are_passed_positionally() -> None:
    assert positional.signature.dump_arguments((1,), {"b": 5}) == {"a": 1, "b": 5}
    assert positional.signature.load_arguments({"a": 1, "b": 5}) == ([1], {"b": 5})
    with pytest.raises(ArgumentError, match="positional-only"):
        positional.signature.dump_arguments((), {"a": 1})


def test_star_args_are_refused_at_registration() -> None:
    queue = Queue("signature-refuse")
    with pytest.raises(ConfigurationError, match="named parameters"):

        @queue.task
        async def bad(*values: int) -> None: ...


def test_results_round_trip_through_the_return_type() -> None:
    dumped = ship.signature.dump_result("x")
    assert ship.signature.load_result(dumped) == "x"

    @q.task(name="returns-model")
    async def make() -> Address:
        return Address(city="c", zip="z")

    data = make.signature.dump_result(Address(city="c", zip="z"))
    assert data == {"city": "c", "zip": "z"}
    assert make.signature.load_result(data) == Address(city="c", zip="z")
