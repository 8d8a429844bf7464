"""`bolly-ray serve`: the queue, the dispatcher, the watch folders and the HTTP server, put
together and run until stopped.

The executor is the batch command's (`RayExecutor`, embedded or joining `--address`; or the
in-process `LocalExecutor`), started once and fed for the service's whole life. Stopping
(Ctrl-C, SIGTERM) ends the server and the watch folders; jobs still running stay in the
queue as running and resume from their manifests at the next start.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from bolly_ray.core.job import ExecutorKind
from bolly_ray.engine.events import Observers
from bolly_ray.engine.registry import Registry
from bolly_ray.executors import Executor, LocalExecutor
from bolly_ray.ops.batch import OFFLINE_ENV
from bolly_ray.service.app import create_app
from bolly_ray.service.context import Service
from bolly_ray.service.dispatcher import Dispatcher
from bolly_ray.service.job_factory import JobFactory
from bolly_ray.service.queue import JobQueue
from bolly_ray.service.settings import ServiceSettings
from bolly_ray.service.watch import WatchFolders

log = logging.getLogger(__name__)


def build_service(settings: ServiceSettings, registry: Registry) -> Service:
    worker_env = OFFLINE_ENV if settings.offline else {}
    os.environ.update(worker_env)  # before any hub library reads it

    def executor_for(observers: Observers) -> Executor:
        if settings.executor == ExecutorKind.LOCAL:
            return LocalExecutor(registry, observers)
        from bolly_ray.executors.ray_executor import RayExecutor

        return RayExecutor(registry, observers, address=settings.address,
                           worker_env=worker_env)

    queue = JobQueue(settings.database)
    dispatcher = Dispatcher(queue, registry, executor_for, max_active=settings.max_active)
    return Service(settings, queue, dispatcher, JobFactory(settings, registry))


def serve(settings: ServiceSettings, registry: Registry) -> None:
    import uvicorn

    service = build_service(settings, registry)
    watch = WatchFolders(service, tuple(p.resolve() for p in settings.watch))
    app = create_app(service, background=[watch])
    config: dict[str, Any] = {"host": settings.host, "port": settings.port,
                              "access_log": False, "log_config": None,
                              "timeout_graceful_shutdown": 5}
    log.info("serving on http://%s:%d (state in %s)", settings.host, settings.port,
             settings.state_dir)
    uvicorn.run(app, **config)
