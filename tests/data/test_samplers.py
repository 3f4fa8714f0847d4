"""Samplers: P×K composition, exact lengths, the official uniform draw, per-epoch determinism, DDP
shares, graph batches."""

from collections import Counter
from functools import cache
from itertools import combinations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from clip_reid.data.samplers import GraphSampler, RandomIdentitySampler, max_identity_batches


def labels_from_counts(counts: list[int], seed: int = 0) -> list[int]:
    """Labels with ``counts[i]`` images of identity ``i``, in shuffled row order."""
    labels = np.repeat(np.arange(len(counts)), counts)
    return np.random.default_rng(seed).permutation(labels).tolist()


LABEL_DISTRIBUTIONS = {
    "uniform": [4] * 12,
    "singletons_and_crowds": [1, 1, 1, 2, 3, 9, 17, 40, 1, 5, 6, 2],
    "one_huge_identity": [60, 1, 1, 1, 2, 2],
    "uneven_random": np.random.default_rng(7).integers(1, 25, size=40).tolist(),
}


@cache
def brute_force_max_batches(chunk_counts: tuple[int, ...], per_batch: int) -> int:
    """Most batches of ``per_batch`` distinct identities, by trying every selection."""
    available = [i for i, count in enumerate(chunk_counts) if count]
    best = 0
    for chosen in combinations(available, per_batch):
        after = list(chunk_counts)
        for i in chosen:
            after[i] -= 1
        best = max(best, 1 + brute_force_max_batches(tuple(sorted(after)), per_batch))
    return best


def batches_of(sampler: RandomIdentitySampler) -> list[list[int]]:
    indices = list(sampler)
    size = sampler.batch_size
    assert len(indices) % size == 0
    return [indices[start : start + size] for start in range(0, len(indices), size)]


@pytest.mark.parametrize("policy", ["exact", "official"])
@pytest.mark.parametrize("counts", LABEL_DISTRIBUTIONS.values(), ids=LABEL_DISTRIBUTIONS.keys())
@pytest.mark.parametrize(("batch_size", "num_instances"), [(8, 4), (12, 2), (6, 3)])
def test_every_batch_is_p_identities_times_k(counts, batch_size, num_instances, policy):
    labels = labels_from_counts(counts)
    identities_per_batch = batch_size // num_instances
    for seed in range(3):
        sampler = RandomIdentitySampler(labels, batch_size, num_instances, seed=seed,
                                        policy=policy)
        batches = batches_of(sampler)
        if policy == "exact":
            assert len(batches) * batch_size == len(sampler)
        else:  # len() is an upper bound; the draw stops once fewer than P identities have chunks
            assert 0 < len(batches) * batch_size <= len(sampler)
        used = Counter()
        for batch in batches:
            per_label = Counter(labels[i] for i in batch)
            assert len(per_label) == identities_per_batch
            assert set(per_label.values()) == {num_instances}
            used.update(batch)
        for index, times in used.items():
            if counts[labels[index]] >= num_instances:
                assert times == 1, "an image of a large identity was used twice in one epoch"


@pytest.mark.parametrize("counts", LABEL_DISTRIBUTIONS.values(), ids=LABEL_DISTRIBUTIONS.keys())
def test_len_is_exact_and_the_same_for_every_shuffle(counts):
    labels = labels_from_counts(counts)
    lengths = set()
    for seed in range(4):
        sampler = RandomIdentitySampler(labels, 8, 2, seed=seed, policy="exact")
        for epoch in range(4):
            sampler.set_epoch(epoch)
            yielded = len(list(sampler))
            assert yielded == len(sampler)
            lengths.add(yielded)
    assert len(lengths) == 1


def test_uniform_random_picking_would_strand_chunks_but_this_sampler_does_not():
    # Chunk counts (2, 1, 1), P = 2: picking the two single-chunk identities first ends the epoch
    # after one batch; the sampler must always find both batches.
    labels = labels_from_counts([4, 2, 2])
    for seed in range(20):
        sampler = RandomIdentitySampler(labels, 4, 2, seed=seed, policy="exact")
        assert len(list(sampler)) == len(sampler) == 8


