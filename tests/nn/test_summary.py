"""nn.summary: the course's figures, parameter counts, receptive fields by hand, the table."""

from __future__ import annotations

import io

import numpy as np
import pytest

from cnnlab import nn


def test_two_3x3x3_filters_over_6x6x3():
    s = nn.summary(nn.Conv2D(3, 2, 3, seed=0), (6, 6, 3))
    (row,) = s.rows
    assert row.output_shape == (4, 4, 2)
    assert row.macs == 864 == 4 * 4 * 2 * 3 * 3 * 3  # bias additions are not counted
    assert s.total_macs == 864
    assert row.trainable_params == 2 * 27 + 2 and s.total_params == 56


def test_32_filters_5x5_same_over_28x28x192():
    s = nn.summary(nn.Conv2D(192, 32, 5, padding="same", seed=0), (28, 28, 192))
    assert s.rows[0].output_shape == (28, 28, 32)
    assert s.total_macs == 120_422_400


def test_1x1_bottleneck_then_5x5():
    model = nn.Sequential(nn.Conv2D(192, 16, 1, seed=0),
                          nn.Conv2D(16, 32, 5, padding="same", seed=0))
    s = nn.summary(model, (28, 28, 192))
    assert [r.macs for r in s.rows] == [2_408_448, 10_035_200]
    assert s.total_macs == 12_443_648
    assert s.output_shape == (28, 28, 32)


def test_lenet5_rows_params_and_receptive_fields():
    lenet = nn.Sequential(
        nn.Conv2D(1, 6, 5, padding="same", seed=0), nn.Tanh(), nn.AvgPool2D(2),
        nn.Conv2D(6, 16, 5, seed=0), nn.Tanh(), nn.AvgPool2D(2),
        nn.Flatten(), nn.Dense(400, 120, seed=0), nn.Tanh(), nn.Dense(120, 84, seed=0),
        nn.Tanh(), nn.Dense(84, 10, seed=0),
    )
    s = nn.summary(lenet, (28, 28, 1))
    assert [r.name for r in s.rows] == [str(i) for i in range(12)]
    assert [r.type for r in s.rows][:3] == ["Conv2D", "Tanh", "AvgPool2D"]
    assert [r.output_shape for r in s.rows] == [
        (28, 28, 6), (28, 28, 6), (14, 14, 6), (10, 10, 16), (10, 10, 16), (5, 5, 16),
        (400,), (120,), (120,), (84,), (84,), (10,),
    ]
    # LeNet-5's published count: 156 + 2416 + 48120 + 10164 + 850 = 61706
    assert [r.params for r in s.rows if r.params] == [156, 2416, 48120, 10164, 850]
    assert s.total_params == s.trainable_params == 61_706 and s.frozen_params == 0
    assert [r.macs for r in s.rows if r.macs] == [
        28 * 28 * 6 * 25, 10 * 10 * 16 * 5 * 5 * 6, 400 * 120, 120 * 84, 84 * 10
    ]
    # receptive field r and jump j: conv5 -> (5, 1); pool2 -> (6, 2); conv5 -> (6 + 4*2, 2) =
    # (14, 2); pool2 -> (16, 4); then carried through the dense layers
    assert [r.receptive_field[0] for r in s.rows[:6]] == [5, 5, 6, 14, 14, 16]
    assert [r.jump[0] for r in s.rows[:6]] == [1, 1, 2, 2, 2, 4]
    assert s.rows[-1].receptive_field == (16, 16)


def test_receptive_field_with_stride_dilation_and_rectangles():
    model = nn.Sequential(nn.Conv2D(1, 2, (3, 1), stride=2, seed=0),
                          nn.Conv2D(2, 2, 3, dilation=2, seed=0))
    s = nn.summary(model, (20, 20, 1))
    assert s.rows[0].receptive_field == (3, 1) and s.rows[0].jump == (2, 2)
    # dilated 3x3 spans 5: r = (3 + 4*2, 1 + 4*2), j unchanged
    assert s.rows[1].receptive_field == (11, 9) and s.rows[1].jump == (2, 2)


