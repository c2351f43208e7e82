"""Run a list of stages on a datatrove executor, in a work folder that survives a kill.

Every stage is one datatrove executor (``LocalPipelineExecutor`` by default: embedded, no
server; ``SlurmPipelineExecutor`` or ``RayPipelineExecutor`` on a cluster) with its own logging
folder under ``WORK/logs/<stage>``. datatrove writes a completion marker per finished task
there and skips marked tasks on the next run, so a rerun after a kill continues from the
finished tasks. The work folder carries a fingerprint of the inputs and settings: a rerun with
other settings (or changed inputs) starts from an empty folder instead of reusing stale
results. The folder is removed when the last stage succeeds.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import yaml
from datatrove.executor.local import LocalPipelineExecutor

from belle_hf.errors import BelleError
from belle_hf.io import atomic_write_text, check_output_is_not_input

EXECUTORS = ("local", "slurm", "ray")
FINGERPRINT = "belle-work.json"


@dataclass
class ExecutorConfig:
    """Where and how wide the pipeline stages run."""

    executor: str = "local"
    """``local`` (processes on this machine), ``slurm`` (one job array per stage) or ``ray``."""
    workers: int | None = None
    """Tasks run at once (``local``): default all CPU cores; never more than the tasks."""
    tasks: int | None = None
    """Shards the input is cut into: default one per 64 MiB of input. Results do not depend on it."""
    work_dir: str | None = None
    """Temporary files (signatures, buckets, shards); default ``.<output name>.belle-work`` beside the output.
    On Slurm or Ray it must be on a file system every node sees."""
    cluster: dict[str, Any] = field(default_factory=dict)
    """Options of datatrove's ``SlurmPipelineExecutor`` (``partition``, ``time``, ``cpus_per_task``,
    ``mem_per_cpu_gb``, ``env_command``, ``sbatch_args``...) or ``RayPipelineExecutor``
    (``cpus_per_task``, ``mem_per_cpu_gb``...)."""

    def __post_init__(self):
        if self.executor not in EXECUTORS:
            raise BelleError(f"executor must be one of {', '.join(EXECUTORS)}, not {self.executor!r}")
        for name in ("workers", "tasks"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise BelleError(f"{name} must be at least 1, not {value}")
        if self.executor == "slurm" and not {"partition", "time"} <= set(self.cluster):
            raise BelleError("the slurm executor needs 'partition' and 'time' in its cluster config")

    @classmethod
    def from_file(cls, path: str | os.PathLike | None, **overrides) -> "ExecutorConfig":
        """Overrides (the command line) on top of a YAML file's ``executor``/``workers``/``tasks``/
        ``work_dir``/``cluster`` keys; ``None`` overrides are ignored."""
        values: dict[str, Any] = {}
        if path is not None:
            try:
                values = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
            except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
                raise BelleError(f"{path}: cannot read the executor config ({error})") from None
            if not isinstance(values, dict):
                raise BelleError(f"{path}: the executor config must be a mapping")
            unknown = set(values) - {"executor", "workers", "tasks", "work_dir", "cluster"}
            if unknown:
                raise BelleError(f"{path}: unknown field(s) {', '.join(sorted(unknown))}")
        values.update({key: value for key, value in overrides.items() if value is not None})
        return cls(**values)

    def worker_count(self) -> int:
        if self.workers is not None:
            return self.workers
        from belle_hf.cores import available_cores

        return available_cores()


@dataclass
class Stage:
    """One executor run: ``pipeline`` on ``tasks`` tasks."""

    name: str
    pipeline: list
    tasks: int = 1
    max_workers: int | None = None
    """Cap on parallel tasks (a stage that is cheap per task need not start a process pool)."""


class WorkFolder:
    """The temporary folder of one pipeline run, tied to its inputs and settings by a fingerprint."""

    def __init__(self, path: str | os.PathLike, settings: dict):
        self.path = Path(path).expanduser().resolve()
        self.settings = settings
        self.fingerprint = hashlib.sha256(orjson.dumps(settings, option=orjson.OPT_SORT_KEYS,
                                                       default=str)).hexdigest()

    def prepare(self) -> bool:
        """Make the folder ready; returns whether an earlier run's results are reused."""
        marker = self.path / FINGERPRINT
        if self.path.exists():
            if marker.is_file():
                try:
                    previous = orjson.loads(marker.read_bytes()).get("fingerprint")
                except orjson.JSONDecodeError:
                    previous = None
                if previous == self.fingerprint:
                    return True
                print(f"belle: {self.path}: settings or inputs changed since the interrupted run; starting over",
                      file=sys.stderr)
                shutil.rmtree(self.path)
            elif not self.path.is_dir() or any(self.path.iterdir()):
                raise BelleError(f"{self.path}: the work folder exists and is not a belle work folder; "
                                 "choose another work_dir or remove it")
        self.path.mkdir(parents=True, exist_ok=True)
        atomic_write_text(marker, orjson.dumps({"fingerprint": self.fingerprint, "settings": self.settings},
                                               default=str).decode())
        return False

    def sub(self, name: str) -> str:
        folder = self.path / name
        folder.mkdir(parents=True, exist_ok=True)
        return str(folder)

    def completed(self, stage: str) -> int:
        folder = self.path / "logs" / stage / "completions"
        return sum(1 for _ in folder.iterdir()) if folder.is_dir() else 0

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def default_work_dir(output: str | os.PathLike) -> Path:
    output = Path(output).expanduser().resolve()
    return output.parent / f".{output.name}.belle-work"


