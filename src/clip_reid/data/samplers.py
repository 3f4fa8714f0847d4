"""Identity-aware samplers: P×K batches for stage 2, graph (nearest-class) batches for stage 1.

Both are seeded per epoch (``seed + epoch``, set through ``set_epoch`` as with
``DistributedSampler``), so every epoch differs yet any epoch can be replayed, and every DDP rank
computes the same global plan and keeps a disjoint share of whole batches. The trainer must pass
the same ``seed`` on every rank and tell Lightning ``use_distributed_sampler=False``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Sampler

SIMILARITIES = ("cosine", "dot")
IDENTITY_POLICIES = ("exact", "official")  # see RandomIdentitySampler


class RandomIdentitySampler(Sampler[int]):
    """P×K identity sampling (P = batch_size / K identities, K images each) as in CLIP-ReID.

    Each identity's images are shuffled (drawn with replacement up to K when it has fewer) and cut
    into chunks of K; every batch takes one chunk from each of P distinct identities. Two ways to
    pick the P identities (``policy``):

    - ``"exact"``: at random, skipping only picks that would lower the epoch's maximum number of
      batches. The epoch length is then fixed by the chunk counts alone, ``len()`` is exact for
      every seed, and with ``num_replicas > 1`` global batch ``i`` goes to rank
      ``i % num_replicas`` (tail dropped so all ranks run the same number of batches). Use it
      for multi-device runs and whenever a fixed number of steps per epoch matters.
    - ``"official"``: the official CLIP-ReID sampler (datasets/sampler.py): P identities drawn
      uniformly among those with chunks left, while at least P remain. It strands chunks of the
      largest identities, so the epoch is shorter than ``"exact"``'s and varies with the shuffle
      (Market-like: 182.6 batches on average instead of 184); ``len()`` is ``"exact"``'s count,
      an upper bound, as the loop simply ends early. Single device only. Use it to reproduce the
      paper's training distribution.

    Use it with ``DataLoader(dataset, batch_size=batch_size, sampler=sampler, drop_last=True)``;
    every epoch is a whole number of batches, so each loader batch is one P×K batch.
    """

    def __init__(
        self,
        labels: Sequence[int],
        batch_size: int,
        num_instances: int,
        policy: str,
        seed: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
    ) -> None:
        if num_instances < 1 or batch_size < num_instances or batch_size % num_instances:
            raise ValueError(
                f"batch_size ({batch_size}) must be a positive multiple of num_instances "
                f"({num_instances}): a batch is P identities × K instances."
            )
        if policy not in IDENTITY_POLICIES:
            raise ValueError(
                f"sampler policy must be one of {IDENTITY_POLICIES}, got {policy!r}."
            )
        _check_replicas(num_replicas, rank)
        if policy == "official" and num_replicas > 1:
            raise ValueError(
                f"The 'official' sampler's epoch length varies with the shuffle, so it cannot "
                f"give {num_replicas} ranks equal shares: use the 'exact' sampler for "
                f"multi-device training."
            )
        label_array = _label_array(labels)
        self.batch_size = batch_size
        self.num_instances = num_instances
        self.identities_per_batch = batch_size // num_instances
        self.seed = seed
        self.num_replicas = num_replicas
        self.rank = rank
        self.policy = policy
        self.epoch = 0
        self.indices_by_identity = _indices_by_label(label_array)
        self.chunk_counts = np.array(
            [max(len(indices), num_instances) // num_instances
             for indices in self.indices_by_identity]
        )
        self.global_batches = max_identity_batches(self.chunk_counts, self.identities_per_batch)
        self.batches_per_rank = self.global_batches // num_replicas
        if self.batches_per_rank == 0:
            raise ValueError(
                f"{len(self.indices_by_identity)} identities ({len(label_array)} images) give "
                f"{self.global_batches} batch(es) of {self.identities_per_batch} distinct "
                f"identities × {num_instances}, fewer than the {num_replicas} rank(s): lower "
                f"batch_size or num_instances, or use more training identities."
            )

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose shuffle ``__iter__`` replays (called by Lightning each epoch)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return self.batches_per_rank * self.batch_size

    def __iter__(self) -> Iterator[int]:
        rng = np.random.default_rng(self.seed + self.epoch)
        chunks = [
            _identity_chunks(indices, self.num_instances, rng)
            for indices in self.indices_by_identity
        ]
        taken = np.zeros(len(chunks), dtype=np.int64)
        for batch, identities in enumerate(self.identity_plan(rng)):
            rows = [chunks[i][taken[i]] for i in identities]
            taken[identities] += 1
            if batch % self.num_replicas == self.rank:
                yield from np.concatenate(rows).tolist()

    def identity_plan(self, rng: np.random.Generator) -> Iterator[np.ndarray]:
        """The identities of each global batch, in order, for the kept batches of an epoch."""
        if self.policy == "official":
            yield from uniform_identity_batches(self.chunk_counts, self.identities_per_batch, rng)
            return
        remaining = self.chunk_counts.copy()
        for batch in range(self.batches_per_rank * self.num_replicas):
            identities = _pick_identities(
                remaining, self.global_batches - batch, self.identities_per_batch, rng
            )
            remaining[identities] -= 1
            yield identities


def uniform_identity_batches(
    chunk_counts: np.ndarray, identities_per_batch: int, rng: np.random.Generator
) -> Iterator[np.ndarray]:
    """The official CLIP-ReID identity draw: P distinct identities uniformly among those with
    chunks left, one chunk each, until fewer than P identities have chunks left."""
    remaining = np.asarray(chunk_counts, dtype=np.int64).copy()
    available = np.flatnonzero(remaining)
    while len(available) >= identities_per_batch:
        identities = rng.choice(available, size=identities_per_batch, replace=False)
        remaining[identities] -= 1
        yield identities
        available = np.flatnonzero(remaining)


def max_identity_batches(chunk_counts: np.ndarray, identities_per_batch: int) -> int:
    """Most batches of P distinct identities that chunk counts allow: the largest R with
    Σ min(count, R) ≥ P·R (an identity can serve at most once per batch).

    The left side minus P·R is concave in R and 0 at R = 0, so the feasible R form an interval
    starting at 0 and a binary search finds its end.
    """
    low, high = 0, int(chunk_counts.sum()) // identities_per_batch
    while low < high:
        middle = (low + high + 1) // 2
        if np.minimum(chunk_counts, middle).sum() >= identities_per_batch * middle:
            low = middle
        else:
            high = middle - 1
    return low


def _pick_identities(
    remaining: np.ndarray, rounds_left: int, identities_per_batch: int, rng: np.random.Generator
) -> np.ndarray:
    """P random identities with chunks left, chosen so that ``rounds_left - 1`` batches stay
    feasible: identities with ≥ ``rounds_left`` chunks never hurt feasibility, each other one
    spends one unit of slack Σ min(count, R-1) - P·(R-1), so those are taken while slack lasts.
    """
    later = rounds_left - 1
    plentiful = remaining >= rounds_left
    slack = (
        int(plentiful.sum()) * later + int(remaining[~plentiful].sum())
        - identities_per_batch * later
    )
    order = rng.permutation(np.flatnonzero(remaining))
    order_plentiful = plentiful[order]
    scarce_rank = np.cumsum(~order_plentiful)
    allowed = order_plentiful | (scarce_rank <= slack)
    return order[allowed][:identities_per_batch]


def _identity_chunks(
    indices: np.ndarray, num_instances: int, rng: np.random.Generator
) -> np.ndarray:
    """Shuffled indices of one identity as rows of K (repeated draws when it has fewer than K)."""
    if len(indices) < num_instances:
        drawn = rng.choice(indices, size=num_instances, replace=True)
    else:
        drawn = rng.permutation(indices)
    usable = len(drawn) // num_instances * num_instances
    return drawn[:usable].reshape(-1, num_instances)


class GraphSampler(Sampler[list[int]]):
    """Graph sampling (Liao & Shao, CVPR 2022) over classes, for stage-1 prompt learning.

    Each class is linked to its P-1 most similar classes (by the current per-class features, e.g.
    the text features); a batch is an anchor class plus those neighbours, K samples of each
    (drawn with replacement when a class has fewer than K), so every batch is full of hard
    negatives. Every class anchors one batch per epoch, in shuffled order. It is a batch
    sampler: use ``DataLoader(dataset, batch_sampler=sampler)``. Lightning only calls
    ``set_epoch`` on a loader's ``sampler``, so the training loop must call ``set_epoch`` (and
    ``update_features`` when the features change) itself, e.g. from a callback.
    With ``num_replicas > 1``, batch ``i`` goes to rank ``i % num_replicas``, tail dropped.
    """

    def __init__(
        self,
        features: Tensor,
        labels: Sequence[int],
        num_classes_per_batch: int,
        num_instances: int,
        similarity: str,
        seed: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
    ) -> None:
        if num_classes_per_batch < 1 or num_instances < 1:
            raise ValueError(
                f"num_classes_per_batch ({num_classes_per_batch}) and num_instances "
                f"({num_instances}) must both be >= 1."
            )
        if similarity not in SIMILARITIES:
            raise ValueError(f"similarity must be one of {SIMILARITIES}, got {similarity!r}.")
        _check_replicas(num_replicas, rank)
        self.num_classes = _feature_matrix(features).shape[0]
        if num_classes_per_batch > self.num_classes:
            raise ValueError(
                f"num_classes_per_batch ({num_classes_per_batch}) exceeds the number of classes "
                f"({self.num_classes}): a batch needs that many distinct classes."
            )
        self.num_classes_per_batch = num_classes_per_batch
        self.num_instances = num_instances
        self.similarity = similarity
        self.seed = seed
        self.num_replicas = num_replicas
        self.rank = rank
        self.epoch = 0
        self.indices_by_class = _indices_by_class(_label_array(labels), self.num_classes)
        if self.num_classes // num_replicas == 0:
            raise ValueError(
                f"{self.num_classes} classes give fewer batches than the {num_replicas} ranks."
            )
        self.update_features(features)

    def update_features(self, features: Tensor) -> None:
        """Rebuild the class graph from new per-class features (same number of classes)."""
        matrix = _feature_matrix(features)
        if matrix.shape[0] != self.num_classes:
            raise ValueError(
                f"Expected features for {self.num_classes} classes, got {matrix.shape[0]} rows."
            )
        self.neighbours = nearest_classes(
            matrix, self.num_classes_per_batch - 1, self.similarity
        ).numpy()

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose shuffle ``__iter__`` replays."""
        self.epoch = epoch

    def __len__(self) -> int:
        return self.num_classes // self.num_replicas

    def __iter__(self) -> Iterator[list[int]]:
        rng = np.random.default_rng(self.seed + self.epoch)
        anchors = rng.permutation(self.num_classes)[: len(self) * self.num_replicas]
        for position, anchor in enumerate(anchors):
            classes = [anchor, *self.neighbours[anchor]]
            batch = [self._draw(self.indices_by_class[c], rng) for c in classes]
            if position % self.num_replicas == self.rank:
                yield np.concatenate(batch).tolist()

    def _draw(self, indices: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        replace = len(indices) < self.num_instances
        return rng.choice(indices, size=self.num_instances, replace=replace)


def nearest_classes(features: Tensor, num_neighbours: int, similarity: str) -> Tensor:
    """Indices [C, num_neighbours] of each class's most similar other classes, best first."""
    if similarity == "cosine":
        features = F.normalize(features, dim=1)
    scores = features @ features.T
    scores.fill_diagonal_(-torch.inf)
    return scores.topk(num_neighbours, dim=1).indices


def _feature_matrix(features: Tensor) -> Tensor:
    matrix = torch.as_tensor(features).detach().to("cpu", torch.float32)
    if matrix.ndim != 2 or matrix.shape[0] == 0:
        raise ValueError(
            f"features must be a [num_classes, dim] matrix, got shape {tuple(matrix.shape)}."
        )
    if not torch.isfinite(matrix).all():
        raise ValueError("features contain NaN or infinite values; cannot rank class similarity.")
    return matrix


def _label_array(labels: Sequence[int]) -> np.ndarray:
    array = np.asarray(labels)
    if array.ndim != 1 or array.size == 0 or not np.issubdtype(array.dtype, np.integer):
        raise ValueError(
            f"labels must be a non-empty 1-D sequence of integers, got shape {array.shape} "
            f"and dtype {array.dtype}."
        )
    if array.min() < 0:
        raise ValueError(
            f"labels contain {int(array.min())}: only training rows (label >= 0) can be sampled; "
            f"filter the image index to split == 'train' first."
        )
    return array.astype(np.int64)


def _indices_by_label(labels: np.ndarray) -> list[np.ndarray]:
    """Row positions of each distinct label, labels in ascending order (a stable layout)."""
    order = np.argsort(labels, kind="stable")
    _, starts = np.unique(labels[order], return_index=True)
    return np.split(order, starts[1:])


def _indices_by_class(labels: np.ndarray, num_classes: int) -> list[np.ndarray]:
    if labels.max() >= num_classes:
        raise ValueError(
            f"labels go up to {int(labels.max())} but features describe only {num_classes} "
            f"classes (0..{num_classes - 1})."
        )
    order = np.argsort(labels, kind="stable")
    counts = np.bincount(labels, minlength=num_classes)
    groups = np.split(order, np.cumsum(counts)[:-1])
    empty = np.flatnonzero(counts == 0).tolist()
    if empty:
        raise ValueError(
            f"Classes {empty[:10]}{'…' if len(empty) > 10 else ''} have features but no "
            f"samples; every class needs at least one sample to fill its batch."
        )
    return groups


def _check_replicas(num_replicas: int, rank: int) -> None:
    if num_replicas < 1 or not 0 <= rank < num_replicas:
        raise ValueError(
            f"rank ({rank}) must be in [0, num_replicas) with num_replicas ({num_replicas}) >= 1."
        )
