"""Example agentctl processes: a plain function and a Prefect flow with a task."""

from __future__ import annotations

from typing import Literal

from prefect import flow, get_run_logger, task

from agentctl import process


@process(tags=["example"])
def word_count(text: str, unique: bool = False) -> int:
    """Count the words in a text.

    Args:
        text: The text whose words to count.
        unique: Count each distinct word once.
    """
    words = text.lower().split()
    return len(set(words)) if unique else len(words)


@task
def _next_numbers(count: int, order: Literal["ascending", "descending"]) -> list[int]:
    numbers = [0, 1]
    while len(numbers) < count:
        numbers.append(numbers[-1] + numbers[-2])
    numbers = numbers[:count]
    return numbers if order == "ascending" else numbers[::-1]


@process(retries=1, retry_delay_seconds=0)
@flow(name="fibonacci")
def fibonacci(count: int = 10, order: Literal["ascending", "descending"] = "ascending") -> list[int]:
    """List the first numbers of the Fibonacci sequence.

    Args:
        count: How many numbers to list (1 to 90).
        order: ascending or descending.
    """
    if not 1 <= count <= 90:
        raise ValueError(f"count must be between 1 and 90, not {count}")
    numbers = _next_numbers(count, order)
    get_run_logger().info("the %d-th Fibonacci number is %d", count, max(numbers))
    return numbers
