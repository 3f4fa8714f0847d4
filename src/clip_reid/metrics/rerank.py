"""k-reciprocal re-ranking (Zhong et al., CVPR 2017) in memory that grows with N x k, not N^2.

Same result as the dense step-by-step version in ``tests/metrics/rerank_oracle.py`` (read it
for the algorithm; the tests hold it as the oracle), computed
differently: one chunked pass over the N = queries + gallery rows keeps only each row's maximum
and its k1 + 1 nearest neighbours (and the query x gallery block, which is the output); the
reciprocal sets, their expansion, the weights V and the query expansion are sparse matrices with
O(N x k) non-zeros; the Jaccard overlap sum(min(V_i, V_j)) is accumulated for a chunk of queries
at a time over the non-zeros they share with the gallery (an inverted index, as the paper).
Peak memory: the (num_query, num_gallery) output plus chunk-sized buffers plus O(N x k).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from scipy import sparse

from clip_reid.metrics.distance import distances_from_prepared
from clip_reid.metrics.rerank_inputs import RerankInputs, row_maxima

PAIR_BUDGET = 1_000_000
"""Largest number of (query entry, gallery entry) pairs joined at once in the Jaccard step."""


def re_rank(
    query_features: Any,
    gallery_features: Any,
    k1: int = 20,
    k2: int = 6,
    lambda_value: float = 0.3,
    metric: str = "euclidean",
    chunk_size: int = 256,
    normalize: bool = True,
) -> torch.Tensor:
    """Re-ranked (num_query, num_gallery) float32 distances (smaller = closer).

    ``metric`` is the original distance: ``euclidean`` (squared, the official CLIP-ReID choice)
    or ``cosine``. ``normalize`` L2-normalises the features first, as the official evaluator
    (then squared euclidean and cosine give the same result). ``chunk_size`` rows of the N x N
    distances are computed at a time.
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}.")
    inputs = RerankInputs.build(
        query_features, gallery_features, k1, k2, lambda_value, metric, normalize
    )
    neighbours, row_max, output = nearest_neighbours(inputs, chunk_size)
    reciprocal = reciprocal_matrix(neighbours[:, : k1 + 1])
    half = reciprocal_matrix(neighbours[:, : inputs.half_k1 + 1])
    expansion = expand(reciprocal, half)
    weights = neighbour_weights(expansion, inputs, row_max)
    if k2 > 1:
        weights = query_expansion(weights, neighbours[:, :k2])
    overlap_into(output, weights, inputs, chunk_size)
    return torch.from_numpy(output)


