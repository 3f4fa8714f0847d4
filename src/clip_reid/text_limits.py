"""Caps on free text before CLIP's tokenizer reads it.

CLIP's BPE merges each word in time quadratic in its length: a 4,000-letter "word" takes about
1.4 s, 16,000 letters several seconds, while the text tower reads only 75 tokens (about 300
characters of English). So every text entry point (the search page, the served model,
``text_search``, caption sources) caps characters and word length first: queries over the caps
are refused with a message, captions are cut and counted. No kedro imports (library code uses
it).
"""

from __future__ import annotations

MAX_TEXT_CHARS = 1000  # characters of one query or caption
MAX_WORD_CHARS = 100  # characters between two spaces (1.5 ms of BPE at most)


def text_problem(text: str) -> str | None:
    """Why ``text`` exceeds the caps ("is 16,000 characters long ..."), or None."""
    if len(text) > MAX_TEXT_CHARS:
        return (f"is {len(text):,} characters long, more than the {MAX_TEXT_CHARS:,} a text "
                "may have")
    longest = max(text.split(), key=len, default="")
    if len(longest) > MAX_WORD_CHARS:
        return (f"has a word of {len(longest):,} characters (starting {longest[:20]!r}), more "
                f"than the {MAX_WORD_CHARS} a word may have")
    return None


def capped(text: str) -> str:
    """``text`` within the caps: cut after ``MAX_TEXT_CHARS`` characters (at a space when there
    is one), and every longer word cut to ``MAX_WORD_CHARS``."""
    if len(text) > MAX_TEXT_CHARS:
        cut = text[:MAX_TEXT_CHARS + 1]
        space = cut.rfind(" ")
        text = cut[:space] if space > 0 else cut[:MAX_TEXT_CHARS]
    if text_problem(text) is None:
        return text
    return " ".join(word[:MAX_WORD_CHARS] for word in text.split())