def test_residual_and_concat_take_the_largest_branch():
    block = nn.Sequential(nn.Conv2D(4, 4, 3, padding=1, seed=0), nn.ReLU(),
                          nn.Conv2D(4, 4, 3, padding=1, seed=0))
    model = nn.Sequential(
        nn.Residual(block, nn.Conv2D(4, 4, 1, seed=0)),  # block r = 5, shortcut r = 1
        nn.Concat(nn.Conv2D(4, 2, 1, seed=0), nn.Conv2D(4, 2, 5, padding=2, seed=0)),
        nn.Conv2D(4, 1, 1, seed=0),
    )
    s = nn.summary(model, (9, 9, 4))
    fields = {r.name: r.receptive_field[0] for r in s.rows}
    assert fields["0.block.2"] == 5 and fields["0.shortcut"] == 1
    assert fields["1.0"] == 5 and fields["1.1"] == 9  # both branches start from the sum's 5
    assert fields["2"] == 9  # after the concat: the larger branch


def test_global_pool_sees_the_whole_map():
    model = nn.Sequential(nn.Conv2D(1, 2, 3, seed=0), nn.GlobalAvgPool2D())
    s = nn.summary(model, (10, 10, 1))
    assert s.rows[1].output_shape == (2,)
    assert s.rows[1].receptive_field == (10, 10)  # 3 + (8 - 1) * 1


def test_frozen_parameters_are_reported():
    model = nn.Sequential(nn.Conv2D(3, 4, 3, seed=0), nn.BatchNorm2D(4), nn.Flatten(),
                          nn.Dense(64, 2, seed=0))
    model.freeze("0")
    model.freeze("1.gamma")
    s = nn.summary(model, (6, 6, 3))
    assert (s.rows[0].trainable_params, s.rows[0].frozen_params) == (0, 112)
    assert (s.rows[1].trainable_params, s.rows[1].frozen_params) == (4, 4)
    assert s.frozen_params == 116 and s.trainable_params == 4 + 130
    assert s.total_params == 250
    assert "frozen 116" in str(s)


def test_summary_changes_nothing_in_the_model():
    model = nn.Sequential(nn.Conv2D(1, 2, 3, seed=0), nn.BatchNorm2D(2), nn.Dropout(0.5, seed=0))
    state = model.state_dict()
    rng_state = model[2].rng.bit_generator.state
    model[1].eval()
    nn.summary(model, (5, 5, 1))
    assert model.training and model[0].training and not model[1].training
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(value, state[name])
    assert model[2].rng.bit_generator.state == rng_state
    assert "forward" not in vars(model[0])


def test_shared_layer_counted_once():
    dense = nn.Dense(3, 3, seed=0)
    s = nn.summary(nn.Sequential(dense, nn.ReLU(), dense), (3,))
    assert [r.params for r in s.rows] == [12, 0, 0]
    assert s.total_params == 12 and s.total_macs == 18


def test_float64_model():
    model = nn.Sequential(nn.Conv2D(1, 2, 3, seed=0)).double()
    assert nn.summary(model, (5, 5, 1)).output_shape == (3, 3, 2)


def test_table_text_and_print():
    model = nn.Sequential(nn.Conv2D(192, 16, 1, seed=0),
                          nn.Conv2D(16, 32, 5, padding="same", seed=0))
    s = nn.summary(model, (28, 28, 192))
    text = str(s)
    lines = text.splitlines()
    assert lines[0] == "Summary of Sequential"
    assert lines[2].split() == ["Layer", "(type)", "Output", "shape", "Trainable", "Frozen",
                                "MACs", "RF", "Jump"]
    assert lines[4].split() == ["0", "(Conv2D)", "(28,", "28,", "16)", "3,088", "0",
                                "2,408,448", "1", "1"]
    assert "Total MACs per sample: 12,443,648" in text
    out = io.StringIO()
    assert s.print(file=out) is None
    assert out.getvalue() == text + "\n"
    assert repr(s) == text


def test_bad_input_shape():
    with pytest.raises(ValueError, match=r"summary: input_shape must be a tuple of positive "
                                         r"ints \(one sample, no batch axis\); received \(0, 3\)"):
        nn.summary(nn.ReLU(), (0, 3))
    with pytest.raises(TypeError, match=r"summary: model must be a Module; received function"):
        nn.summary(lambda x: x, (3,))


def test_zoo_models_need_no_input_shape():
    from cnnlab import models

    model = models.get("lenet5", seed=0)
    assert str(nn.summary(model)) == str(nn.summary(model, (28, 28, 1)))
    text = str(nn.summary(model))
    assert "RF: receptive field" in text and "Jump: input pixels between" in text
    with pytest.raises(ValueError, match=r"summary: Sequential does not record its input shape; "
                                         r"give one sample's shape"):
        nn.summary(nn.Sequential(nn.Dense(2, 2, seed=0)))