def test_official_policy_picks_identities_uniformly_and_may_strand_chunks():
    # Chunk counts (2, 1, 1), P = 2, as in datasets/sampler.py: the first pick is one of the 3
    # pairs uniformly; the pair of single-chunk identities (1/3) leaves identity 0 alone with a
    # chunk, so the epoch ends after one batch instead of two.
    labels = labels_from_counts([4, 2, 2])
    lengths = Counter(
        len(list(RandomIdentitySampler(labels, 4, 2, seed=seed, policy="official"))) // 4
        for seed in range(300)
    )
    assert set(lengths) == {1, 2}
    assert lengths[1] / 300 == pytest.approx(1 / 3, abs=0.07)


@cache
def market_like_labels() -> tuple[int, ...]:
    """Market-1501's training split in shape: 751 identities, 12,936 images, 2–68 per identity
    (gamma-distributed counts, nudged to the exact total)."""
    rng = np.random.default_rng(2)
    total, lowest, highest = 12_936, 2, 72
    counts = np.clip(np.round(rng.gamma(3.0, total / 751 / 3.0, 751)), lowest, highest)
    while counts.sum() != total:
        i = rng.integers(751)
        if counts.sum() < total and counts[i] < highest:
            counts[i] += 1
        elif counts.sum() > total and counts[i] > lowest:
            counts[i] -= 1
    return tuple(labels_from_counts(counts.astype(int).tolist()))


