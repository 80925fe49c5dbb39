"""Secondary-model scheduling (`edgert.pipeline.secondary`): which tracks get crops, the per-frame budget,
and the crop stage's batching; counts only (deterministic, no clocks asserted)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from edgert.core.errors import ConfigError
from edgert.pipeline.secondary import Candidate, CropBudget, CropSelector, quality_of


def cands(*specs):
    """Candidates from (key, side) pairs: square boxes of that side (quality = side ** 2), born in key order."""
    return [Candidate(k, (0.0, 0.0, float(s), float(s)), float(s) ** 2, born=k) for k, s in specs]


def test_new_tracks_come_first_oldest_first_within_the_allowance():
    sel = CropSelector(better_by=1.5)
    picked = sel.choose(cands((3, 10), (1, 10), (2, 10)), allowance=2)
    assert [(c.key, why) for c, why in picked] == [(1, "new"), (2, "new")]
    assert sel.choose(cands((1, 10)), allowance=0) == []


def test_a_track_is_cropped_again_only_for_a_better_view_and_only_once_its_crop_returned():
    sel = CropSelector(better_by=1.5)
    (c, _), = sel.choose(cands((7, 10)), 4)
    sel.sent(7, c.quality)
    assert sel.choose(cands((7, 20)), 4) == []  # pending: its first crop has not come back
    sel.returned(7)
    assert sel.choose(cands((7, 12)), 4) == []  # 144 < 1.5 * 100
    (c2, why), = sel.choose(cands((7, 13)), 4)  # 169 >= 150
    assert why == "better" and sel.runs(7) == 1
    sel.sent(7, c2.quality)
    assert sel.runs(7) == 2


def test_better_views_by_gain_after_new_tracks():
    sel = CropSelector(better_by=1.2)
    for key, side in ((1, 10), (2, 10)):
        sel.sent(key, side ** 2)
        sel.returned(key)
    picked = sel.choose(cands((1, 12), (2, 20), (3, 5)), 3)
    assert [(c.key, why) for c, why in picked] == [(3, "new"), (2, "better"), (1, "better")]


def test_confident_and_max_runs_stop_the_crops_and_forget_resets():
    sel = CropSelector(better_by=1.1, max_runs=2)
    sel.sent(1, 100.0)
    sel.returned(1)
    sel.confident(1)
    assert sel.choose(cands((1, 100)), 4) == [] and sel.is_confident(1)
    for q in (100.0, 1000.0):
        sel.sent(2, q)
        sel.returned(2)
    assert sel.choose(cands((2, 1000)), 4) == []  # two runs: the limit
    sel.forget(2)
    assert [why for _, why in sel.choose(cands((2, 5)), 4)] == ["new"]


def test_a_dropped_crop_leaves_the_track_new():
    sel = CropSelector()
    sel.sent(4, 100.0)
    sel.dropped(4)
    assert [why for _, why in sel.choose(cands((4, 10)), 1)] == ["new"] and sel.runs(4) == 0


def test_once_per_track_with_infinite_better_by():
    sel = CropSelector(better_by=math.inf)
    sel.sent(1, 1.0)
    sel.returned(1)
    assert sel.choose(cands((1, 10**6)), 4) == []


def test_budget_counts_crops_per_frame():
    budget = CropBudget(max_crops=3)
    assert [budget.allowance(0, n) for n in (1, 5, 3, 0)] == [1, 3, 3, 0]
    assert budget.granted == 7 and budget.refused == 2


def test_time_share_budget_follows_the_measured_cost():
    """10 ms frames, a 20% share: 2 ms of device time per frame; crops cost 1 ms each -> 2 crops a frame."""
    budget = CropBudget(max_crops=None, time_share=0.2)
    ms = 1_000_000
    assert budget.allowance(0, 8) == 8  # nothing measured yet: the first call measures the cost
    budget.spent(8, 8 * ms)  # the bucket is now -8 ms
    grants = []
    for frame in range(1, 41):
        n = budget.allowance(frame * 10 * ms, 8)
        grants.append(n)
        budget.spent(n, n * ms)
    assert grants[:4] == [0, 0, 0, 0]  # paying back the first burst (8 ms at 2 ms a frame)
    assert sum(grants) == pytest.approx(0.2 * 400 - 8, abs=2)  # 20% of 400 ms, less the first 8 ms
    assert max(grants) <= 3


def test_budget_and_selector_refuse_bad_settings():
    with pytest.raises(ConfigError, match="max_crops"):
        CropBudget(max_crops=0)
    with pytest.raises(ConfigError, match="time_share"):
        CropBudget(time_share=1.5)
    with pytest.raises(ConfigError, match="needs max_crops or time_share"):
        CropBudget(max_crops=None)
    with pytest.raises(ConfigError, match="better_by"):
        CropSelector(better_by=1.0)


def test_quality_of_boxes():
    assert quality_of((0, 0, 4, 5)) == 20.0
    assert quality_of((5, 5, 5, 9)) == 0.0
    assert quality_of((0, 0, np.inf, 3)) == 0.0


def test_twenty_tracks_in_budget_of_four_all_get_a_first_crop_within_five_frames():
    """20 tracks born together, 4 crops a frame, crops coming back the next frame: each gets one by frame 5."""
    sel, budget = CropSelector(better_by=1.5), CropBudget(max_crops=4)
    first = {}
    pending = []
    for frame in range(8):
        for key in pending:
            sel.returned(key)
        pending = []
        tracks = cands(*[(k, 10 + frame) for k in range(20)])
        wanted = [c for c in tracks if sel.reason(c) is not None]
        for c, _ in sel.choose(wanted, budget.allowance(frame, len(wanted))):
            sel.sent(c.key, c.quality)
            pending.append(c.key)
            first.setdefault(c.key, frame)
    assert sorted(first) == list(range(20))
    assert max(first.values()) == 4 and sorted(first.values()) == [f for f in range(5) for _ in range(4)]


def test_channel_offer_never_waits():
    from edgert.pipeline.channels import Channel

    ch = Channel(1)
    assert ch.offer("a") and not ch.offer("b") and ch.get() == "a"
    ch.end()
    assert not ch.offer("c")


class RowMeans:
    """A batch-2 model whose output row is its input row's mean pixel value (uint8 16x16 RGB in)."""

    backend = "test"

    def __init__(self):
        from edgert.core.tensor import TensorSpec

        self.inputs = (TensorSpec("x", (2, 16, 16, 3), np.uint8, None, "NHWC"),)
        self.outputs = (TensorSpec("y", (2, 1), np.float32, None),)
        self.calls = 0

    def run(self, x):
        self.calls += 1
        return [x.reshape(2, -1).mean(1, keepdims=True).astype(np.float32)]


