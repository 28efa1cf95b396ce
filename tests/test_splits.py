"""Splits: official where available, otherwise seeded, content-disjoint 80/20."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from qfeat.trainers.splits import make_splits


def table(n_groups=30, per_group=5, split=None):
    rows = [
        {"item_id": f"g{g}/i{i}.png", "group": f"g{g}", "split": split}
        for g in range(n_groups)
        for i in range(per_group)
    ]
    return pd.DataFrame(rows)


def test_random_splits_are_content_disjoint_and_deterministic():
    items = table()
    splits = make_splits(items, n_splits=10, seed=0)
    assert len(splits) == 10
    groups = items["group"].to_numpy()
    for s in splits:
        test = s.test["test"]
        parts = [s.train, s.val, test]
        assert sum(len(p) for p in parts) == len(items)
        sets = [set(groups[p]) for p in parts]
        assert not (sets[0] & sets[1] or sets[0] & sets[2] or sets[1] & sets[2])
        assert len(test) / len(items) == pytest.approx(0.2, abs=0.04)
        assert len(s.val) > 0
    again = make_splits(items, n_splits=10, seed=0)
    assert all(
        np.array_equal(a.test["test"], b.test["test"]) for a, b in zip(splits, again, strict=True)
    )
    assert not np.array_equal(splits[0].test["test"], splits[1].test["test"])
    assert not np.array_equal(splits[0].test["test"], make_splits(items, 1, seed=1)[0].test["test"])


def test_items_without_group_are_their_own_group():
    items = table(n_groups=50, per_group=1)
    items["group"] = None
    s = make_splits(items, n_splits=1)[0]
    assert len(s.test["test"]) == 10 and len(s.train) + len(s.val) == 40


def test_official_splits_koniq_style():
    items = pd.concat(
        [table(10, 1, "train"), table(3, 1, "val"), table(4, 1, "test")], ignore_index=True
    )
    items["item_id"] = [f"x{i}" for i in range(len(items))]
    (s,) = make_splits(items, n_splits=10)
    assert s.official and len(s.train) == 10 and len(s.val) == 3
    assert list(s.test) == ["test"] and len(s.test["test"]) == 4


def test_official_splits_lsvq_style_carve_validation_from_train():
    items = pd.concat(
        [table(40, 1, "train"), table(8, 1, "test"), table(5, 1, "test-1080p")], ignore_index=True
    )
    items["group"] = [f"v{i}" for i in range(len(items))]
    (s,) = make_splits(items)
    assert set(s.test) == {"test", "test-1080p"}
    assert len(s.train) + len(s.val) == 40 and len(s.val) == 4
    assert not set(s.val) & set(np.concatenate(list(s.test.values())))


def test_too_few_content_groups_are_refused_before_training(caplog):
    """Issue 36 item 7: `features demo --limit 16` caches one content group; random
    splits then had an empty test part (`SRCC -, n=0`) on every split. Two groups leave
    no validation part: said up front (selection then keeps the last epoch)."""
    import logging

    import pandas as pd
    import pytest

    from qfeat.errors import DatasetError
    from qfeat.trainers.splits import make_splits

    items = pd.DataFrame({"item_id": [f"i{k}" for k in range(16)], "split": None,
                          "group": ["sky"] * 16})  # fmt: skip
    with pytest.raises(DatasetError) as err:
        make_splits(items, n_splits=2)
    message = str(err.value)
    assert "1 content group (16 items)" in message and "at least 2" in message
    assert "--limit" in message
    items.loc[10:, "group"] = "sea"
    with caplog.at_level(logging.WARNING):
        splits = make_splits(items, n_splits=2)
    assert "2 content groups (16 items): no validation part" in caplog.text
    assert all(len(s.test["test"]) and not len(s.val) for s in splits)
