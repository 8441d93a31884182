"""The Porter stemmer against the published examples of Porter (1980)."""

from __future__ import annotations

import pytest

from paxis_router.skills._porter import porter_stem
from paxis_router.skills.tokenize import ENGLISH_STOPWORDS, Tokenizer

CASES = {
    "caresses": "caress",
    "ponies": "poni",
    "ties": "ti",
    "cats": "cat",
    "feed": "feed",
    "agreed": "agre",
    "plastered": "plaster",
    "motoring": "motor",
    "sing": "sing",
    "conflated": "conflat",
    "troubled": "troubl",
    "sized": "size",
    "hopping": "hop",
    "falling": "fall",
    "hissing": "hiss",
    "failing": "fail",
    "filing": "file",
    "happy": "happi",
    "relational": "relat",
    "conditional": "condit",
    "valenci": "valenc",
    "digitizer": "digit",
    "vietnamization": "vietnam",
    "operator": "oper",
    "decisiveness": "decis",
    "hopefulness": "hope",
    "sensibiliti": "sensibl",
    "triplicate": "triplic",
    "electrical": "electr",
    "goodness": "good",
    "revival": "reviv",
    "adjustable": "adjust",
    "replacement": "replac",
    "adoption": "adopt",
    "effective": "effect",
    "probate": "probat",
    "controll": "control",
    "roll": "roll",
    "is": "is",
}


@pytest.mark.parametrize(("word", "stem"), sorted(CASES.items()))
def test_porter_examples(word: str, stem: str) -> None:
    assert porter_stem(word) == stem


def test_tokenizer_options_and_config_round_trip() -> None:
    assert Tokenizer().tokens("It's the C++ and C# guide") == ["c++", "c#", "guid"]
    assert Tokenizer(stopwords=False, stem=False).tokens("The Guide") == ["the", "guide"]
    custom = Tokenizer(stopwords=frozenset({"guide"}), min_len=2)
    assert custom.tokens("a guide to x y zz") == ["to", "zz"]
    for tok in (Tokenizer(), custom, Tokenizer(stopwords=False)):
        again = Tokenizer.from_config(tok.config())
        assert (again.stem, again.stopwords, again.min_len) == (
            tok.stem,
            tok.stopwords,
            tok.min_len,
        )
    assert "the" in ENGLISH_STOPWORDS and "data" not in ENGLISH_STOPWORDS