def test_market_like_epochs_official_varies_below_the_exact_maximum():
    # The measured figures: P×K = 16×4 on Market-like identities gives 184 batches with the
    # exact policy every epoch, 182.6 on average with the official uniform draw, which strands
    # more chunks of the largest identities (largest 10 %: 96 % of their chunks used, not 99 %).
    labels = np.array(market_like_labels())
    counts = np.bincount(labels)
    largest = np.argsort(-counts, kind="stable")[: len(counts) // 10]
    exact = RandomIdentitySampler(labels.tolist(), 64, 4, seed=0, policy="exact")
    official = RandomIdentitySampler(labels.tolist(), 64, 4, seed=0, policy="official")
    assert len(exact) == len(official) == 184 * 64
    batches = {"exact": [], "official": []}
    used = {"exact": [], "official": []}
    for epoch in range(20):
        for name, sampler in (("exact", exact), ("official", official)):
            sampler.set_epoch(epoch)
            indices = list(sampler)
            batches[name].append(len(indices) // 64)
            chunks_used = np.bincount(labels[indices], minlength=len(counts)) // 4
            used[name].append(chunks_used[largest].sum() / (counts[largest] // 4).sum())
    assert set(batches["exact"]) == {184}
    assert np.mean(batches["official"]) == pytest.approx(182.6, abs=0.3)
    assert max(batches["official"]) < 184 and len(set(batches["official"])) > 1
    assert np.mean(used["official"]) == pytest.approx(0.96, abs=0.01)
    assert np.mean(used["exact"]) == pytest.approx(0.99, abs=0.01)


@pytest.mark.parametrize("per_batch", [2, 3])
def test_max_identity_batches_matches_exhaustive_search(per_batch):
    rng = np.random.default_rng(per_batch)
    for _ in range(30):
        counts = rng.integers(0, 4, size=int(rng.integers(per_batch, 7)))
        expected = brute_force_max_batches(tuple(sorted(counts.tolist())), per_batch)
        assert max_identity_batches(counts, per_batch) == expected


def test_identities_with_fewer_than_k_images_repeat_their_own_images():
    labels = labels_from_counts([1, 2, 3, 4, 4])
    for batch in batches_of(RandomIdentitySampler(labels, 8, 4, seed=1, policy="exact")):
        for start in range(0, 8, 4):
            chunk_labels = {labels[i] for i in batch[start : start + 4]}
            assert len(chunk_labels) == 1


@pytest.mark.parametrize("policy", ["exact", "official"])
def test_epochs_are_reproducible_and_differ(policy):
    labels = labels_from_counts(LABEL_DISTRIBUTIONS["uneven_random"])
    sampler = RandomIdentitySampler(labels, 8, 4, seed=5, policy=policy)
    first = list(sampler)
    assert list(sampler) == first
    sampler.set_epoch(1)
    second = list(sampler)
    assert second != first
    replay = RandomIdentitySampler(labels, 8, 4, seed=5, policy=policy)
    replay.set_epoch(1)
    assert list(replay) == second
    assert list(RandomIdentitySampler(labels, 8, 4, seed=6, policy=policy)) == second
    assert list(RandomIdentitySampler(labels, 8, 4, seed=7, policy=policy)) != second


@pytest.mark.parametrize("num_replicas", [2, 3])
def test_ddp_ranks_get_disjoint_equal_shares_of_whole_batches(num_replicas):
    labels = labels_from_counts(LABEL_DISTRIBUTIONS["singletons_and_crowds"])
    single = batches_of(RandomIdentitySampler(labels, 6, 3, seed=2, policy="exact"))
    shares = [
        batches_of(RandomIdentitySampler(labels, 6, 3, "exact", seed=2, num_replicas=num_replicas,
                                         rank=r))
        for r in range(num_replicas)
    ]
    per_rank = len(single) // num_replicas
    assert [len(share) for share in shares] == [per_rank] * num_replicas
    for rank, share in enumerate(shares):
        assert share == single[rank : per_rank * num_replicas : num_replicas]
        for batch in share:
            assert sorted(Counter(labels[i] for i in batch).values()) == [3, 3]


@pytest.mark.parametrize("policy", ["exact", "official"])
def test_dataloader_usage_yields_whole_batches(policy):
    labels = labels_from_counts([5, 3, 8, 2, 6, 17, 1])
    sampler = RandomIdentitySampler(labels, 4, 2, policy=policy)
    loader = DataLoader(range(len(labels)), batch_size=4, sampler=sampler, drop_last=True)
    batches = [batch.tolist() for batch in loader]
    assert batches == batches_of(sampler)
    assert len(batches) <= len(loader) == len(sampler) // 4
    if policy == "exact":
        assert len(batches) == len(loader)


@pytest.mark.parametrize(
    ("labels", "kwargs", "message"),
    [
        ([0, 0, 1, 1], {"batch_size": 6, "num_instances": 4}, "multiple of num_instances"),
        ([0, 0, 1, 1], {"batch_size": 12, "num_instances": 2}, "identities"),
        ([0, 1, -1], {"batch_size": 2, "num_instances": 1}, "split == 'train'"),
        ([0, 0, 1, 1], {"batch_size": 4, "num_instances": 2, "rank": 2, "num_replicas": 2},
         "rank"),
        ([0, 0, 1, 1], {"batch_size": 4, "num_instances": 2, "policy": "torchreid"},
         "'exact', 'official'"),
        ([0, 0, 1, 1] * 4, {"batch_size": 4, "num_instances": 2, "policy": "official",
                            "num_replicas": 2}, "use the 'exact' sampler"),
    ],
)
def test_impossible_settings_are_explained(labels, kwargs, message):
    with pytest.raises(ValueError, match=message):
        RandomIdentitySampler(labels, **({"policy": "exact"} | kwargs))


# --- GraphSampler ---------------------------------------------------------------------------

def brute_force_neighbours(features: np.ndarray, count: int, similarity: str) -> list[list[int]]:
    neighbours = []
    for anchor in range(len(features)):
        scores = {}
        for other in range(len(features)):
            if other == anchor:
                continue
            score = float(features[anchor] @ features[other])
            if similarity == "cosine":
                score /= np.linalg.norm(features[anchor]) * np.linalg.norm(features[other])
            scores[other] = score
        neighbours.append(sorted(scores, key=scores.get, reverse=True)[:count])
    return neighbours


@pytest.fixture
def graph_setup():
    rng = np.random.default_rng(3)
    features = rng.normal(size=(10, 6)) * rng.uniform(0.2, 3.0, size=(10, 1))
    labels = labels_from_counts([1, 2, 3, 5, 8, 2, 4, 6, 1, 3], seed=4)
    return features, labels


@pytest.mark.parametrize("similarity", ["cosine", "dot"])
def test_graph_batches_are_an_anchor_and_its_nearest_classes(graph_setup, similarity):
    features, labels = graph_setup
    sampler = GraphSampler(torch.tensor(features), labels, 4, 3, similarity=similarity, seed=1)
    expected = brute_force_neighbours(features, 3, similarity)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 10
    anchors = []
    for batch in batches:
        assert len(batch) == 12
        classes = []
        for start in range(0, 12, 3):
            block = {labels[i] for i in batch[start : start + 3]}
            assert len(block) == 1
            classes.append(block.pop())
        anchors.append(classes[0])
        assert classes[1:] == expected[classes[0]]
    assert sorted(anchors) == list(range(10))


def test_graph_samples_are_distinct_when_a_class_has_enough(graph_setup):
    features, labels = graph_setup
    counts = Counter(labels)
    for batch in GraphSampler(torch.tensor(features), labels, 3, 3, seed=0, similarity="cosine"):
        for start in range(0, len(batch), 3):
            block = batch[start : start + 3]
            if counts[labels[block[0]]] >= 3:
                assert len(set(block)) == 3


def test_cosine_and_dot_rank_differently_when_norms_differ():
    features = torch.tensor([[1.0, 0.0], [0.9, 0.1], [2.0, 10.0], [-1.0, 0.0]])
    labels = [0, 1, 2, 3]
    cosine = GraphSampler(features, labels, 2, 1, similarity="cosine")
    dot = GraphSampler(features, labels, 2, 1, similarity="dot")
    assert cosine.neighbours[0].tolist() == [1]
    assert dot.neighbours[0].tolist() == [2]


def test_update_features_rebuilds_the_graph(graph_setup):
    features, labels = graph_setup
    sampler = GraphSampler(torch.tensor(features), labels, 3, 2, similarity="cosine")
    reversed_features = torch.tensor(features[::-1].copy())
    sampler.update_features(reversed_features)
    expected = brute_force_neighbours(reversed_features.numpy(), 2, "cosine")
    assert sampler.neighbours.tolist() == expected
    with pytest.raises(ValueError, match="10 classes"):
        sampler.update_features(torch.zeros(9, 6))


def test_graph_epochs_are_reproducible_and_differ(graph_setup):
    features, labels = graph_setup
    sampler = GraphSampler(torch.tensor(features), labels, 3, 2, seed=9, similarity="cosine")
    first = list(sampler)
    assert list(sampler) == first
    sampler.set_epoch(1)
    assert list(sampler) != first
    again = GraphSampler(torch.tensor(features), labels, 3, 2, "cosine", seed=10)
    assert list(again) == list(sampler)


def test_graph_ddp_ranks_split_the_epoch(graph_setup):
    features, labels = graph_setup
    single = list(GraphSampler(torch.tensor(features), labels, 3, 2, seed=4, similarity="cosine"))
    shares = [
        list(GraphSampler(torch.tensor(features), labels, 3, 2, "cosine", seed=4, num_replicas=3,
                          rank=r))
        for r in range(3)
    ]
    assert [len(share) for share in shares] == [3, 3, 3]
    for rank, share in enumerate(shares):
        assert share == single[rank:9:3]


@pytest.mark.parametrize(
    ("features", "labels", "classes_per_batch", "message"),
    [
        (torch.zeros(3, 2), [0, 1, 1], 2, r"Classes \[2\] have features but no samples"),
        (torch.zeros(3, 2), [0, 1, 3], 2, "only 3 classes"),
        (torch.zeros(2, 2), [0, 1], 3, "exceeds the number of classes"),
        (torch.full((3, 2), float("nan")), [0, 1, 2], 2, "NaN"),
        (torch.zeros(3), [0, 1, 2], 2, "num_classes, dim"),
    ],
)
def test_graph_sampler_rejects_inconsistent_inputs(features, labels, classes_per_batch, message):
    with pytest.raises(ValueError, match=message):
        GraphSampler(features, labels, classes_per_batch, 2, similarity="cosine")
