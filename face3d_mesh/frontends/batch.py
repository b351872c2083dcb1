"""Batch reconstruction: every photo of a folder or glob to mesh files, resumably.

One bad file never stops a batch: it is reported, skipped and listed in the summary
(``summary.json`` and ``summary.csv`` in the output folder). Outputs are written atomically
and each input's outputs are recorded in a small marker file once all of them are
complete, so a rerun after an interruption skips exactly the finished inputs (unless
``overwrite``) and never trusts a half-written mesh.

The inputs run in this process, in worker processes, or on a Ray cluster
(:mod:`face3d_mesh.frontends.ray_batch`); each job's steps are in ``_batch_jobs``.
"""

from __future__ import annotations

import csv
import glob
import io
import json
import os
import sys
import time
from dataclasses import asdict, fields
from pathlib import Path

from .._atomic import write_atomically
from ..config import ReconstructionConfig
from ..errors import ImageError, OutputError, UsageError
from ._batch_jobs import (
    BatchItem,
    limit_threads,
    neural_backend,
    plan_jobs,
    render_many,
    run_job,
    write_outputs,
)

__all__ = [
    "BatchItem",
    "find_inputs",
    "reconstruct_batch",
    "run_batch",
    "write_summary",
    "EXIT_SOME_FAILED",
]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")
#: Exit code of ``face3d-mesh batch`` when at least one input failed.
EXIT_SOME_FAILED = 7


def find_inputs(pattern: str) -> list[Path]:
    """Image files named by a folder (its images, sorted) or a glob pattern (its matches).

    Raises
    ------
    ImageError
        Nothing matches.
    """
    path = Path(pattern)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
    elif path.is_file():
        files = [path]
    else:
        files = sorted(Path(p) for p in glob.glob(pattern, recursive=True) if Path(p).is_file())
    if not files:
        raise ImageError(f"{pattern}: no input images found")
    return files


def _network_batches(config: ReconstructionConfig, all_faces: bool, force: bool) -> bool:
    """Whether to run a neural depth model on batches of faces in this process: when a GPU
    (CUDA or Apple MPS) would run it (or ``force``), one face per photo."""
    if all_faces or not neural_backend(config):
        return False
    if force:
        return True
    from ..depth._estimator import resolve_device

    return resolve_device(config.device).type in ("cuda", "mps")


def _process_in_batches(jobs, config, batch_size, on_done):
    for start in range(0, len(jobs), batch_size):
        chunk = jobs[start : start + batch_size]
        rendered = render_many(chunk, config=config, batch_size=batch_size)
        for job, (item, files) in zip(chunk, rendered, strict=True):
            on_done(write_outputs(job, item, files))


def reconstruct_batch(
    inputs: list[Path],
    out_dir,
    *,
    fmt: str = "stl",
    config: ReconstructionConfig | None = None,
    solid: bool = False,
    base_mm: float = 3.0,
    width_mm: float | None = None,
    edge_mm: float = 0.0,
    all_faces: bool = False,
    save_depth: bool = False,
    workers: int | None = None,
    overwrite: bool = False,
    network_batch: int | None = None,
    on_item=None,
    ray: str | None = None,
    cpus_per_worker: float = 1.0,
    gpus_per_worker: float | None = None,
) -> list[BatchItem]:
    """Reconstruct many photos into ``out_dir``; returns one :class:`BatchItem` per input.

    Parameters
    ----------
    inputs : list of pathlib.Path
        Image files.
    out_dir : str or os.PathLike
        Output folder (created if missing).
    fmt : {"stl", "obj", "ply", "glb", "3mf"}, keyword-only
        Output format (an extension of :data:`face3d_mesh.exporters.EXPORTERS`, no dot).
    config : ReconstructionConfig, keyword-only
    solid, base_mm, width_mm, edge_mm : keyword-only
        As for :meth:`Reconstruction.save`.
    all_faces : bool, keyword-only
        One mesh per face (``NAME_face0.stl``...) instead of the largest face only.
    save_depth : bool, keyword-only
        Also write each depth map as ``NAME_depth.npy`` (float32 mm).
    workers : int or None, keyword-only
        Worker processes (default 1; models are loaded once per worker), or with ``ray``
        Ray actors (default: one per GPU of the cluster with ``gpus_per_worker``, else
        one per ``cpus_per_worker`` CPUs).
    overwrite : bool, keyword-only
        Redo inputs whose outputs already exist.
    network_batch : int or None, keyword-only
        Faces per neural-network call. None: 4 when a GPU runs a neural depth backend
        (then the local batch runs in this process, not in workers), otherwise no batching.
    on_item : callable, optional, keyword-only
        Called with each finished :class:`BatchItem`, in this process.
    ray : str or None, keyword-only
        Run on Ray: ``"local"`` (a new Ray instance on this machine, shut down after),
        ``"auto"`` (``RAY_ADDRESS`` or the running local cluster), ``"ray://HOST:10001"``
        (Ray Client) or ``"HOST:6379"``. Outputs are sent back and written here.
    cpus_per_worker, gpus_per_worker : float, keyword-only
        Ray resources per actor (``gpus_per_worker`` None: 1 when the cluster has GPUs and
        the depth backend is neural, else 0).

    Raises
    ------
    UsageError
        Bad options; with ``ray``: Ray not installed, or the cluster cannot be reached.
    OutputError
        ``out_dir`` cannot be created.
    """
    from ..exporters import supported_extensions

    formats = [ext[1:] for ext in supported_extensions()]
    if fmt not in formats:
        raise UsageError(f"unknown format {fmt!r}: use {', '.join(formats)}")
    if workers is not None and workers < 1:
        raise UsageError("workers must be at least 1")
    config = config or ReconstructionConfig()
    from ..pipeline import validate_config

    validate_config(config)  # before the output folder is made and the first photo read
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{out}: cannot create output folder ({exc.strerror})") from None
    options = dict(fmt=fmt, solid=solid, base_mm=base_mm, width_mm=width_mm, edge_mm=edge_mm)
    options.update(all_faces=all_faces, save_depth=save_depth, config=config)
    jobs, skipped, todo = plan_jobs(inputs, out, overwrite=overwrite, **options)
    results: dict[str, BatchItem] = {}

    def finished(item):
        results[item.file] = item
        if on_item:
            on_item(item)

    for item in skipped:
        finished(item)
    if todo and ray is not None:
        from .ray_batch import run_on_ray

        run_on_ray(
            todo,
            finished,
            address=ray,
            workers=workers,
            cpus_per_worker=cpus_per_worker,
            gpus_per_worker=gpus_per_worker,
            network_batch=network_batch,
        )
    elif todo and _network_batches(config, all_faces, force=network_batch is not None):
        _process_in_batches(todo, config, network_batch or 4, finished)
    elif todo:
        _run_locally(todo, workers or 1, finished)
    return [results[job.file] for job in jobs if job.file in results]