# Imported once by the fork server that starts the local workers, so that each worker is forked
# with them loaded instead of importing them again (seconds per worker on a busy machine).
WORKER_PRELOAD = ["numpy", "orjson", "pyarrow.parquet", "datatrove.pipeline.dedup.minhash", "belle_hf.data.pipeline.minhash",
                  "belle_hf.data.clean", "belle_hf.data.dedup", "belle_hf.data.stats", "belle_hf.data.mix"]


class QuietLocalExecutor(LocalPipelineExecutor):
    """datatrove's local executor, its per-task console log sent to the task's log file only.

    datatrove logs every task at INFO to stderr; ``belle`` prints one summary instead. The full
    log stays in ``WORK/logs/<stage>/logs/task_*.log``. Its fork server preloads
    :data:`WORKER_PRELOAD`.
    """

    def run(self):
        import multiprocess

        if self.workers > 1:
            multiprocess.get_context(self.start_method).set_forkserver_preload(WORKER_PRELOAD)
        return super().run()

    _devnull = None  # opened once per process and left open: loguru keeps writing to it

    def _run_for_rank(self, rank: int, local_rank: int = 0, node_rank: int = -1):
        if QuietLocalExecutor._devnull is None:
            QuietLocalExecutor._devnull = open(os.devnull, "w")
        with contextlib.redirect_stderr(QuietLocalExecutor._devnull):
            return super()._run_for_rank(rank, local_rank, node_rank)


def _executor(stage: Stage, config: ExecutorConfig, logging_dir: str, depends=None):
    if config.executor == "local":
        workers = min(config.worker_count(), stage.tasks, stage.max_workers or stage.tasks)
        return QuietLocalExecutor(stage.pipeline, tasks=stage.tasks, workers=workers, logging_dir=logging_dir)
    if config.executor == "slurm":
        from datatrove.executor.slurm import SlurmPipelineExecutor

        options = {"job_name": f"belle-{stage.name}", **config.cluster}
        return SlurmPipelineExecutor(stage.pipeline, tasks=stage.tasks, logging_dir=logging_dir, depends=depends,
                                     **options)
    try:
        import ray
        from datatrove.executor.ray import RayPipelineExecutor
    except ImportError:
        raise BelleError("the ray executor needs Ray: pip install 'ray[default]'") from None
    if not ray.is_initialized():
        ray.init()  # joins the cluster named by RAY_ADDRESS (datatrove expects Ray started)
    return RayPipelineExecutor(stage.pipeline, tasks=stage.tasks, workers=config.workers or -1,
                               logging_dir=logging_dir, **config.cluster)


