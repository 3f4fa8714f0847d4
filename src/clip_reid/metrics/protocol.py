"""The Market-1501 evaluation rule, in one place for every evaluator (dense, top-k, reference,
predictions): a gallery item showing the query's identity from the query's own camera is the
same view, not a retrieval, and junk never counts. Distractors are ordinary gallery items."""

from __future__ import annotations

import numpy as np

# The Market-1501 labels the rule reads (the dataset readers write them).
JUNK_PID = -1  # junk: left out of the index, ignored in every ranking (official)
DISTRACTOR_PID = 0  # distractor: an ordinary gallery identity matching no query


def excluded_from_ranking(q_pids: np.ndarray, q_camids: np.ndarray, g_pids: np.ndarray,
             g_camids: np.ndarray) -> np.ndarray:
    """True where a gallery item is removed from a query's ranking: same pid AND same camera,
    or junk. Arrays broadcast, so one call masks a whole chunk: pass query labels as
    (rows, 1) against gallery labels gathered as (rows, k), or one query against (gallery,)."""
    return ((g_pids == q_pids) & (g_camids == q_camids)) | (g_pids == JUNK_PID)
