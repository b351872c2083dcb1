"""One batch input from photo to files, shared by the local and the Ray batch runners.

A job is split in two so that the work and the writing may run on different machines:
:func:`render_job` reconstructs one photo into the bytes of its output files (in a worker
process or a Ray actor) and :func:`write_outputs` puts them into the output folder
atomically, followed by the input's completion record (in the worker, or in the Ray
driver: the cluster needs no shared filesystem). A rerun trusts an output only when its
record lists it with the right size.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from .._atomic import write_atomically
from ..config import ReconstructionConfig
from ..errors import Face3DError

__all__ = ["BatchItem", "Job", "plan_jobs", "render_job", "render_many", "write_outputs"]

_MARKERS = ".face3d_mesh_done"


@dataclass
class BatchItem:
    """The outcome for one input file (a row of the summary)."""

    file: str
    status: str = "pending"  # ok | skipped | failed
    error: str = ""
    faces: int = 0
    scale_source: str = ""
    mm_per_px: float | None = None
    fit_residual_mm: float | None = None
    depth_backend: str = ""
    focal_px: float | None = None  # the photo's focal length, pixels
    focal_source: str = ""  # exif | user | default (a guess: a less accurate shape)
    notes: str = ""  # Reconstruction.notes, joined by "; " (e.g. the face is small)
    seconds: float = 0.0
    node: str = ""  # the Ray node that ran it (empty for a local batch)
    worker: str = ""  # the Ray actor that ran it
    timings: dict = field(default_factory=dict)
    outputs: list = field(default_factory=list)


@dataclass(frozen=True)
class Job:
    """One input and everything needed to reconstruct and name its outputs."""

    file: str
    stem: str
    out_dir: str
    fmt: str
    solid: bool
    base_mm: float
    width_mm: float | None
    edge_mm: float
    all_faces: bool
    save_depth: bool
    config: ReconstructionConfig


def _output_stems(files: list[Path]) -> dict[Path, str]:
    """Output names derived from inputs; inputs sharing a stem keep their extension."""
    counts: dict[str, int] = {}
    for f in files:
        counts[f.stem] = counts.get(f.stem, 0) + 1
    return {f: f.stem if counts[f.stem] == 1 else f"{f.stem}_{f.suffix.lstrip('.')}" for f in files}


def plan_jobs(inputs: list[Path], out_dir: Path, *, overwrite: bool, **options):
    """Jobs for ``inputs`` (in order), the items of those already complete, and the rest.

    ``options``: the :class:`Job` fields ``fmt`` to ``config``. Returns ``(jobs, skipped,
    todo)``: all jobs, a :class:`BatchItem` (status ``skipped``) per complete one unless
    ``overwrite``, and the jobs still to run.
    """
    stems = _output_stems(inputs)
    jobs = [Job(str(f), stems[f], str(out_dir), **options) for f in inputs]
    _refuse_to_overwrite_inputs(jobs, inputs)
    skipped, todo = [], []
    for job in jobs:
        record = None if overwrite else _completion_record(job)
        if record is None:
            todo.append(job)
        else:
            skipped.append(BatchItem(file=job.file, status="skipped", outputs=list(record)))
    return jobs, skipped, todo


def _refuse_to_overwrite_inputs(jobs: list[Job], inputs: list[Path]) -> None:
    """:class:`~face3d_mesh.errors.UsageError` when a job's output would replace one of the
    inputs: with the output folder the photos' own, ``a.png``'s OBJ texture is
    ``a_texture.png``, which may be another photo of the batch."""
    import os

    from ..errors import UsageError
    from ..exporters import output_paths

    photos = {os.path.normcase(os.path.realpath(f)): f for f in inputs}
    for job in jobs:
        if job.all_faces:  # (names with _face0, _face1...: not known before the photo is read)
            continue
        planned = output_paths(Path(job.out_dir) / f"{job.stem}.{job.fmt}", textured=not job.solid)
        if job.save_depth:
            planned.append(Path(job.out_dir) / f"{job.stem}_depth.npy")
        for out in planned:
            photo = photos.get(os.path.normcase(os.path.realpath(out)))
            if photo is not None:
                raise UsageError(
                    f"{out}, an output of {job.file}, is also an input photo; "
                    "use another output folder"
                )


def _marker(job: Job) -> Path:
    return Path(job.out_dir) / _MARKERS / f"{job.stem}.json"


def _completion_record(job: Job) -> dict | None:
    """``{output name: size}`` when every output of ``job`` is in place, else None."""
    try:
        outputs = json.loads(_marker(job).read_text())["outputs"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    out = Path(job.out_dir)
    for name, size in outputs.items():
        if not ((out / name).is_file() and (out / name).stat().st_size == size):
            return None
    return outputs


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def render_job(job: Job, *, source=None, done=None) -> tuple[BatchItem, dict[str, bytes]]:
    """Reconstruct one input into the bytes of its output files; nothing is written.

    Parameters
    ----------
    job : Job
    source : str or os.PathLike, optional, keyword-only
        Where to read the photo (default ``job.file``; e.g. a worker's local copy of it).
        Messages still name ``job.file``, except those about the file itself.
    done : Reconstruction or Face3DError, optional, keyword-only
        The result already made for this input in a network batch (:func:`render_many`).

    Returns
    -------
    item : BatchItem
        Status ``pending`` (ready to write) or ``failed`` with its one-line error.
    files : dict of str to bytes
        Output file names (in ``job.out_dir``) and contents, in the order to put them in
        place; empty when the input failed.
    """
    from ..depth_io import encode_depth
    from ..pipeline import find_faces, reconstruct

    item = BatchItem(file=job.file)
    files: dict[str, bytes] = {}
    start = time.perf_counter()
    try:
        if isinstance(done, Exception):
            raise done
        if done is not None:
            found, indices = None, [job.config.face]
        else:
            # found once (with the photo's EXIF focal length), then each face reconstructed
            found = find_faces(
                job.file if source is None else source, name=job.file, thorough=job.all_faces
            )
            indices = list(range(len(found))) if job.all_faces else [job.config.face]
        for index in indices:
            if done is not None:
                rec = done
            else:
                rec = reconstruct(found, config=job.config.replace(face=index), name=job.file)
            name = f"{job.stem}_face{index}" if job.all_faces else job.stem
            meshes = rec.encode(
                Path(f"{name}.{job.fmt}"),
                solid=job.solid,
                base_mm=job.base_mm,
                width_mm=job.width_mm,
                edge_mm=job.edge_mm,
            )
            files.update((path.name, data) for path, data in meshes.items())
            if job.save_depth:
                files[f"{name}_depth.npy"] = encode_depth(rec.depth_mm, f"{name}_depth.npy")
            if index == indices[0]:
                _describe(item, rec)
    except Face3DError as exc:
        item.status, item.error, files = "failed", _one_line(exc), {}
    except Exception as exc:  # one bad file never stops the batch
        item.status, files = "failed", {}
        item.error = f"internal error: {type(exc).__name__}: {_one_line(exc)}"
    item.seconds = round(time.perf_counter() - start, 3)
    return item, files


def _describe(item: BatchItem, rec) -> None:
    item.faces = rec.faces_found
    item.scale_source = rec.scale.source
    item.mm_per_px = rec.scale.mm_per_px
    item.fit_residual_mm = rec.depth_info.get("residual_mm")
    item.depth_backend = rec.depth_info.get("backend", "")
    camera = rec.camera
    item.focal_px = None if camera["focal_px"] is None else round(float(camera["focal_px"]), 1)
    item.focal_source = camera["focal_source"] or ""
    item.notes = "; ".join(rec.notes)
    item.timings = {k: round(v, 4) for k, v in rec.timings.items()}


def render_many(jobs: list[Job], *, config, batch_size: int, sources=None) -> list[tuple]:
    """:func:`render_job` for several one-face jobs, the depth network run on batches.

    ``sources``: where to read each photo (default the jobs' files). Returns one
    ``(item, files)`` per job, in order; each item's time includes its share of the batch.
    """
    from ..pipeline import reconstruct_many

    start = time.perf_counter()
    sources = [job.file for job in jobs] if sources is None else sources
    recs = reconstruct_many(sources, config=config, batch_size=batch_size)
    share = (time.perf_counter() - start) / max(len(jobs), 1)
    results = []
    for job, rec in zip(jobs, recs, strict=True):
        item, files = render_job(job, done=rec)
        item.seconds = round(item.seconds + share, 3)
        results.append((item, files))
    return results


def write_outputs(job: Job, item: BatchItem, files: dict[str, bytes]) -> BatchItem:
    """Put a rendered input's files in place (all or none), then its completion record.

    Sets ``item.status`` to ``ok`` (and ``item.outputs``), or ``failed`` when a file cannot
    be written; a failed render is returned as it is. ``item.seconds`` gains the writing.
    """
    if item.status == "failed":
        return item
    start = time.perf_counter()
    out, marker = Path(job.out_dir), _marker(job)
    record = {"file": job.file, "outputs": {name: len(data) for name, data in files.items()}}
    contents = {out / name: data for name, data in files.items()}
    contents[marker] = json.dumps(record).encode()  # last: only complete outputs count
    try:
        marker.parent.mkdir(exist_ok=True)
        write_atomically(contents)
    except Face3DError as exc:
        item.status, item.error = "failed", _one_line(exc)
    except OSError as exc:
        item.status, item.error = "failed", f"cannot create {marker.parent}: {exc.strerror}"
    else:
        item.status, item.outputs = "ok", list(files)
    item.seconds = round(item.seconds + time.perf_counter() - start, 3)
    return item


def run_job(job: Job) -> BatchItem:
    """Render and write one job here (the local runner, in this or a worker process)."""
    return write_outputs(job, *render_job(job))


def neural_backend(config: ReconstructionConfig) -> bool:
    """Whether ``config`` runs a neural depth network (``midas`` or ``fused``)."""
    from ..depth._backends import resolve_backend

    return resolve_backend(config)[0] in ("midas", "fused")


def limit_threads(threads: int) -> None:
    """Worker start-up: share the cores between workers instead of oversubscribing them
    (OpenCV, OpenMP/BLAS and torch would each start one thread per core per worker)."""
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = str(threads)
    import cv2

    cv2.setNumThreads(threads)
