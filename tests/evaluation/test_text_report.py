import pandas as pd

from clip_reid.evaluation.text_report import sentences_of_test_identities

INDEX = pd.DataFrame({
    "path": ["t1.jpg", "t2.jpg", "q1.jpg", "g1.jpg", "g2.jpg", "g0.jpg"],
    "split": ["train", "train", "query", "gallery", "gallery", "gallery"],
    "pid": [1, 2, 5, 5, 6, 0],
})


def test_only_sentences_of_test_identities_are_queries():
    captions = pd.DataFrame({
        "path": ["t1.jpg", "t2.jpg", "q1.jpg", "g1.jpg", "g2.jpg", "g0.jpg", "g2.jpg"],
        "pid": [1, 2, 5, 5, 6, 0, 6],
        "caption": ["train one", "train two", "five a", "five a", "six", "distractor", "six csv"],
        "source": ["attributes"] * 6 + ["csv"],
    })
    queries = sentences_of_test_identities(captions, INDEX)
    assert queries.to_dict("records") == [{"pid": 5, "caption": "five a"},
                                          {"pid": 6, "caption": "six"}]
    assert len(sentences_of_test_identities(captions, INDEX, sources=None)) == 3
    # a training identity that also appears in the test split never contributes its sentences
    leaked = INDEX.assign(pid=[5, 2, 5, 5, 6, 0])
    assert sentences_of_test_identities(captions, leaked)["pid"].tolist() == [6]