def nearest_neighbours(
    inputs: RerankInputs, chunk_size: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(N, k1 + 1) nearest neighbours in stable order, row maxima, and the normalised
    query x gallery distances (float32, to become the output)."""
    features, num_query, num_all = inputs.features, inputs.num_query, inputs.num_all
    width = inputs.k1 + 1
    neighbours = np.empty((num_all, width), dtype=np.int64)
    row_max = np.empty(num_all, dtype=np.float32)
    query_gallery = np.empty((num_query, num_all - num_query), dtype=np.float32)
    with torch.no_grad():
        sq_norms = features.pow(2).sum(1)
        for start in range(0, num_all, chunk_size):
            stop = min(start + chunk_size, num_all)
            block = distances_from_prepared(features[start:stop], features, inputs.metric, sq_norms)
            block_max = row_maxima(block)
            row_max[start:stop] = block_max.numpy()
            neighbours[start:stop] = stable_smallest(block, block_max, width)
            if start < num_query:
                query_rows = slice(start, min(stop, num_query))
                count = query_rows.stop - start
                query_gallery[query_rows] = (
                    block[:count, num_query:] / block_max[:count, None]
                ).numpy()
    return neighbours, row_max, query_gallery


def stable_smallest(block: torch.Tensor, block_max: torch.Tensor, width: int) -> np.ndarray:
    """Column indices of the ``width`` smallest values of each row of ``block / block_max``, in
    the order of a stable argsort (value, then index), without normalising or sorting whole rows.

    Dividing by a row's positive maximum keeps the order but may round two values into a tie,
    so the order is decided on the normalised values of the candidates; a row whose value at
    the cut is tied with the next one falls back to a full stable sort (rare).
    """
    candidates = min(width + 1, block.shape[1])
    values, part = torch.topk(block, candidates, dim=1, largest=False, sorted=True)
    values = (values / block_max[:, None]).numpy()
    part = part.numpy()
    order = np.lexsort((part, values), axis=-1)  # by value, ties by index
    values = np.take_along_axis(values, order, axis=1)
    chosen = np.take_along_axis(part, order, axis=1)[:, :width]
    if candidates > width:
        for row in np.flatnonzero(values[:, width] == values[:, width - 1]).tolist():
            normalised = (block[row] / block_max[row]).numpy()
            chosen[row] = np.argsort(normalised, kind="stable")[:width]
    return chosen


def reciprocal_matrix(neighbours: np.ndarray) -> sparse.csr_matrix:
    """Boolean R with R[i, j] = 1 when j is among i's neighbours and i among j's."""
    num_all, width = neighbours.shape
    rows = np.repeat(np.arange(num_all), width)
    forward = sparse.csr_matrix(
        (np.ones(rows.size, dtype=np.float64), (rows, neighbours.ravel())), shape=(num_all, num_all)
    )
    return forward.multiply(forward.T).tocsr()


def expand(reciprocal: sparse.csr_matrix, half: sparse.csr_matrix) -> sparse.csr_matrix:
    """R(i) united with every R(c, k1/2), c in R(i), sharing more than 2/3 of its members."""
    shared = reciprocal.multiply(reciprocal @ half.T).tocoo()  # |R(i) & R_half(c)| for c in R(i)
    half_size = np.asarray(half.sum(axis=1)).ravel()
    accepted = shared.data > 2 / 3 * half_size[shared.col]
    accept = sparse.csr_matrix(
        (np.ones(accepted.sum()), (shared.row[accepted], shared.col[accepted])),
        shape=reciprocal.shape,
    )
    expansion = (reciprocal + accept @ half).tocsr()
    expansion.data[:] = 1.0
    return expansion


def neighbour_weights(
    expansion: sparse.csr_matrix, inputs: RerankInputs, row_max: np.ndarray
) -> sparse.csr_matrix:
    """V[i, j] = exp(-d(i, j) / max_i) over i's expansion, normalised to sum 1 per row."""
    expansion.sort_indices()
    rows = np.repeat(np.arange(expansion.shape[0]), np.diff(expansion.indptr))
    distances = pair_distances(inputs, rows, expansion.indices) / row_max[rows]
    weight = np.exp(-distances.astype(np.float64))
    row_sum = np.bincount(rows, weights=weight, minlength=expansion.shape[0])
    return sparse.csr_matrix(
        (weight / row_sum[rows], expansion.indices, expansion.indptr), shape=expansion.shape
    )


def pair_distances(
    inputs: RerankInputs, rows: np.ndarray, cols: np.ndarray, block: int = 4096
) -> np.ndarray:
    """Distances of the listed (row, col) image pairs, as the dense matrix holds them
    (gathered ``block`` pairs at a time to keep the copies small)."""
    features = inputs.features.numpy()
    sq_norms = np.einsum("ij,ij->i", features, features)
    out = np.empty(len(rows), dtype=np.float32)
    for start in range(0, len(rows), block):
        left, right = rows[start : start + block], cols[start : start + block]
        similarity = np.einsum("ij,ij->i", features[left], features[right])
        if inputs.metric == "cosine":
            out[start : start + block] = 1 - similarity
        else:
            squared = sq_norms[left] + sq_norms[right] - 2 * similarity
            out[start : start + block] = np.maximum(squared, 0)
    return out


def query_expansion(weights: sparse.csr_matrix, closest: np.ndarray) -> sparse.csr_matrix:
    """V[i] replaced by the mean of V over i's ``k2`` closest images (i itself included)."""
    num_all, k2 = closest.shape
    mean = sparse.csr_matrix(
        (np.full(closest.size, 1.0 / k2), (np.repeat(np.arange(num_all), k2), closest.ravel())),
        shape=(num_all, num_all),
    )
    return (mean @ weights).tocsr()


def overlap_into(
    output: np.ndarray, weights: sparse.csr_matrix, inputs: RerankInputs, chunk_size: int
) -> None:
    """Turn ``output`` (normalised original query x gallery distances) into the final
    (1 - lambda) * Jaccard + lambda * original, a bounded chunk of queries at a time."""
    num_query = inputs.num_query
    num_gallery = inputs.num_all - num_query
    queries = weights[:num_query].tocsr()
    gallery = weights[num_query:].tocsc()
    entry_rows = np.repeat(np.arange(num_query), np.diff(queries.indptr))
    column_nnz = np.diff(gallery.indptr)
    pairs_per_query = np.bincount(
        entry_rows, weights=column_nnz[queries.indices], minlength=num_query
    )
    for rows in bounded_chunks(pairs_per_query, chunk_size, PAIR_BUDGET):
        overlap = chunk_overlap(queries[rows].tocoo(), gallery, num_gallery)
        output[rows] *= inputs.lambda_value
        output[rows] += (1 - inputs.lambda_value) * (1 - overlap / (2 - overlap))


def bounded_chunks(costs: np.ndarray, max_rows: int, budget: int) -> list[slice]:
    """Consecutive slices of at most ``max_rows`` rows whose cost stays below about
    ``budget`` (a slice starts when the running cost crosses a multiple of it)."""
    before = np.cumsum(costs) - costs
    key = (before // budget) * (len(costs) + 1) + np.arange(len(costs)) // max_rows
    edges = [0, *(np.flatnonzero(np.diff(key)) + 1).tolist(), len(costs)]
    return [slice(a, b) for a, b in zip(edges[:-1], edges[1:], strict=True)]


def chunk_overlap(
    queries: sparse.coo_matrix, gallery: sparse.csc_matrix, num_gallery: int
) -> np.ndarray:
    """sum_k min(V[q, k], V[g, k]) for every query q of the chunk and gallery image g."""
    starts = gallery.indptr[queries.col]
    counts = gallery.indptr[queries.col + 1] - starts
    total = int(counts.sum())
    offsets = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
    positions = np.repeat(starts, counts) + offsets
    query_rows = np.repeat(queries.row, counts)
    smaller = np.minimum(np.repeat(queries.data, counts), gallery.data[positions])
    flat = query_rows * num_gallery + gallery.indices[positions]
    overlap = np.bincount(flat, weights=smaller, minlength=queries.shape[0] * num_gallery)
    return overlap.reshape(queries.shape[0], num_gallery)
