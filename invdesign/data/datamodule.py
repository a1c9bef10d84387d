"""The Lightning data module that serves `TaskBatch`es of a task's tensors
(`invdesign.data.task_data`: in memory, or batch by batch from the files for sets too large for
memory), with DDP sharding.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from torch.utils.data import DataLoader

from invdesign.core.errors import InvdesignError
from invdesign.core.tasks import TARGETS, TaskBatch, TaskSpec
from invdesign.data.dataset import ChiliDataset
from invdesign.data.mixing import MixedEpochSampler
from invdesign.data.splits import split_indices, training_only_graphs
from invdesign.data.task_data import (
    IN_MEMORY_LIMIT_BYTES,
    LazyTaskData,
    TaskData,
    WholeDataRequired,
    _task_graphs,
    _where,
    estimated_bytes,
    in_memory_limit,
    load_task_data,
    load_task_part,
    load_task_split,
)

# Re-exported: the task tensors were defined here before task_data.py.
__all__ = ["ChiliTaskDataModule", "LazyTaskData", "TaskData", "WholeDataRequired",
           "load_task_data", "load_task_part", "load_task_split"]


class _Rows(torch.utils.data.Dataset):
    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> int:
        return i


class _Collate:
    """Rows -> `TaskBatch` (a class, not a lambda, so loader workers can be spawned)."""

    def __init__(self, data: TaskData | LazyTaskData, condition_on: tuple[str, ...]) -> None:
        self.data, self.condition_on = data, condition_on

    def __call__(self, rows: list[int]) -> TaskBatch:
        return self.data.batch(rows, self.condition_on)


def _parent_atoms(ds: ChiliDataset, chosen: list[int], task: TaskSpec) -> int | None:
    """The parent-cell padding `load_task_data` gives `chosen` graphs of a particle task (the
    largest cell, at least CHILI's 20), read from the index."""
    if task.kind != "particle":
        return None
    return max(TARGETS["unit_cell_pos_frac"], max(ds.records[i].unit_cell_n_atoms for i in chosen))


def _files(ds: ChiliDataset) -> set[Path]:
    return {Path(row.path).resolve() for row in ds.records}


class ChiliTaskDataModule(L.LightningDataModule):
    """Train / val / test `TaskBatch`es of one task on one split of a CHILI folder.

    Args:
        root: folder of CHILI `.h5` files, or several folders used together (one dataset; the
            split runs over all of them, grouped by source file with 'grouped').
        task: the task (its filter selects the graphs: <= max_atoms).
        split: 'chili_random', 'grouped' or 'leave_type_out:<Type>' (`splits.split_name`);
            split_seed: CHILI uses 42.
        batch_size: training batch size (CHILI: 16); eval_batch_size for val/test. Per process
            when training runs on several (DDP).
        condition_on: extras put in the condition ('composition', 'cell', 'n_atoms').
        augment: folders of extra training graphs; those whose source is among the training part's
            sources are appended to it (`n_augment` counts them), the rest are left out.
        extra: folders of other sources (e.g. the synthetic set), training only: their graphs
            join the training part (`n_extra` counts them; under leave_type_out not those of the
            held-out type or its lookalikes, `splits.training_only_graphs`); validation and test
            come from `root` alone, so they are the same with or without `extra`.
        extra_share: None: every extra graph in every epoch; a fraction in (0, 1): each epoch
            holds every graph of the training part from `root` (and `augment`) plus a fresh
            subset of the extra graphs making up this share of it (`mixing.MixedEpochSampler`,
            seeded by `seed`).
        in_memory: 'true' (or True): the task arrays are read once and kept (`TaskData`);
            'false': each batch is read from the files (`LazyTaskData`: same values, memory
            independent of the data set's size); 'auto': in memory when `estimated_bytes` of the
            task's graphs is at most `in_memory_limit()` (a share of the available memory).
            `lazy` says which was used.

    Under DDP, Lightning gives the training loader a `DistributedSampler` (each process a
    different shard of every shuffled epoch, seeded by the run's seed); validation and test
    loaders get an `UnrepeatedDistributedSampler` here (each graph on exactly one process, none
    repeated), so metrics summed over the processes are those of the whole part.
    """

    def __init__(
        self,
        root: str | Sequence[str],
        task: TaskSpec,
        split: str = "chili_random",
        split_seed: int = 42,
        batch_size: int = 16,
        eval_batch_size: int = 256,
        condition_on: tuple[str, ...] | list[str] = (),
        num_workers: int = 0,
        augment: Sequence[str] = (),
        in_memory: str | bool = True,
        extra: Sequence[str] = (),
        extra_share: float | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.augment = [str(folder) for folder in augment]
        self.extra = [str(folder) for folder in extra]
        self.n_augment = self.n_extra = 0
        self.extra_share, self.seed = extra_share, seed
        self.root, self.task, self.split, self.split_seed = root, task, split, split_seed
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.condition_on = tuple(condition_on)
        self.num_workers = num_workers
        self.in_memory = str(in_memory).lower()
        if self.in_memory not in ("auto", "true", "false"):
            raise InvdesignError(f"in_memory must be auto, true or false, not {in_memory!r}")
        self.lazy = False
        self.parts: dict[str, TaskData | LazyTaskData] = {}
        self.data_fingerprint = self.extra_fingerprint = ""
        self.n_files = self.n_extra_files = 0

    def setup(self, stage: str | None = None) -> None:
        if self.parts:
            return
        ds = ChiliDataset(self.root)
        self.data_fingerprint = ds.fingerprint
        self.n_files = len({row.path for row in ds.records})
        chosen = _task_graphs(ds, self.task)
        extra = ChiliDataset(self.extra) if self.extra else None
        extra_graphs = (extra.task_indices(self.task.target, self.task.max_atoms)
                        if extra is not None else [])
        # 'auto' weighs the training-only folders too: they are read the same way as the rest
        self.lazy = self.in_memory == "false" or (
            self.in_memory == "auto"
            and estimated_bytes(self.task, len(chosen) + len(extra_graphs))
            > in_memory_limit(IN_MEMORY_LIMIT_BYTES))
        if self.lazy:
            parts = split_indices(ds, self.split, self.split_seed, indices=chosen)
            for name in ("train", "val", "test"):
                if not parts[name]:
                    raise InvdesignError(
                        f"the {self.split} split of {len(chosen)} graphs for task "
                        f"{self.task.name} leaves the {name} part empty", _where(ds))
            atoms = _parent_atoms(ds, chosen, self.task)
            self.parts = {name: LazyTaskData(self.task, [(ds, idx)], atoms)
                          for name, idx in parts.items()}
        else:
            self.parts = load_task_split(ds, self.task, self.split, self.split_seed)
        if self.augment:
            self._add_augment(ds)
        if extra is not None:
            self._add_extra(ds, chosen, extra, extra_graphs)

    def _add_augment(self, ds: ChiliDataset) -> None:
        train_sources = {ds.records[i].source for i in self._graphs("train")}
        extra = ChiliDataset(self.augment)
        chosen = [
            i for i in extra.task_indices(self.task.target, self.task.max_atoms)
            if extra.records[i].source in train_sources
        ]
        if not chosen:
            raise InvdesignError(
                f"no graph for task {self.task.name} comes from a training source", _where(extra)
            )
        self._append_train(extra, chosen)
        self.n_augment = len(chosen)

    def _add_extra(self, ds: ChiliDataset, indices: list[int], extra: ChiliDataset,
                   extra_graphs: list[int]) -> None:
        if _files(extra) & _files(ds):
            raise InvdesignError("a data.extra folder holds files of data.root too (training-only "
                                 "data must not overlap validation and test)", _where(extra))
        chosen = training_only_graphs(ds, indices, self.split, extra, extra_graphs)
        if not chosen:
            raise InvdesignError(f"no graph for task {self.task.name} in data.extra",
                                 _where(extra))
        self._append_train(extra, chosen)
        self.n_extra = len(chosen)
        self.extra_fingerprint = extra.fingerprint
        self.n_extra_files = len(_files(extra))

    def _append_train(self, extra: ChiliDataset, chosen: list[int]) -> None:
        train = self.parts["train"]
        if isinstance(train, LazyTaskData):
            more = LazyTaskData(self.task, [(extra, chosen)],
                                _parent_atoms(extra, chosen, self.task))
            self.parts["train"] = train.concat(more)
        else:
            self.parts["train"] = train.concat(load_task_data(extra, self.task, chosen))

    def _graphs(self, part: str) -> list[int]:
        data = self.parts[part]
        return data.segments[0][1] if isinstance(data, LazyTaskData) else data.indices

    def _loader(self, part: str, shuffle: bool, batch_size: int) -> DataLoader:
        data = self.parts[part]
        rows = _Rows(len(data))
        sampler: torch.utils.data.Sampler[int] | None = None
        trainer = self.trainer
        if part == "train" and self.extra_share is not None and self.n_extra:
            sampler = MixedEpochSampler(len(data) - self.n_extra, self.n_extra, self.extra_share,
                                        self.seed)
        if part != "train" and trainer is not None and trainer.world_size > 1:
            if len(data) < trainer.world_size:
                raise InvdesignError(
                    f"the {part} part holds {len(data)} graphs, fewer than the "
                    f"{trainer.world_size} training processes")
            sampler = UnrepeatedDistributedSampler(
                rows, num_replicas=trainer.world_size, rank=trainer.global_rank, shuffle=False)
        return DataLoader(
            rows,
            batch_size=batch_size,
            shuffle=shuffle if sampler is None else None,
            sampler=sampler,
            collate_fn=_Collate(data, self.condition_on),
            num_workers=self.num_workers,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", True, self.batch_size)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", False, self.eval_batch_size)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", False, self.eval_batch_size)

    def transfer_batch_to_device(
        self, batch: TaskBatch, device: torch.device, dataloader_idx: int
    ) -> TaskBatch:
        return batch.to(device)
