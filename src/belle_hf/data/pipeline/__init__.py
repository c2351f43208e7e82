"""The data commands as datatrove pipelines: ``clean``, ``dedup``, ``stats`` and ``mix``.

Each command is a list of stages; each stage runs its steps (:mod:`.steps`, :mod:`.minhash`)
on datatrove's executors (:mod:`.run`): ``LocalPipelineExecutor`` by default (a process pool on
this machine, nothing to start), ``SlurmPipelineExecutor`` or ``RayPipelineExecutor`` on a
cluster. The input is cut into tasks by lines (:mod:`.inputs`), results are written per task
into a work folder, and a rerun after a kill skips the tasks datatrove marked complete.
"""

from belle_hf.data.pipeline.run import ExecutorConfig, Stage, WorkFolder

__all__ = ["ExecutorConfig", "Stage", "WorkFolder"]