def test_crop_stage_batches_boxes_by_the_model_batch_skips_bad_boxes_and_charges_the_budget():
    import types

    from edgert.core.frame import Frame
    from edgert.models.loaded import LoadedModel
    from edgert.pipeline.secondary import CropRequest, CropStage

    model = RowMeans()
    entry = LoadedModel(model, "means", preprocess={"resize": "stretch", "mean": 0.0, "std": 1.0,
                                                    "channel_order": "RGB"}, generation=0)
    pixels = np.zeros((100, 200, 3), np.uint8)
    pixels[:, 100:] = 200  # right half bright
    frame = Frame(pixels, "BGR", (200, 100), pixels.strides[0], 1, 0, 0, {})
    delivered = []
    budget = CropBudget(max_crops=8)
    stage = CropStage("crops", types.SimpleNamespace(current=entry, has_retired=False), lambda e, out, req, k: float(out[0][0, 0]),
                      lambda req, results: delivered.append(results), budget)
    boxes = [(0, 0, 50, 50), (120, 10, 180, 90), (10, 10, 10, 20), (150, 0, 190, 40), (300, 0, 400, 50)]
    picked = [(Candidate(k, b, quality_of(b)), "new") for k, b in enumerate(boxes)]
    assert stage.process(CropRequest(frame, picked)) is None
    (results,) = delivered
    assert results[0] == 0.0 and results[1] == pytest.approx(200.0) and results[3] == pytest.approx(200.0)
    assert results[2] is None and results[4] is None  # zero width; outside the frame
    assert stage.skipped_boxes == 2 and stage.crops == 3 and model.calls == 2  # 3 crops in batches of 2
    assert budget.cost_ns is not None and budget.cost_ns > 0
