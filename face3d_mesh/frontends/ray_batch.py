"""The batch on a Ray cluster: ``face3d-mesh batch IN -o OUT --ray ADDRESS``.

The driver (this process) reads each photo and sends its bytes to one of ``workers`` Ray
actors; each actor keeps MediaPipe (and the depth model) loaded, reconstructs and returns
the bytes of the output files with the input's :class:`BatchItem`; the driver writes them
atomically with the completion record, so the cluster needs no shared filesystem and a
rerun resumes exactly as the local batch does. At most :data:`TASKS_PER_ACTOR` tasks per
actor are in flight, so the driver's memory stays flat for any number of inputs.

Faults: when an actor or its node dies, the inputs it held go to the other actors and the
dead one is replaced. Only the input it was running counts the death; one whose worker
died :data:`MAX_ATTEMPTS` times is reported failed. Ray is imported only when a batch
runs with ``ray`` (here and in ``_ray_connect``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import Face3DError, UsageError
from ._batch_jobs import (
    BatchItem,
    Job,
    limit_threads,
    neural_backend,
    render_job,
    render_many,
    write_outputs,
)
from ._ray_connect import connect, import_ray, reason

__all__ = ["run_on_ray", "MAX_ATTEMPTS", "START_GRACE_S", "TASKS_PER_ACTOR"]

#: Tasks sent ahead to each actor: one running, one waiting (no idle round trips).
TASKS_PER_ACTOR = 2
#: Times an input may be running when its worker dies before it is reported failed.
MAX_ATTEMPTS = 3
#: Seconds the first actor to start waits for the other first ones before the batch begins,
#: so that the work is shared from the first input on (actors start a few seconds apart).
START_GRACE_S = 10.0
#: Consecutive actor start failures after which no more are started.
_MAX_START_FAILURES = 3
_log = logging.getLogger(__name__)


class _Worker:
    """A Ray actor: MediaPipe and the depth model stay loaded; jobs come in as photo bytes
    and go back as ``(BatchItem, {file name: bytes})``. Nothing stays on its machine: each
    photo is held in a memory file only while it is read."""

    def __init__(self, index: int, threads: int):
        import importlib

        import numpy as np
        import ray

        from ..landmarks import detect_faces

        limit_threads(threads)
        self._node = ray.get_runtime_context().get_node_id()
        self._name = f"w{index}:pid{os.getpid()}"
        # What the stages import on first use, loaded now rather than in the first input.
        for module in ("face3d_mesh.pipeline", "scipy.sparse.linalg"):
            importlib.import_module(module)
        try:  # MediaPipe's graphs are built on first use
            detect_faces(np.full((64, 64, 3), 255, np.uint8))
        except Face3DError:
            pass

    def ready(self) -> tuple[str, str]:
        return self._node, self._name

    def render(self, jobs: list[Job], photos: list[bytes], batch_size: int) -> list[tuple]:
        with _photo_files(photos) as paths:
            if batch_size > 1:
                results = _render_together(jobs, paths, batch_size)
            else:
                results = [render_job(j, source=p) for j, p in zip(jobs, paths, strict=True)]
        for job, path, (item, _) in zip(jobs, paths, results, strict=True):
            item.error = item.error.replace(str(path), job.file)
            item.node, item.worker = self._node, self._name
        return results


@contextlib.contextmanager
def _photo_files(photos: list[bytes]):
    """Paths holding ``photos`` while the block runs: files in memory where Linux has them
    (``/proc/self/fd/N`` of a memfd: gone with the process, even a killed one), else in a
    temporary folder."""
    if not hasattr(os, "memfd_create"):
        with tempfile.TemporaryDirectory(prefix="face3d_mesh_") as folder:
            paths = [Path(folder, f"photo{i}") for i in range(len(photos))]
            for path, data in zip(paths, photos, strict=True):
                path.write_bytes(data)
            yield paths
        return
    fds = []
    try:
        for i, data in enumerate(photos):
            fds.append(os.memfd_create(f"photo{i}"))
            with open(fds[-1], "wb", closefd=False) as file:
                file.write(data)
        yield [Path(f"/proc/self/fd/{fd}") for fd in fds]
    finally:
        for fd in fds:
            os.close(fd)


def _failed(job: Job, error: str) -> tuple[BatchItem, dict]:
    return BatchItem(file=job.file, status="failed", error=error), {}


def _render_together(jobs, paths, batch_size):
    try:
        return render_many(jobs, config=jobs[0].config, batch_size=batch_size, sources=paths)
    except Face3DError as exc:  # the network could not run at all: every input says why
        return [_failed(job, " ".join(str(exc).split())) for job in jobs]


@dataclass
class _Task:
    jobs: list
    deaths: int = 0  # times its worker died while running it


@dataclass
class _Actor:
    handle: object
    index: int
    node: str = ""
    name: str = ""
    sent: deque = field(default_factory=deque)  # its tasks' refs, oldest (running) first


def _lost_errors(ray) -> tuple:
    """The errors that mean a worker, its node or a result was lost (not a task error)."""
    e = ray.exceptions
    return (
        e.RayActorError,
        e.WorkerCrashedError,
        e.NodeDiedError,
        e.ObjectLostError,
        e.LocalRayletDiedError,
        e.GetTimeoutError,
    )


class _Scheduler:
    """Sends tasks to the actors, writes results as they come back, survives lost actors."""

    def __init__(
        self, ray, tasks, on_done, *, workers, actor_options, threads, batch_size, start_timeout_s
    ):
        self.ray, self.on_done, self.workers = ray, on_done, workers
        self.queue = deque(tasks)
        self.actor_class = ray.remote(_Worker).options(**actor_options)
        self.resources = f"{actor_options['num_cpus']:g} CPU, {actor_options['num_gpus']:g} GPU"
        self.threads, self.batch_size, self.start_timeout_s = threads, batch_size, start_timeout_s
        self.ready: dict[int, _Actor] = {}
        self.starting: dict = {}  # ready() ref -> _Actor
        self.owner: dict = {}  # task ref -> (_Task, _Actor)
        self.actors: list[_Actor] = []
        self.started_any, self.start_failures, self.start_error = False, 0, ""
        self.stalled_since = self.first_ready_at = None
        self.loss = ""

    def run(self) -> None:
        for _ in range(self.workers):
            self._start_actor()
        try:
            while self.queue or self.owner:
                self._send()
                waiting = [*self.owner, *self.starting]
                if not waiting or self._stalled():
                    self._give_up()
                    break
                done, _ = self.ray.wait(waiting, num_returns=1, timeout=1.0)
                for ref in done:
                    if ref in self.starting:
                        self._started(ref)
                    elif ref in self.owner:
                        self._returned(ref)
        finally:
            for actor in self.actors:
                self._kill(actor)

    def _start_actor(self) -> None:
        index = len(self.actors)
        actor = _Actor(self.actor_class.remote(index, self.threads), index)
        self.actors.append(actor)
        self.starting[actor.handle.ready.remote()] = actor

    def _kill(self, actor: _Actor) -> None:
        try:
            self.ray.kill(actor.handle)
        except Exception:  # already gone
            pass

    def _started(self, ref) -> None:
        actor = self.starting.pop(ref)
        try:
            actor.node, actor.name = self.ray.get(ref)
        except self.ray.exceptions.RayError as exc:
            self.start_failures += 1
            self.start_error = reason(exc, last=True)
            self._kill(actor)
            if self.start_failures < _MAX_START_FAILURES and (self.queue or self.owner):
                self._start_actor()
            return
        self.started_any, self.start_failures = True, 0
        self.first_ready_at = self.first_ready_at or time.monotonic()
        self.ready[actor.index] = actor

    def _send(self) -> None:
        if self._holding():
            return
        for actor in sorted(self.ready.values(), key=lambda a: len(a.sent)):
            while self.queue and len(actor.sent) < TASKS_PER_ACTOR:
                task = self.queue.popleft()
                photos = self._read(task)
                if photos:
                    ref = actor.handle.render.remote(task.jobs, photos, self.batch_size)
                    self.owner[ref] = (task, actor)
                    actor.sent.append(ref)

    def _holding(self) -> bool:
        """Whether to hold the first tasks back while other first actors still start."""
        if self.first_ready_at is None or time.monotonic() - self.first_ready_at > START_GRACE_S:
            return False
        return any(actor.index < self.workers for actor in self.starting.values())

    def _read(self, task: _Task) -> list[bytes]:
        """The photos' bytes; a file this process cannot read fails here, as it would
        locally (with the same message)."""
        photos, readable = [], []
        for job in task.jobs:
            try:
                photos.append(Path(job.file).read_bytes())
                readable.append(job)
            except OSError:
                self.on_done(write_outputs(job, *render_job(job)))
        task.jobs = readable
        return photos

    def _outcome(self, ref, timeout=None):
        """The task's ``(item, files)`` list, or None when its worker was lost."""
        task, _ = self.owner[ref]
        try:
            return self.ray.get(ref, timeout=timeout)
        except _lost_errors(self.ray) as exc:
            self.loss = reason(exc)
            return None
        except self.ray.exceptions.RayError as exc:
            return [_failed(job, f"internal error: {reason(exc)}") for job in task.jobs]

    def _returned(self, ref) -> None:
        results = self._outcome(ref)
        if results is None:
            self._lost(self.owner[ref][1])
        else:
            self._write(ref, results)

    def _write(self, ref, results) -> None:
        task, actor = self.owner.pop(ref)
        actor.sent.remove(ref)
        for job, (item, files) in zip(task.jobs, results, strict=True):
            self.on_done(write_outputs(job, item, files))

    def _lost(self, actor: _Actor) -> None:
        """The actor died: keep what it finished, retry the rest, start a replacement.
        Only the oldest unfinished task (the one it was running) counts the death."""
        self.ready.pop(actor.index, None)
        self._kill(actor)
        _log.warning(
            "face3d-mesh: Ray worker %s on node %s was lost (%s); its inputs go to other workers",
            actor.name,
            actor.node,
            self.loss,
        )
        charged = False
        for ref in list(actor.sent):
            results = self._outcome(ref, timeout=30)
            if results is not None:
                self._write(ref, results)
                continue
            task, _ = self.owner.pop(ref)
            actor.sent.remove(ref)
            self._retry(task, charge=not charged)
            charged = True
        if self.queue or self.owner:
            self._start_actor()

    def _retry(self, task: _Task, *, charge: bool) -> None:
        if len(task.jobs) > 1:  # a network batch: its inputs again one by one
            self.queue.extendleft(_Task([job]) for job in reversed(task.jobs))
            return
        task.deaths += charge
        if task.deaths < MAX_ATTEMPTS:
            self.queue.appendleft(task)
            return
        job = task.jobs[0]
        error = (
            f"{job.file}: its Ray worker died {task.deaths} times while reconstructing it "
            f"(last: {self.loss})"
        )
        self.on_done(_failed(job, error)[0])

    def _stalled(self) -> bool:
        """No actor to send the waiting tasks to, and none will come (soon enough)."""
        if self.ready or self.owner or not self.queue:
            self.stalled_since = None
            return False
        if not self.starting:
            return True
        now = time.monotonic()
        self.stalled_since = self.stalled_since or now
        return now - self.stalled_since > self.start_timeout_s

    def _give_up(self) -> None:
        reason = self.start_error or (
            f"no Ray worker got {self.resources} within {self.start_timeout_s:g} s"
        )
        if not self.started_any:
            raise UsageError(f"cannot start Ray workers: {reason}")
        while self.queue:
            for job in self.queue.popleft().jobs:
                self.on_done(_failed(job, f"{job.file}: not run: {reason}")[0])


