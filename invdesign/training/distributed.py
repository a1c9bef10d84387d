"""Training on several processes: Lightning's DDP strategy, with the other processes of a node
started as `python -m invdesign.training.ddp_worker` rather than by re-running the command line.

`trainer.strategy=ddp trainer.devices=N` (config keys, `invdesign.training.config`) trains on N
processes per node (`trainer.num_nodes` nodes): each process trains on its shard of the training
set (Lightning's `DistributedSampler`), gradients are averaged after every step (gloo on CPU, NCCL
on CUDA GPUs), so the model sees devices x num_nodes x `data.batch_size` graphs per step.

Why 'ddp' and not 'ddp_spawn': 'ddp_spawn' pickles the trainer, model, data and callbacks into
each spawned process and sends back only the weights and the logged metrics, so the callbacks'
state (best epoch, early stop) and the rank-0 outputs would have to be shipped back by hand, and
every callable in the run (progress printers) must be picklable. 'ddp' runs the same code in every
process. Lightning's own 'ddp' launcher re-runs `sys.argv`, which is right for `invdesign train`
but wrong when training is called from Python (a benchmark, a notebook, pytest: the children would
re-run those). The launcher here starts every other process of the node as
`python -m invdesign.training.ddp_worker` with the resolved config in the environment
(`CONFIG_ENV`), so the console script, the Python API and tests all behave the same; the worker
builds the same data module and generator from that config and joins the process group.

Only global rank 0 writes (the checkpoint, metrics and model card, through
`invdesign.io.outputs.Output`) and evaluates; `launch_rank` tells a process its global rank before
training starts, from the variables a launcher sets: `RANK` (torchrun), else
`NODE_RANK` x devices + `LOCAL_RANK` (Lightning's launcher; on a multi-node run set `NODE_RANK`,
`MASTER_ADDR` and `MASTER_PORT` on every node and run the same command).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import torch
from lightning.pytorch.strategies import DDPStrategy
from lightning.pytorch.strategies.launchers.subprocess_script import _SubprocessScriptLauncher

#: The environment variable that carries the resolved config (JSON) to the worker processes.
CONFIG_ENV = "INVDESIGN_DDP_CONFIG"
WORKER_MODULE = "invdesign.training.ddp_worker"


def launch_rank(devices: int) -> int:
    """This process's global rank as the launcher's environment gives it (0 without one)."""
    env = os.environ
    if env.get("RANK"):
        return int(env["RANK"])
    node = int(env.get("NODE_RANK") or env.get("GROUP_RANK") or 0)
    return node * int(devices) + int(env.get("LOCAL_RANK") or 0)


class _WorkerLauncher(_SubprocessScriptLauncher):
    """Lightning's per-node subprocess launcher (rank 0 stays in this process, the others are
    started with the same DDP environment: MASTER_ADDR/PORT, NODE_RANK, LOCAL_RANK, WORLD_SIZE),
    but each child runs `WORKER_MODULE` with the config instead of re-running `sys.argv`."""

    #: the variables set for the process group; restored by `finish`, or a later run in this
    #: process would take LOCAL_RANK as a sign that an external launcher started it
    VARIABLES = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE",
                 "OMP_NUM_THREADS")

    def __init__(self, config: dict[str, Any], *args: Any) -> None:
        super().__init__(*args)
        self.config_json = json.dumps(config)
        self.threads = config.get("trainer", {}).get("num_threads")
        self.saved: dict[str, str | None] | None = None

    def _call_children_scripts(self) -> None:
        self._check_can_spawn_children()
        self.procs = []
        self.saved = {key: os.environ.get(key) for key in self.VARIABLES}
        env = self.cluster_environment
        os.environ["MASTER_ADDR"] = env.main_address
        os.environ["MASTER_PORT"] = str(env.main_port)
        os.environ["NODE_RANK"] = str(env.node_rank())
        os.environ["LOCAL_RANK"] = str(env.local_rank())
        os.environ["WORLD_SIZE"] = str(self.num_processes * self.num_nodes)
        if self.threads and "OMP_NUM_THREADS" not in os.environ:
            # the config's threads per process; else Lightning sets cores / processes
            os.environ["OMP_NUM_THREADS"] = str(int(self.threads))
        for local_rank in range(1, self.num_processes):
            child = {**os.environ, "LOCAL_RANK": str(local_rank), CONFIG_ENV: self.config_json}
            self.procs.append(
                subprocess.Popen([sys.executable, "-m", WORKER_MODULE], env=child))

    def finish(self, failed: bool, timeout: float = 120.0) -> None:
        """After fitting: wait for the workers to exit, or kill them when this process failed
        (they would wait in a collective for the gloo timeout)."""
        for proc in self.procs:
            if failed:
                proc.kill()
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for key, value in (self.saved or {}).items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self.saved = None


class WorkerDDPStrategy(DDPStrategy):
    """`DDPStrategy` whose launcher starts `WORKER_MODULE` processes (see the module docstring)."""

    def __init__(self, config: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.config = config

    def _configure_launcher(self) -> None:
        assert self.cluster_environment is not None
        self._launcher = _WorkerLauncher(
            self.config, self.cluster_environment, self.num_processes, self.num_nodes)


def close_process_group() -> None:
    """Leave the process group after fitting, so a later run in this process starts a new one."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
