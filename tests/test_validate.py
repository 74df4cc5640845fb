"""cnnlab._validate: the one place for "positive int", "seed or Generator" and name prefixes."""

from __future__ import annotations

import numpy as np
import pytest

from cnnlab import models, nn
from cnnlab._validate import as_generator, check_positive_int, name_matches
from cnnlab.data._random import as_generator as data_generator
from cnnlab.functional import dropout
from cnnlab.nn import init


def test_positive_int_accepts_ints_and_refuses_the_rest():
    assert check_positive_int(3, "size", "X") == 3
    assert check_positive_int(np.int64(2), "size", "X") == 2
    for bad in (0, -1, 2.0, True, "3", None):
        with pytest.raises(ValueError, match=rf"^X: size must be a positive int; "
                                             rf"received size={bad!r}$"):
            check_positive_int(bad, "size", "X")


def test_as_generator_same_seed_same_numbers_and_generator_kept():
    a, b = as_generator(7, "X").random(4), np.random.default_rng(7).random(4)
    np.testing.assert_array_equal(a, b)  # an int seeds NumPy's own default_rng
    g = np.random.default_rng(0)
    assert as_generator(g, "X") is g
    s = np.random.SeedSequence(3)
    np.testing.assert_array_equal(as_generator(s, "X").random(2),
                                  np.random.default_rng(np.random.SeedSequence(3)).random(2))
    assert isinstance(as_generator(None, "X"), np.random.Generator)


@pytest.mark.parametrize("bad, shown", [("seed", "'seed'"), (1.5, "1.5"), (True, "True"),
                                        (np.random.RandomState(0), "RandomState")])
def test_as_generator_refuses_with_one_message(bad, shown):
    with pytest.raises(TypeError, match=rf"^X: rng must be an int, None or a "
                                        rf"numpy.random.Generator; received {shown}$"):
        as_generator(bad, "X", "rng")
    with pytest.raises(ValueError, match=r"^X: an int seed must be >= 0; received seed=-1$"):
        as_generator(-1, "X")


def test_every_former_copy_now_gives_the_same_message():
    """dropout, the layers, the initializers, the data helpers and the zoo once each had their
    own check (and wording); now they all say the same thing."""
    cases = [
        (lambda: dropout(np.ones((2, 2)), 0.5, rng="a"), "dropout: rng"),
        (lambda: nn.Dense(2, 2, seed="a"), "Dense: seed"),
        (lambda: init.he_normal((2, 2), rng="a"), "he_normal: rng"),
        (lambda: data_generator("a", "train_dev_split"), "train_dev_split: seed"),
        (lambda: models.lenet5(seed="a"), "lenet5: seed"),
        (lambda: models.replace_head(models.lenet5(seed=0), 3, seed="a"), "replace_head: seed"),
    ]
    for call, start in cases:
        with pytest.raises(TypeError, match=rf"^{start} must be an int, None or a "
                                            r"numpy.random.Generator; received 'a'$"):
            call()


def test_name_matches_dotted_prefixes():
    assert name_matches("features.0.weight", "features")
    assert name_matches("features", "features")
    assert not name_matches("features_extra.w", "features")
    assert name_matches("anything", "")
    assert name_matches("layer1.0.w", "layer1.")
    assert not name_matches("layer10.w", "layer1")


def test_docstring_examples_of_validate():
    import doctest
    import importlib

    assert doctest.testmod(importlib.import_module("cnnlab._validate")).failed == 0
