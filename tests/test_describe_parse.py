"""The describe answer parser: strict JSON first, tolerant fallback, adversarial text."""

from __future__ import annotations

import json
import time

import pyarrow as pa
import pytest

from qfeat.pipeline.describe.parse import (
    DIMENSIONS,
    LEVELS,
    MAX_CONTENT,
    MAX_SCAN,
    level_value,
    parse_answer,
)

GOOD = {
    "content": "a blue sky with clouds",
    "colour": "good",
    "noise": "poor",
    "artifact": "fair",
    "blur": "excellent",
    "overall": "bad",
}
GOOD_RATINGS = {"colour": 4, "noise": 2, "artifact": 3, "blur": 5, "overall": 1}
NONE = dict.fromkeys(DIMENSIONS)


def test_plain_json():
    content, ratings, ok = parse_answer(json.dumps(GOOD))
    assert (content, ratings, ok) == ("a blue sky with clouds", GOOD_RATINGS, True)


@pytest.mark.parametrize(
    "text",
    [
        "```json\n" + json.dumps(GOOD) + "\n```",
        "```\n" + json.dumps(GOOD, indent=2) + "\n```",
        "Sure! Here is the JSON:\n" + json.dumps(GOOD) + "\nHope this helps.",
        "Answer: " + json.dumps(GOOD) + " {not json}",
        "{broken " + json.dumps(GOOD),  # first brace is not an object: the next one is
        "  \n" + json.dumps(GOOD) + "\n\n",
    ],
)
def test_json_inside_other_text(text):
    assert parse_answer(text) == ("a blue sky with clouds", GOOD_RATINGS, True)


def test_levels_case_punctuation_and_numbers():
    answer = {
        "content": "grass",
        "Colour": "GOOD",
        "noise": " Poor. ",
        "artifact": "fair quality",
        "blur": 5,
        "overall": 2.0,
    }
    _, ratings, ok = parse_answer(json.dumps(answer))
    assert ratings == {"colour": 4, "noise": 2, "artifact": 3, "blur": 5, "overall": 2}
    assert ok


@pytest.mark.parametrize(
    "value", ["terrible", "very good", "good/fair", "", None, True, 0, 6, 3.5, [4], {"v": 4}]
)
def test_invalid_levels_are_none(value):
    answer = {**GOOD, "noise": value}
    content, ratings, ok = parse_answer(json.dumps(answer))
    assert ratings["noise"] is None and not ok
    assert ratings["colour"] == 4 and content == "a blue sky with clouds"


def test_level_value():
    assert [level_value(w) for w in LEVELS] == [1, 2, 3, 4, 5]
    assert level_value("Excellent!") == 5
    assert level_value(3, allow_int=False) is None
    assert level_value(False) is None


@pytest.mark.parametrize(
    "key, dim",
    [
        ("color", "colour"),
        ("colour_quality", "colour"),
        ("Color Quality", "colour"),
        ("compression", "artifact"),
        ("compression_artifacts", "artifact"),
        ("artefacts", "artifact"),
        ("sharpness", "blur"),
        ("noise_level", "noise"),
        ("overall_quality", "overall"),
        ("quality", "overall"),
    ],
)
def test_key_synonyms(key, dim):
    answer = {k: v for k, v in GOOD.items() if k != dim}
    answer[key] = "excellent" if GOOD[dim] != "excellent" else "bad"
    _, ratings, ok = parse_answer(json.dumps(answer))
    assert ratings[dim] == (5 if GOOD[dim] != "excellent" else 1)
    assert ok


def test_own_name_beats_synonym():
    answer = {**GOOD, "sharpness": "bad", "color": "excellent"}
    _, ratings, _ = parse_answer(json.dumps({"sharpness": "bad", **answer}))
    assert ratings["blur"] == 5 and ratings["colour"] == 4


def test_missing_dimension_is_not_ok():
    answer = {k: v for k, v in GOOD.items() if k != "artifact"}
    content, ratings, ok = parse_answer(json.dumps(answer))
    assert ratings["artifact"] is None and not ok and content == GOOD["content"]


def test_content_optional_and_non_string():
    answer = {k: v for k, v in GOOD.items() if k != "content"}
    assert parse_answer(json.dumps(answer)) == (None, GOOD_RATINGS, True)
    content, _, ok = parse_answer(json.dumps({**answer, "content": ["sky", 3]}))
    assert content is None and ok
    content, _, _ = parse_answer(json.dumps({**answer, "description": "a dog"}))
    assert content == "a dog"