def _run_locally(todo, workers: int, finished) -> None:
    if workers == 1 or len(todo) <= 1:
        for job in todo:
            finished(run_job(job))
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    # spawn: MediaPipe and torch hold threads that a fork would copy mid-flight.
    context = multiprocessing.get_context("spawn")
    threads = max(1, (os.cpu_count() or 1) // workers)
    with ProcessPoolExecutor(
        max_workers=workers,
        mp_context=context,
        initializer=limit_threads,
        initargs=(threads,),
    ) as pool:
        futures = {pool.submit(run_job, job): job for job in todo}
        try:
            for future in as_completed(futures):
                finished(future.result())
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise


def write_summary(items: list[BatchItem], out_dir) -> tuple[Path, Path]:
    """Write ``summary.json`` and ``summary.csv`` into ``out_dir`` (atomically)."""
    out = Path(out_dir)
    rows = [asdict(item) for item in items]
    json_path, csv_path = out / "summary.json", out / "summary.csv"
    columns = [f.name for f in fields(BatchItem)]
    summary = {
        "total": len(items),
        "ok": sum(i.status == "ok" for i in items),
        "skipped": sum(i.status == "skipped" for i in items),
        "failed": sum(i.status == "failed" for i in items),
        "items": rows,
    }
    table = io.StringIO(newline="")
    writer = csv.DictWriter(table, fieldnames=columns)
    writer.writeheader()
    for row in rows:
        row = dict(row)
        row["timings"] = json.dumps(row["timings"])
        row["outputs"] = ";".join(row["outputs"])
        writer.writerow(row)
    write_atomically(
        {
            json_path: json.dumps(summary, indent=1).encode(),
            csv_path: table.getvalue().encode(),
        }
    )
    return json_path, csv_path


def run_batch(args, *, config: ReconstructionConfig) -> int:
    """The ``face3d-mesh batch`` command: returns its exit code."""
    ray = getattr(args, "ray", None)
    resources = {
        "cpus_per_worker": getattr(args, "cpus_per_worker", None),
        "gpus_per_worker": getattr(args, "gpus_per_worker", None),
    }
    if ray is None and any(value is not None for value in resources.values()):
        raise UsageError("--cpus-per-worker and --gpus-per-worker need --ray")
    if resources["cpus_per_worker"] is None:
        resources["cpus_per_worker"] = 1.0
    inputs = find_inputs(args.inputs)
    quiet = getattr(args, "quiet", False)
    done: list[BatchItem] = []
    bar = None
    if sys.stderr.isatty() and not quiet:
        from tqdm import tqdm

        bar = tqdm(total=len(inputs), unit="img", file=sys.stderr)

    def report(item: BatchItem):
        done.append(item)
        if bar is not None:
            bar.update(1)
            if item.status == "failed":
                bar.write(f"failed: {item.file}: {item.error}", file=sys.stderr)
        elif not quiet or item.status == "failed":
            detail = item.error if item.status == "failed" else ", ".join(item.outputs)
            print(
                f"[{len(done)}/{len(inputs)}] {item.status}: {item.file}"
                f"{': ' + detail if detail else ''} ({item.seconds:.1f} s)",
                file=sys.stderr,
                flush=True,
            )

    start = time.perf_counter()
    interrupted = False
    try:
        reconstruct_batch(
            inputs,
            args.output,
            fmt=args.format,
            config=config,
            solid=args.solid,
            base_mm=args.base_mm,
            width_mm=args.width_mm,
            edge_mm=args.edge_mm,
            all_faces=args.all_faces,
            save_depth=args.save_depth,
            workers=args.workers,
            overwrite=args.overwrite,
            on_item=report,
            ray=ray,
            **resources,
        )
    except KeyboardInterrupt:
        interrupted = True
    finally:
        if bar is not None:
            bar.close()
    order = {str(f): i for i, f in enumerate(inputs)}
    done.sort(key=lambda item: order.get(item.file, len(order)))
    json_path, _ = write_summary(done, args.output)
    failed = sum(item.status == "failed" for item in done)
    elapsed = time.perf_counter() - start
    if not quiet:
        ok = sum(item.status == "ok" for item in done)
        skipped = sum(item.status == "skipped" for item in done)
        print(
            f"batch: {ok} ok, {skipped} skipped, {failed} failed of {len(inputs)} in "
            f"{elapsed:.1f} s; summary: {json_path}",
            file=sys.stderr,
        )
    if interrupted:
        print("face3d-mesh: interrupted (rerun to resume)", file=sys.stderr)
        return 130
    return EXIT_SOME_FAILED if failed else 0
