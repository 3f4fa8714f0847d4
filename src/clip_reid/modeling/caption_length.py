"""How much of a caption CLIP's text tower reads: a caption longer than its context is cut
(``TextEncoder.tokenize`` keeps the end-of-text token), which the user should hear about once,
before training on it, rather than find out from the results."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from clip_reid.modeling.clip_factory import text_context_length, tokenizer_for

logger = logging.getLogger(__name__)


def report_long_captions(captions: Iterable[str], arch: str) -> int:
    """The number of distinct ``captions`` longer than ``arch``'s text context, also logged in
    one INFO line. Tokenizing to one position more than the context shows which captions it
    cuts: their extra position is not padding."""
    unique = list(dict.fromkeys(captions))
    if not unique:
        return 0
    context = text_context_length(arch)
    tokens = tokenizer_for(arch)(unique, context_length=context + 1)
    long = int((tokens[:, context] != 0).sum())
    if long:
        logger.info("%d of %d distinct captions exceed the %d-token context of the %s text tower "
                    "and will be truncated (end-of-text token kept)", long, len(unique), context,
                    arch)
    return long
