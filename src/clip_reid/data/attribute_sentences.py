"""Turn Market-1501 attribute codes into deterministic, grammatical English sentences.

Codes follow the Market-1501 attribute file (1/2 coded; age 1..4). Each identity gets the same
sentences every time, so captions are reproducible and cacheable.
"""

from __future__ import annotations

from collections.abc import Mapping

UPPER_COLOURS = ("black", "white", "red", "purple", "yellow", "gray", "blue", "green")
LOWER_COLOURS = ("black", "white", "pink", "purple", "yellow", "gray", "blue", "green", "brown")
AGE_WORDS = {1: "young", 2: "teenage", 3: "", 4: "elderly"}
NOUNS = {1: "man", 2: "woman"}
CARRIED = (("backpack", "a backpack"), ("bag", "a bag"), ("handbag", "a handbag"))
YES = 2


def _article(phrase: str) -> str:
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def _join(items: list[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _colour(codes: Mapping[str, int], prefix: str, colours: tuple[str, ...]) -> str | None:
    chosen = [name for name in colours if codes.get(prefix + name) == YES]
    return chosen[0] if len(chosen) == 1 else None  # none or ambiguous: leave the colour out


def _lower_garment(codes: Mapping[str, int]) -> str:
    is_long = codes.get("down") == 1
    if codes.get("clothes") == 1:
        return "long dress" if is_long else "skirt"
    return "trousers" if is_long else "shorts"


def _check_codes(codes: Mapping[str, int]) -> None:
    for name in ("gender", "hair", "up", "down", "clothes"):
        if codes.get(name) not in (1, 2):
            raise ValueError(f"Attribute {name!r} must be coded 1 or 2, got {codes.get(name)!r}.")
    if codes.get("age") not in AGE_WORDS:
        raise ValueError(f"Attribute 'age' must be coded 1..4, got {codes.get('age')!r}.")


def person_phrase(codes: Mapping[str, int]) -> str:
    """'young woman', 'man', 'elderly man' …"""
    _check_codes(codes)
    age = AGE_WORDS[int(codes["age"])]
    return f"{age} {NOUNS[int(codes['gender'])]}".strip()


def clothing_phrase(codes: Mapping[str, int]) -> str:
    """'a short-sleeved red top and a black skirt' (colours omitted when not annotated)."""
    sleeves = "long-sleeved" if codes["up"] == 1 else "short-sleeved"
    upper_colour = _colour(codes, "up", UPPER_COLOURS)
    top = " ".join(w for w in (sleeves, upper_colour, "top") if w)
    garment = _lower_garment(codes)
    lower_colour = _colour(codes, "down", LOWER_COLOURS)
    lower = f"{lower_colour} {garment}" if lower_colour else garment
    lower = lower if garment in ("trousers", "shorts") else _article(lower)
    return f"{_article(top)} and {lower}"


def accessories_phrase(codes: Mapping[str, int]) -> str:
    """', wearing a hat, carrying a backpack and a handbag' or ''."""
    parts = []
    if codes.get("hat") == YES:
        parts.append("wearing a hat")
    carried = [phrase for name, phrase in CARRIED if codes.get(name) == YES]
    if carried:
        parts.append("carrying " + _join(carried))
    return "".join(", " + part for part in parts)


def attribute_sentences(codes: Mapping[str, int]) -> list[str]:
    """Two phrasings of one identity's attributes, e.g.

    'A young woman with long hair in a short-sleeved red top and a black skirt, carrying a
    handbag.' and 'A photo of a young woman wearing a short-sleeved red top and a black skirt.'
    """
    codes = {key: int(value) for key, value in codes.items() if _is_code(value)}
    person = person_phrase(codes)
    hair = "long hair" if codes["hair"] == YES else "short hair"
    clothes = clothing_phrase(codes)
    first = f"{_article(person)} with {hair} in {clothes}{accessories_phrase(codes)}."
    second = f"A photo of {_article(person)} wearing {clothes}."
    return [first[0].upper() + first[1:], second]


def _is_code(value: object) -> bool:
    try:
        int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return False
    return True
