import itertools

import pytest

from clip_reid.data.attribute_sentences import (
    LOWER_COLOURS,
    UPPER_COLOURS,
    attribute_sentences,
    clothing_phrase,
    person_phrase,
)

BASE = dict(gender=2, hair=2, up=2, down=2, clothes=1, age=1, hat=1, backpack=1, bag=1, handbag=2,
            upred=2, downblack=2)


def test_issue_example_sentence():
    first, second = attribute_sentences(BASE)
    assert first == (
        "A young woman with long hair in a short-sleeved red top and a black skirt, "
        "carrying a handbag."
    )
    assert second == "A photo of a young woman wearing a short-sleeved red top and a black skirt."


@pytest.mark.parametrize(
    ("gender", "age", "expected"),
    [(1, 1, "young man"), (2, 2, "teenage woman"), (1, 3, "man"), (2, 4, "elderly woman")],
)
def test_person_phrase_every_age_and_gender(gender, age, expected):
    assert person_phrase({**BASE, "gender": gender, "age": age}) == expected


@pytest.mark.parametrize(
    ("clothes", "down", "garment"),
    [(1, 1, "a black long dress"), (1, 2, "a black skirt"), (2, 1, "black trousers"),
     (2, 2, "black shorts")],
)
def test_every_lower_body_combination(clothes, down, garment):
    assert clothing_phrase({**BASE, "clothes": clothes, "down": down}).endswith(garment)


def test_every_colour_and_sleeve_value_appears():
    for up, colour in itertools.product((1, 2), UPPER_COLOURS):
        codes = {k: v for k, v in BASE.items() if k != "upred"} | {"up": up, "up" + colour: 2}
        sleeve = "long-sleeved" if up == 1 else "short-sleeved"
        assert f"{sleeve} {colour} top" in attribute_sentences(codes)[0]
    for colour in LOWER_COLOURS:
        codes = {k: v for k, v in BASE.items() if k != "downblack"} | {"down" + colour: 2}
        assert f"{colour} skirt" in attribute_sentences(codes)[0]


def test_accessories_and_hair():
    codes = BASE | {"hat": 2, "backpack": 2, "bag": 2, "handbag": 2, "hair": 1}
    sentence = attribute_sentences(codes)[0]
    assert "with short hair" in sentence
    assert sentence.endswith(", wearing a hat, carrying a backpack, a bag and a handbag.")
    assert attribute_sentences(BASE | {"handbag": 1})[0].endswith("black skirt.")


def test_missing_colour_is_left_out_and_article_agrees():
    codes = {k: v for k, v in BASE.items() if k not in ("upred", "downblack")} | {"age": 4}
    assert attribute_sentences(codes)[1] == (
        "A photo of an elderly woman wearing a short-sleeved top and a skirt."
    )


def test_bad_code_names_the_attribute():
    with pytest.raises(ValueError, match="'gender' must be coded 1 or 2, got 3"):
        attribute_sentences(BASE | {"gender": 3})
