"""Encode many files at once: one worker process per file, the CPU threads split between them.

Two workers with one thread each keep two cores busier than one process with two
threads (the entropy coder and file I/O are single-threaded), and never ask for
more threads than there are cores.
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

from tqdm import tqdm

from vcodec.errors import UserError
from vcodec.video import VIDEO_SUFFIXES


def expand_inputs(inputs: list[str]) -> list[Path]:
    """Files as given, folders as the videos they contain (sorted); refuses an empty result."""
    paths: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            paths += sorted(f for f in p.iterdir() if f.suffix.lower() in VIDEO_SUFFIXES and f.is_file())
        else:
            paths.append(p)
    if not paths:
        raise UserError("no input videos found")
    stems = [p.stem for p in paths]
    duplicates = {s for s in stems if stems.count(s) > 1}
    if duplicates:
        raise UserError(f"several inputs would write the same output name: {', '.join(sorted(duplicates))}")
    return paths


def _init_worker(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def _encode_one(path: Path, out: Path, kwargs: dict):
    from vcodec import api

    try:
        return path, api.encode(path, out, progress=False, **kwargs), None
    except UserError as exc:
        return path, None, str(exc)


def encode_many(inputs: list[str], out_dir: str | os.PathLike, jobs: int | None = None, progress: bool = True,
                **kwargs) -> list[tuple[Path, object, str | None]]:
    """Encode every input to OUT_DIR/<stem>.lvc; returns (input, EncodeResult or None, error or None)."""
    paths = expand_inputs(inputs)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise UserError(f"with several inputs, -o must be a directory ({out} is a file)")
    out.mkdir(parents=True, exist_ok=True)
    cores = os.cpu_count() or 1
    jobs = max(1, min(jobs or cores, len(paths), cores))
    results = []
    with ProcessPoolExecutor(jobs, initializer=_init_worker, initargs=(max(1, cores // jobs),)) as pool:
        futures = [pool.submit(_encode_one, p, out / f"{p.stem}.lvc", kwargs) for p in paths]
        for fut in tqdm(as_completed(futures), total=len(futures), desc="encode", unit="file", disable=not progress,
                        leave=False):
            results.append(fut.result())
    order = {p: i for i, p in enumerate(paths)}
    return sorted(results, key=lambda r: order[r[0]])
