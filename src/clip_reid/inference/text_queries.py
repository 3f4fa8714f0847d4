"""Checks on free-text queries before they reach CLIP's tokenizer, which would otherwise accept
anything: it embeds an empty string as a real query and silently cuts long ones."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from clip_reid.text_limits import text_problem

# CLIP's tokenizer wraps every sentence in a start and an end token.
SPECIAL_TOKENS = 2


class InvalidTextError(ValueError):
    """A text query that cannot be embedded; the message names the query and the fix."""


def checked_sentences(
    sentences: Sequence[str], encode: Callable[[str], list[int]], context_length: int,
    truncate: bool = False, names: Sequence[str] | None = None,
) -> list[str]:
    """``sentences`` as a list, after checking each is a non-empty string within the character
    caps (``text_limits``, checked before tokenising) that fits the context.

    ``encode`` is the tokenizer's BPE encoder (without start/end tokens); ``names`` label the
    sentences in messages (default: "Text query <position>"). A sentence longer than
    ``context_length - 2`` BPE tokens is an error unless ``truncate``: then, as CLIP does, only
    its first ``context_length - 2`` tokens are read (the end token replaces the rest).
    """
    if isinstance(sentences, str | bytes):
        raise InvalidTextError(
            "sentences must be a list of strings, got a single string: wrap it in a list, "
            'e.g. encode_text(["a woman in a red top"]).'
        )
    items = list(sentences)
    if not items:
        raise InvalidTextError("No text to embed: pass a non-empty list of sentences.")
    limit = context_length - SPECIAL_TOKENS
    labels = [f"Text query {n}" for n in range(len(items))] if names is None else [
        f"Text query {name!r}" for name in names]
    for label, sentence in zip(labels, items, strict=True):
        if not isinstance(sentence, str):
            raise InvalidTextError(
                f"{label} is a {type(sentence).__name__}, not a string: pass "
                "sentences as text."
            )
        problem = text_problem(sentence)
        if problem:  # refused before the tokenizer, whose BPE is quadratic in word length
            raise InvalidTextError(
                f"{label} {problem}: describe the person in a sentence or two, e.g. 'a woman "
                "in a red top'."
            )
        length = len(encode(sentence)) if sentence.strip() else 0
        if length == 0:
            raise InvalidTextError(
                f"{label} is empty (or only whitespace): describe the person, e.g. "
                "'a woman in a red top'."
            )
        if length > limit and not truncate:
            raise InvalidTextError(
                f"{label} is {length} tokens long but the text encoder reads at most "
                f"{limit} ({context_length} positions including the start and end tokens): "
                f"shorten it, or allow truncation to keep only its first {limit} tokens "
                f"(starting {sentence[:40]!r})."
            )
    return items
