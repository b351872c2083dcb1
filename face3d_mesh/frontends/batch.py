"""Batch reconstruction: every photo of a folder or glob to mesh files, resumably.

One bad file never stops a batch: it is reported, skipped and listed in the summary
(``summary.json`` and ``summary.csv`` in the output folder). Outputs are written atomically
and each input's outputs are recorded in a small marker file once all of them are
complete, so a rerun after an interruption skips exactly the finished inputs (unless
``overwrite``) and never trusts a half-written mesh.
"""

from __future__ import annotations

import csv
import glob
import io
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .._atomic import write_atomically
from ..config import ReconstructionConfig
from ..errors import Face3DError, ImageError, OutputError, UsageError

__all__ = ["BatchItem", "find_inputs", "reconstruct_batch", "run_batch", "EXIT_SOME_FAILED"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")
#: Exit code of ``face3d-mesh batch`` when at least one input failed.
EXIT_SOME_FAILED = 7
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
    seconds: float = 0.0
    timings: dict = field(default_factory=dict)
    outputs: list = field(default_factory=list)


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


def _output_stems(files: list[Path]) -> dict[Path, str]:
    """Output names derived from inputs; inputs sharing a stem keep their extension."""
    counts: dict[str, int] = {}
    for f in files:
        counts[f.stem] = counts.get(f.stem, 0) + 1
    return {f: f.stem if counts[f.stem] == 1 else f"{f.stem}_{f.suffix.lstrip('.')}" for f in files}


@dataclass(frozen=True)
class _Job:
    file: str
    stem: str
    out_dir: str
    fmt: str
    solid: bool
    base_mm: float
    width_mm: float | None
    all_faces: bool
    save_depth: bool
    config: ReconstructionConfig


def _marker(job: _Job) -> Path:
    return Path(job.out_dir) / _MARKERS / f"{job.stem}.json"


def _is_complete(job: _Job) -> bool:
    marker = _marker(job)
    try:
        record = json.loads(marker.read_text())
    except (OSError, ValueError):
        return False
    return all(
        (Path(job.out_dir) / name).is_file() and (Path(job.out_dir) / name).stat().st_size == size
        for name, size in record.get("outputs", {}).items()
    )


def _process(job: _Job, done=None) -> BatchItem:
    """Reconstruct one input and write its outputs (runs in a worker process).

    ``done``: the reconstruction (or the error) when it was already made in a GPU batch.
    """
    from ..depth_io import save_depth
    from ..image import load_image
    from ..landmarks import detect_faces
    from ..pipeline import reconstruct

    item = BatchItem(file=job.file)
    start = time.perf_counter()
    try:
        if isinstance(done, Exception):
            raise done
        if done is not None:
            image, indices = None, [job.config.face]
        else:
            image = load_image(job.file)
            if job.all_faces:
                indices = list(range(len(detect_faces(image, source=job.file, thorough=True))))
            else:
                indices = [job.config.face]
        out_dir = Path(job.out_dir)
        written = []
        for index in indices:
            if done is not None:
                rec = done
            else:
                rec = reconstruct(image, config=job.config.replace(face=index), name=job.file)
            suffix = f"_face{index}" if job.all_faces else ""
            target = out_dir / f"{job.stem}{suffix}.{job.fmt}"
            written += rec.save(target, solid=job.solid, base_mm=job.base_mm, width_mm=job.width_mm)
            if job.save_depth:
                written.append(save_depth(rec.depth_mm, out_dir / f"{job.stem}{suffix}_depth.npy"))
            if index == indices[0]:
                item.faces = rec.faces_found
                item.scale_source = rec.scale.source
                item.mm_per_px = rec.scale.mm_per_px
                item.fit_residual_mm = rec.depth_info.get("residual_mm")
                item.depth_backend = rec.depth_info.get("backend", "")
                item.timings = {k: round(v, 4) for k, v in rec.timings.items()}
        item.outputs = [p.name for p in written]
        marker = _marker(job)
        marker.parent.mkdir(exist_ok=True)
        record = {"file": job.file, "outputs": {p.name: p.stat().st_size for p in written}}
        write_atomically({marker: json.dumps(record).encode()})
        item.status = "ok"
    except Face3DError as exc:
        item.status, item.error = "failed", " ".join(str(exc).split())
    except Exception as exc:  # one bad file never stops the batch
        item.status, item.error = "failed", f"internal error: {type(exc).__name__}: {exc}"
    item.seconds = round(time.perf_counter() - start, 3)
    return item


def _network_batches(config: ReconstructionConfig, all_faces: bool, force: bool) -> bool:
    """Whether to run a neural depth model on batches of faces in this process: when a GPU
    (CUDA or Apple MPS) would run it (or ``force``), one face per photo."""
    from ..depth._backends import resolve_backend

    if all_faces or resolve_backend(config)[0] not in ("midas", "fused"):
        return False
    if force:
        return True
    from ..depth._estimator import resolve_device

    return resolve_device(config.device).type in ("cuda", "mps")


def _limit_threads(threads: int) -> None:
    """Worker start-up: share the cores between workers instead of oversubscribing them
    (OpenCV, OpenMP/BLAS and torch would each start one thread per core per worker)."""
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = str(threads)
    import cv2

    cv2.setNumThreads(threads)


def _process_in_batches(jobs, config, batch_size, on_done):
    from ..pipeline import reconstruct_many

    for start in range(0, len(jobs), batch_size):
        chunk = jobs[start : start + batch_size]
        t0 = time.perf_counter()
        recs = reconstruct_many([job.file for job in chunk], config=config, batch_size=batch_size)
        per_item = (time.perf_counter() - t0) / len(chunk)
        for job, rec in zip(chunk, recs, strict=True):
            item = _process(job, done=rec)
            item.seconds = round(item.seconds + per_item, 3)
            on_done(item)


def reconstruct_batch(
    inputs: list[Path],
    out_dir,
    *,
    fmt: str = "stl",
    config: ReconstructionConfig | None = None,
    solid: bool = False,
    base_mm: float = 3.0,
    width_mm: float | None = None,
    all_faces: bool = False,
    save_depth: bool = False,
    workers: int = 1,
    overwrite: bool = False,
    network_batch: int | None = None,
    on_item=None,
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
    solid, base_mm, width_mm : keyword-only
        As for :meth:`Reconstruction.save`.
    all_faces : bool, keyword-only
        One mesh per face (``NAME_face0.stl``...) instead of the largest face only.
    save_depth : bool, keyword-only
        Also write each depth map as ``NAME_depth.npy`` (float32 mm).
    workers : int, keyword-only
        Worker processes (models are loaded once per worker).
    overwrite : bool, keyword-only
        Redo inputs whose outputs already exist.
    network_batch : int or None, keyword-only
        Faces per neural-network call. None: 4 when a GPU runs a neural depth backend
        (then the batch runs in this process, not in workers), otherwise no batching.
    on_item : callable, optional, keyword-only
        Called with each finished :class:`BatchItem`.
    """
    from ..exporters import supported_extensions

    formats = [ext[1:] for ext in supported_extensions()]
    if fmt not in formats:
        raise UsageError(f"unknown format {fmt!r}: use {', '.join(formats)}")
    if workers < 1:
        raise UsageError("workers must be at least 1")
    config = config or ReconstructionConfig()
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{out}: cannot create output folder ({exc.strerror})") from None
    stems = _output_stems(inputs)
    jobs = [
        _Job(
            str(f), stems[f], str(out), fmt, solid, base_mm, width_mm, all_faces, save_depth, config
        )
        for f in inputs
    ]
    results: dict[str, BatchItem] = {}
    todo = []
    for job in jobs:
        if not overwrite and _is_complete(job):
            record = json.loads(_marker(job).read_text())
            item = BatchItem(file=job.file, status="skipped", outputs=list(record["outputs"]))
            results[job.file] = item
            if on_item:
                on_item(item)
        else:
            todo.append(job)

    def finished(item):
        results[item.file] = item
        if on_item:
            on_item(item)

    if todo and _network_batches(config, all_faces, force=network_batch is not None):
        _process_in_batches(todo, config, network_batch or 4, finished)
    elif workers == 1 or len(todo) <= 1:
        for job in todo:
            finished(_process(job))
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        # spawn: MediaPipe and torch hold threads that a fork would copy mid-flight.
        context = multiprocessing.get_context("spawn")
        threads = max(1, (os.cpu_count() or 1) // workers)
        with ProcessPoolExecutor(
            max_workers=workers,
            mp_context=context,
            initializer=_limit_threads,
            initargs=(threads,),
        ) as pool:
            futures = {pool.submit(_process, job): job for job in todo}
            try:
                for future in as_completed(futures):
                    finished(future.result())
            except BaseException:
                pool.shutdown(wait=False, cancel_futures=True)
                raise
    return [results[job.file] for job in jobs if job.file in results]


def write_summary(items: list[BatchItem], out_dir) -> tuple[Path, Path]:
    """Write ``summary.json`` and ``summary.csv`` into ``out_dir`` (atomically)."""
    out = Path(out_dir)
    rows = [asdict(item) for item in items]
    json_path, csv_path = out / "summary.json", out / "summary.csv"
    columns = [
        "file",
        "status",
        "error",
        "faces",
        "scale_source",
        "mm_per_px",
        "fit_residual_mm",
        "depth_backend",
        "seconds",
        "timings",
        "outputs",
    ]
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
            all_faces=args.all_faces,
            save_depth=args.save_depth,
            workers=args.workers,
            overwrite=args.overwrite,
            on_item=report,
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
