"""Supervised tasks: each long-running job restarts after a failure with a
capped, jittered backoff, and one failing job never stops the others."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import structlog

log = structlog.get_logger(__name__)


@dataclass
class TaskHealth:
    """How a supervised task is doing, as the watchdog sees it."""

    name: str
    critical: bool
    restarts: int = 0
    failing: bool = False
    last_error: str | None = None
    started_at: float = field(default_factory=time.monotonic)


class Supervisor:
    """Runs named jobs as asyncio tasks and restarts them when they fail."""

    def __init__(
        self, *, min_backoff_s: float = 1.0, max_backoff_s: float = 60.0
    ) -> None:
        self._min = min_backoff_s
        self._max = max_backoff_s
        self.health: dict[str, TaskHealth] = {}
        self._tasks: list[asyncio.Task[None]] = []

    def start(
        self, name: str, job: Callable[[], Awaitable[None]], *, critical: bool = False
    ) -> None:
        """Start `job` under supervision; a failing critical job makes us unhealthy."""
        self.health[name] = TaskHealth(name, critical)
        self._tasks.append(asyncio.create_task(self._keep(name, job), name=name))

    async def _keep(self, name: str, job: Callable[[], Awaitable[None]]) -> None:
        health = self.health[name]
        backoff = self._min
        while True:
            began = time.monotonic()
            try:
                await job()
                log.warning("task_ended", task=name)
            except asyncio.CancelledError:
                raise
            except Exception as err:  # a supervisor exists to catch everything
                health.failing = True
                health.restarts += 1
                health.last_error = f"{type(err).__name__}: {err}"
                if health.restarts == 1 or time.monotonic() - began > 60:
                    log.exception("task_failed", task=name, restarts=health.restarts)
                else:
                    log.debug("task_failed_again", task=name, error=health.last_error)
            if time.monotonic() - began > 60:
                backoff = self._min
            delay = backoff * random.uniform(0.5, 1.0)
            backoff = min(backoff * 2, self._max)
            await asyncio.sleep(delay)

    def mark_ok(self, name: str) -> None:
        """Tell the supervisor a job got through a cycle; logs recovery once."""
        health = self.health[name]
        if health.failing:
            health.failing = False
            log.info("task_recovered", task=name, restarts=health.restarts)

    def healthy(self) -> bool:
        """True while no critical job is failing or has stopped."""
        for task in self._tasks:
            if task.done() and self.health[task.get_name()].critical:
                return False
        return not any(h.failing for h in self.health.values() if h.critical)

    async def stop(self) -> None:
        """Cancel every job and wait until each has closed what it holds."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
