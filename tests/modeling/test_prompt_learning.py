"""Stage 1's batches on several DDP ranks (the Ray engine): each rank's part of every global
batch, disjoint and together the whole batch, with the local engine's draws."""

import pytest
import torch

from clip_reid.modeling.prompt_learning import (
    CachedFeatures,
    CachedFeaturesDataModule,
    PromptLearningSettings,
    RankShare,
    ShuffledBatches,
)


def _dataset(rows: int) -> CachedFeatures:
    return CachedFeatures(torch.randn(rows, 4), torch.arange(rows), None)


def test_ranks_split_every_global_batch_into_disjoint_parts():
    dataset = _dataset(25)  # batches of 8: 8, 8, 8 and a last one of 1

    def global_batches():
        return list(ShuffledBatches(dataset, 8, torch.Generator().manual_seed(3)))

    parts = [list(RankShare(global_batches(), rank, 2)) for rank in range(2)]
    batches = global_batches()
    assert [len(b) for b in batches] == [8, 8, 8, 1]
    for step, batch in enumerate(batches[:3]):
        assert parts[0][step] + parts[1][step] == batch  # rank 0 the first half, rank 1 the rest
    assert len(parts[0]) == len(parts[1]) == 3  # the batch of 1 has no part for rank 1: skipped
    assert len(RankShare(ShuffledBatches(dataset, 8, torch.Generator()), 1, 2)) == 3
    assert len(RankShare(ShuffledBatches(dataset, 8, torch.Generator()), 0, 3)) == 3


def test_shared_batches_are_drawn_as_the_local_loader_draws_them():
    """One rank with share_batches: the same batches from the same generator state as the local
    engine's shuffling loader (a Ray run and a local run see the same global batches)."""
    dataset = _dataset(30)
    settings = PromptLearningSettings(batch_size=7)
    local = CachedFeaturesDataModule(dataset, settings, seed=5)
    shared = CachedFeaturesDataModule(dataset, settings, seed=5, share_batches=True)
    for _ in range(2):  # two epochs: the generator moves on alike
        expected = [labels.tolist() for _, labels, _ in local.train_dataloader()]
        assert [labels.tolist() for _, labels, _ in shared.train_dataloader()] == expected


def test_a_batch_smaller_than_the_ray_workers_is_refused(caplog):
    from clip_reid.modeling.prompt_learning import GraphSamplingSettings, _check_ray_batches

    with pytest.raises(ValueError, match=r"batch_size \(2\) is smaller than .*num_workers \(3\)"):
        _check_ray_batches(30, PromptLearningSettings(batch_size=2), 3)
    graph = GraphSamplingSettings(enabled=True, classes_per_batch=1, instances_per_class=2)
    with pytest.raises(ValueError, match="classes_per_batch x instances_per_class"):
        _check_ray_batches(30, PromptLearningSettings(graph_sampling=graph), 4)
    _check_ray_batches(33, PromptLearningSettings(batch_size=8), 2)  # a tail of 1: skipped
    assert "skips each epoch's last batch of 1 image(s)" in caplog.text