def _check_fits(total: dict, cpus: float, gpus: float) -> None:
    have = total.get("CPU", 0), total.get("GPU", 0)
    if cpus > have[0] or gpus > have[1]:
        raise UsageError(
            f"a Ray worker needs {cpus:g} CPU and {gpus:g} GPU; this machine has "
            f"{have[0]:g} CPU and {have[1]:g} GPU (see --cpus-per-worker, --gpus-per-worker)"
        )


def _default_workers(total: dict, cpus: float, gpus: float) -> int:
    if gpus > 0:
        return max(1, int(total.get("GPU", 0) // gpus))
    return max(1, int(total.get("CPU", 1) // cpus))


def run_on_ray(
    todo: list[Job],
    on_done,
    *,
    address: str,
    workers: int | None = None,
    cpus_per_worker: float = 1.0,
    gpus_per_worker: float | None = None,
    network_batch: int | None = None,
    connect_timeout_s: float = 10.0,
    start_timeout_s: float = 300.0,
) -> None:
    """Run batch jobs on Ray actors; ``on_done`` gets each written :class:`BatchItem` here.

    Parameters
    ----------
    todo : list of Job
        The jobs to run (all with the same config).
    on_done : callable
        Called in this process with each finished item, after its files are written.
    address : str
        ``"local"``, ``"auto"``, ``"ray://HOST[:10001]"`` or ``"HOST[:6379]"``. A process
        already connected to Ray (``ray.init`` done) uses that connection as it is (its
        workers must be able to import face3d_mesh).
    workers : int or None
        Actors (default: one per ``gpus_per_worker`` GPUs, else per ``cpus_per_worker``
        CPUs of the cluster; never more than there are tasks).
    cpus_per_worker, gpus_per_worker : float
        Resources each actor reserves; ``gpus_per_worker`` None: 1 when the cluster has GPUs
        and the depth backend is neural, else 0.
    network_batch : int or None
        Inputs per task, their depth network run as one batch. None: 4 for a neural
        backend on GPUs, else 1 (never batched with ``all_faces``).
    connect_timeout_s, start_timeout_s : float
        Seconds to wait for the cluster to answer, and for a first actor to start.

    Raises
    ------
    UsageError
        Ray not installed, the cluster unreachable, or no actor could start.
    """
    if not address or not address.strip() or " " in address.strip():
        raise UsageError(
            f"--ray needs an address: local, auto, ray://HOST:10001 or HOST:6379, got {address!r}"
        )
    if not cpus_per_worker > 0:
        raise UsageError(f"cpus per worker must be > 0, got {cpus_per_worker}")
    if gpus_per_worker is not None and not gpus_per_worker >= 0:
        raise UsageError(f"gpus per worker must be >= 0, got {gpus_per_worker}")
    if network_batch is not None and network_batch < 1:
        raise UsageError("network_batch must be at least 1")
    ray = import_ray()
    owns = connect(ray, address, timeout_s=connect_timeout_s)
    try:
        total = ray.cluster_resources()
        neural = neural_backend(todo[0].config)
        if gpus_per_worker is None:
            gpus_per_worker = 1.0 if neural and total.get("GPU", 0) > 0 else 0.0
        if address == "local":  # no autoscaler will add what this machine lacks
            _check_fits(total, cpus_per_worker, gpus_per_worker)
        batch = network_batch or (4 if neural and gpus_per_worker > 0 else 1)
        batch = 1 if todo[0].all_faces else batch
        tasks = [_Task(todo[i : i + batch]) for i in range(0, len(todo), batch)]
        options = dict(
            num_cpus=cpus_per_worker, num_gpus=gpus_per_worker, max_restarts=0, max_task_retries=0
        )
        workers = workers or _default_workers(total, cpus_per_worker, gpus_per_worker)
        _Scheduler(
            ray,
            tasks,
            on_done,
            workers=min(workers, len(tasks)),
            actor_options=options,
            threads=max(1, int(cpus_per_worker)),
            batch_size=batch,
            start_timeout_s=start_timeout_s,
        ).run()
    finally:
        if owns:
            ray.shutdown()