@pytest.mark.parametrize(
    "text",
    [
        "content: a red car\ncolour: good\nnoise: poor\nartifact: fair\nblur: excellent\n"
        "overall: bad",
        "**Colour:** Good\n**Noise:** Poor\n**Compression artifacts:** Fair\n"
        "**Blur:** Excellent\n**Overall:** Bad",
        "The colour quality of this region is good. The noise is poor, artifact = fair, "
        "blur: excellent and overall quality is bad.",
        # single quotes, trailing commas: not JSON, caught by the fallback
        "{'colour': 'good', 'noise': 'poor', 'artifact': 'fair', 'blur': 'excellent', "
        "'overall': 'bad',}",
        '{"colour": "good", "noise": "poor", "artifact": "fair", "blur": "excellent", '
        '"overall": "bad"',  # truncated by max_new_tokens: no closing brace
    ],
)
def test_tolerant_fallback(text):
    _, ratings, ok = parse_answer(text)
    assert ratings == GOOD_RATINGS
    assert not ok


def test_tolerant_content():
    content, _, _ = parse_answer('"content": "a \\"quoted\\" tree", "colour": "good"')
    assert content == 'a "quoted" tree'
    content, _, _ = parse_answer("Description: a red car\ncolour: good")
    assert content == "a red car"


def test_tolerant_fills_only_what_strict_missed():
    text = json.dumps({**GOOD, "blur": "terrible"}) + "\nblur: good"
    _, ratings, ok = parse_answer(text)
    assert ratings == {**GOOD_RATINGS, "blur": 4} and not ok


def test_quality_alone_does_not_steal_other_dimensions():
    _, ratings, _ = parse_answer("colour quality: good. noise quality: poor.")
    assert ratings == {**NONE, "colour": 4, "noise": 2}


def test_unknown_words_and_garbage():
    assert parse_answer("colour: terrible, noise: awful") == (None, NONE, False)
    assert parse_answer("") == (None, NONE, False)
    assert parse_answer("\x00\x01\ufffd garbage ]]]}}}{{{") == (None, NONE, False)
    assert parse_answer(None) == (None, NONE, False)
    assert parse_answer(b'{"colour": "good"}') == (None, NONE, False)
    assert parse_answer("[1, 2, 3]") == (None, NONE, False)
    assert parse_answer("colourful: good, noisy: bad") == (None, NONE, False)


def test_nested_braces_and_braces_in_strings():
    answer = {**GOOD, "content": "a sign reading {hello} and }{", "extra": {"a": {"b": [1]}}}
    content, ratings, ok = parse_answer("x } { " + json.dumps(answer))
    assert content == "a sign reading {hello} and }{" and ratings == GOOD_RATINGS and ok


def test_first_object_wins():
    other = {**GOOD, "colour": "bad"}
    _, ratings, _ = parse_answer(json.dumps(GOOD) + "\n" + json.dumps(other))
    assert ratings["colour"] == 4


def test_html_and_script_stay_data():
    script = "<script>alert('x')</script><img src=x onerror=alert(1)>"
    content, ratings, ok = parse_answer(json.dumps({**GOOD, "content": script}))
    assert content == script and ok
    content, _, _ = parse_answer(json.dumps({**GOOD, "content": "__import__('os')"}))
    assert content == "__import__('os')"


def test_unicode_and_lone_surrogates():
    content, _, ok = parse_answer(json.dumps({**GOOD, "content": "ciel bleu ☁️ 天空 ñ"}))
    assert content == "ciel bleu ☁️ 天空 ñ" and ok
    text = '{"content": "bad \\ud800 half", ' + json.dumps(GOOD)[1:]
    content, _, _ = parse_answer(text)
    content.encode("utf-8")  # would raise on a lone surrogate
    pa.array([content], pa.string())
    _, ratings, _ = parse_answer(json.dumps({**GOOD, "colour": "ＧＯＯＤ"}))  # fullwidth
    assert ratings["colour"] is None


def test_long_content_is_cut():
    content, _, ok = parse_answer(json.dumps({**GOOD, "content": "x" * 5000}))
    assert len(content) == MAX_CONTENT and ok


def test_huge_and_hostile_inputs_are_bounded():
    cases = [
        "{" * 200_000,
        "[" * 200_000 + json.dumps(GOOD),
        '{"a":' * 50_000 + "1" + "}" * 50_000,
        "```" * 100_000,
        '"content": "' + "\\" * 100_000,
        "colour " * 100_000,
        "9" * 100_000,
        '{"colour": ' + "9" * 100_000 + "}",
        "{" + '"k": "v", ' * 100_000 + "}",
    ]
    for text in cases:
        t0 = time.perf_counter()
        content, ratings, ok = parse_answer(text)
        assert time.perf_counter() - t0 < 2.0, text[:40]
        assert set(ratings) == set(DIMENSIONS)
        assert content is None or len(content) <= MAX_CONTENT


def test_text_beyond_scan_limit_is_ignored():
    text = " " * MAX_SCAN + json.dumps(GOOD)
    assert parse_answer(text) == (None, NONE, False)


def test_non_string_keys_and_values_never_crash():
    for value in ["{}", '{"": ""}', '{"colour": {"colour": "good"}}', '{"1": 2}', "null"]:
        content, ratings, ok = parse_answer(value)
        assert not ok and content is None
