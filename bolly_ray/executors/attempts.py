"""The attempts of a run: started on the backend, collected, published or retried.

A finished attempt's outputs are published into its job folder before its stage counts as
succeeded; a failed one is classified by the retry policy and either tried again after its
delay (the stage stays running) or recorded as failed, which stops its job when the stage
is critical. Every change is an event for the observers.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Hashable

from bolly_ray.core.wire import AttemptOutcome
from bolly_ray.engine.events import Observers, StageEvent
from bolly_ray.engine.joblog import working_for
from bolly_ray.engine.manifest import StageStatus
from bolly_ray.errors import WorkerLostError
from bolly_ray.executors.policy import classify, retry_delay
from bolly_ray.executors.run_state import Backend, Finished, Flight, RunState

log = logging.getLogger(__name__)

POLL_S = 0.25
"""While jobs may still come, how long a wait for attempts may keep a new job waiting."""


class Attempts:
    def __init__(self, backend: Backend, observers: Observers, state: RunState) -> None:
        self.backend, self.observers, self.state = backend, observers, state

    def collect(self, accepting: bool) -> None:
        """Wait for finished attempts and deal with each; `accepting`: jobs may still come,
        so no wait is longer than POLL_S."""
        for handle, result in self._wait(accepting):
            flight = self.state.flights.pop(handle)
            with working_for(flight.plan.job_id):
                self._finish(flight, result)

    def _wait(self, accepting: bool) -> list[Finished]:
        """Finished attempts; sleeps until the first retry is due when only retries wait."""
        timeout = self.state.wait_s(time.monotonic())
        if accepting:
            timeout = POLL_S if timeout is None else min(timeout, POLL_S)
        finished, self.state.failed_submits = self.state.failed_submits, []
        if not finished and self.state.flights:
            return self.backend.collect(list(self.state.flights), timeout)
        if not finished:
            time.sleep(POLL_S if timeout is None else timeout)
        return finished

    def launch(self, flight: Flight) -> None:
        session, plan = flight.session, flight.plan
        session.book.running(plan.stage, flight.attempt, session.chosen(plan.stage))
        self.emit(plan.job_id, plan.stage, StageStatus.RUNNING, attempt=flight.attempt,
                  runner=self.backend.runner(plan))
        scratch = flight.scratch = session.dir.new_scratch(plan.stage, flight.attempt)
        handle: Hashable
        try:
            handle = self.backend.submit(plan, scratch)
        except Exception as err:  # a submission that fails is a failed attempt
            handle = ("failed-submit", id(flight))
            self.state.failed_submits.append((handle, err))
        self.state.flights[handle] = flight

    def _finish(self, flight: Flight, result: AttemptOutcome | BaseException) -> None:
        if isinstance(result, AttemptOutcome):
            try:
                flight.session.publish(flight.plan, result, flight.started)
            except Exception as err:
                result = err
        if isinstance(result, AttemptOutcome):
            self._succeeded(flight, result)
        elif isinstance(result, KeyboardInterrupt | SystemExit):
            raise result
        else:
            self._failed(flight, result)

    def _succeeded(self, flight: Flight, result: AttemptOutcome) -> None:
        plan = flight.plan
        self.state.jobs[plan.job_id].running.discard(plan.stage)
        self.emit(plan.job_id, plan.stage, StageStatus.SUCCEEDED, attempt=flight.attempt,
                  runner=result.runner, node=result.node_ip,
                  duration_s=time.monotonic() - flight.started, metrics=result.metrics)

    def _failed(self, flight: Flight, error: BaseException) -> None:
        plan, job = flight.plan, self.state.jobs[flight.plan.job_id]
        if flight.scratch is not None:  # a failed attempt's leftovers: free the space now
            shutil.rmtree(flight.scratch, ignore_errors=True)
        message, retryable = classify(plan, error)
        delay = (retry_delay(plan.spec.retry, flight.attempt, flight.losses, error)
                 if retryable else None)
        if delay is not None:
            log.warning("%s: %s attempt %d failed, retrying in %.1f s: %s", plan.job_id,
                        plan.stage, flight.attempt, delay, message)
            lost = isinstance(error, WorkerLostError)
            self.state.retries.append((time.monotonic() + delay, Flight(
                flight.session, plan, flight.attempt + 1, flight.started,
                flight.losses + lost)))
            return
        job.running.discard(plan.stage)
        flight.session.book.failed(plan.stage, message)
        self.emit(plan.job_id, plan.stage, StageStatus.FAILED, attempt=flight.attempt,
                  runner=self.backend.runner(plan),
                  duration_s=time.monotonic() - flight.started, message=message)
        if flight.session.is_critical(plan.stage) and job.failed is None:
            job.failed = (plan.stage, message)

    def emit(self, job_id: str, stage: str, status: StageStatus, *, attempt: int = 0,
             runner: str | None = None, node: str | None = None, duration_s: float | None = None,
             message: str | None = None, metrics: dict[str, float] | None = None) -> None:
        audio = (metrics or {}).get("audio_s")
        self.observers.emit(StageEvent(
            job_id=job_id, stage=stage, status=status, attempt=attempt, runner=runner,
            node=node, duration_s=duration_s, message=message,
            audio_s=float(audio) if audio is not None else None))