def run_stages(stages: list[Stage], config: ExecutorConfig, work: WorkFolder) -> bool:
    """Run ``stages`` in order; returns ``True`` when they have finished (``False``: submitted to Slurm).

    Locally and on Ray each stage runs to its end before the next starts, and a finished stage's
    tasks are skipped on a rerun. On Slurm the stages are submitted as dependent job arrays.
    """
    from datatrove.utils.logging import logger

    if config.executor == "local":
        logger.remove()
        logger.add(sys.stderr, level="WARNING")
    resumed = [(stage.name, work.completed(stage.name), stage.tasks) for stage in stages]
    done = [f"{name} {count}/{tasks}" for name, count, tasks in resumed if count]
    if done:
        print(f"belle: resuming from {work.path}: tasks already done: {', '.join(done)}", file=sys.stderr)
    previous = None
    for stage in stages:
        executor = _executor(stage, config, str(work.path / "logs" / stage.name), depends=previous)
        if config.executor == "slurm":
            previous = executor
            continue
        executor.run()
    if config.executor == "slurm":
        previous.run()  # submits every stage, each depending on the one before
        return False
    return True


RESULT = "result.json"
"""What the finishing stage leaves in the work folder for the caller."""


def source_identity(sources: list[str]) -> list:
    """What a rerun must find unchanged to reuse work: each local file's path, size and mtime."""
    identity = []
    for source in sources:
        path = Path(source)
        if path.is_file():
            stat = path.stat()
            identity.append([str(path.resolve()), stat.st_size, stat.st_mtime_ns])
        else:
            identity.append([source])
    return identity


def run_pipeline(kind: str, sources: list[str], output: str | os.PathLike | None, settings: dict,
                 build_stages, executor: ExecutorConfig | None = None, tasks: int | None = None,
                 report_path: str | os.PathLike | None = None) -> dict | None:
    """Plan ``sources`` into tasks, run the stages ``build_stages(work, plan, tasks)`` returns, and
    return the finishing stage's result (``None`` when the stages were submitted to Slurm).

    ``tasks`` forces the task count (a ``limit`` needs one task). ``report_path`` (the JSON report
    the finishing stage writes) is only checked here: it may be neither an input nor ``output``.
    """
    from belle_hf.data.pipeline.inputs import default_tasks, plan_inputs

    executor = executor or ExecutorConfig()
    if output is not None:
        # replaces_folder: mix swaps its output folder whole, so no input may live inside it
        check_output_is_not_input(output, sources, replaces_folder=True)
    if report_path is not None:
        check_output_is_not_input(report_path, [*sources, output])
    tasks = tasks or executor.tasks or default_tasks(sources)
    identity = {"kind": kind, "sources": source_identity(sources), "tasks": tasks,
                "output": None if output is None else str(Path(output).expanduser().resolve()), **settings}
    if executor.work_dir is not None:
        work = WorkFolder(executor.work_dir, identity)
    elif output is not None:
        work = WorkFolder(default_work_dir(output), identity)
    else:
        import tempfile

        fingerprint = WorkFolder(".", identity).fingerprint
        work = WorkFolder(Path(tempfile.gettempdir()) / f"belle-{kind}-{fingerprint[:16]}", identity)
    work.prepare()
    stages = build_stages(work, plan_inputs(sources, tasks), tasks)
    if not run_stages(stages, executor, work):
        print(f"belle: submitted {len(stages)} stages to Slurm; logs and results in {work.path}", file=sys.stderr)
        return None
    result = orjson.loads((work.path / RESULT).read_bytes())
    work.remove()
    return result
