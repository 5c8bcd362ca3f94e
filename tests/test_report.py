"""The per-action report: frame-weighted rows, the VideoPose3D summary table, its Markdown."""
import numpy as np
import pytest

from raypose.data.splits import action_name
from raypose.evaluation.report import ACTION_ORDER, evaluate_sequences, format_table, summary_table


def _poses(rng, t=20, j=15):
    return rng.normal(scale=0.3, size=(t, j, 3))


def _chunk(rng, t, err_m):
    gt = _poses(rng, t=t)
    return gt + np.array([0.6, 0.8, 0.0]) * err_m, gt


def test_evaluate_sequences_frame_weighted_and_summary():
    rng = np.random.default_rng(6)
    recs = []
    for s, scale in (("S1", 1.0), ("S2", 2.0)):
        recs.append((s, "Walking 1 chunk0", 0, *_chunk(rng, 10, 0.010 * scale)))
        recs.append((s, "Walking 1 chunk1", 1, *_chunk(rng, 30, 0.020 * scale)))
        pred, gt = _chunk(rng, 5, 0.040 * scale)
        recs.append({"subject": s, "action": "Jog 1 chunk0", "camera": 2, "pred": pred, "gt": gt})
    df = evaluate_sequences(recs)
    assert list(df.columns) == ["subject", "action", "frames", "mpjpe", "p_mpjpe", "n_mpjpe",
                                "mpjve"]
    assert sorted(df["action"].unique()) == ["Jog", "Walking"]
    walk = df[(df.subject == "S1") & (df.action == "Walking")].iloc[0]
    assert walk.frames == 40
    assert walk.mpjpe == pytest.approx(17.5, rel=1e-9)        # (10*10 + 30*20) / 40, not 15
    assert walk.p_mpjpe < 1e-6 and walk.mpjve < 1e-6            # pure offsets
    t = summary_table(df)
    assert t.loc[("mpjpe", "S1"), "Walking"] == pytest.approx(17.5)
    assert t.loc[("mpjpe", "S1"), "Avg"] == pytest.approx((17.5 + 40.0) / 2)   # unweighted
    assert t.loc[("mpjpe", "All"), "Walking"] == pytest.approx((17.5 + 35.0) / 2)
    assert t.loc[("mpjpe", "All"), "Avg"] == pytest.approx((28.75 + 57.5) / 2)
    assert list(t.columns) == ["Walking", "Jog", "Avg"]
    text = format_table(t)
    assert "| mpjpe " in text and "17.5" in text and "28.8" in text
    assert len({len(line) for line in text.splitlines()}) == 1             # fixed width
    assert evaluate_sequences([]).empty


def test_action_name_takes_the_first_word():
    assert action_name("Walking 1 chunk0") == "Walking"
    assert action_name("Box") == "Box"
    assert action_name("  Jog   2  chunk1") == "Jog"            # leading and repeated spaces
    assert action_name("ThrowCatch\t1") == "ThrowCatch"
    assert action_name("") == "" and action_name("   ") == "   "  # no word: kept as it is


def test_columns_follow_humaneva_order_then_alphabetical_and_bad_shapes_fail():
    rng = np.random.default_rng(7)
    actions = ["Zigzag 1", "Box 1", "Gestures 1", "Walking 1", "Acrobatics 1", "  Jog  1"]
    recs = [("S1", a, 0, *_chunk(rng, 4, 0.01)) for a in actions]
    t = summary_table(evaluate_sequences(recs))
    assert list(t.columns) == ["Walking", "Jog", "Box", "Gestures", "Acrobatics", "Zigzag", "Avg"]
    assert [a for a in ACTION_ORDER if a in t.columns] == ["Walking", "Jog", "Box", "Gestures"]
    gt = _poses(rng, t=4)
    with pytest.raises(ValueError, match="S1/Walking 1"):
        evaluate_sequences([("S1", "Walking 1", 0, gt[0], gt[0])])   # (J, 3): no frame axis
    with pytest.raises(ValueError):
        evaluate_sequences([("S1", "Walking 1", 0, gt[:, :14], gt)])
