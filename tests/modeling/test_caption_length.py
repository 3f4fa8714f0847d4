"""Captions longer than the text tower's context are counted once, before training."""

import logging

import pytest

from clip_reid.modeling.caption_length import report_long_captions
from clip_reid.modeling.clip_factory import text_context_length


def test_the_context_length_comes_from_the_architecture_config():
    assert text_context_length("RN50") == text_context_length("tiny-rn") == 77
    with pytest.raises(ValueError, match="Unknown CLIP architecture 'RN5O'"):
        text_context_length("RN5O")


def test_distinct_long_captions_are_counted_in_one_line(caplog):
    long = "a person in a very " + "very " * 80 + "red top"
    with caplog.at_level(logging.INFO, logger="clip_reid.modeling.caption_length"):
        assert report_long_captions([long, "short.", long], "tiny-rn") == 1
        assert report_long_captions(["word " * 75], "tiny-rn") == 0  # 75 tokens + start + end
        assert report_long_captions([], "tiny-rn") == 0
    assert [r.getMessage() for r in caplog.records] == [
        "1 of 2 distinct captions exceed the 77-token context of the tiny-rn text tower and "
        "will be truncated (end-of-text token kept)"]
