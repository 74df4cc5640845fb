"""Mutation fuzzing of every format cnnlab reads (issue 19), a short run with fixed seeds: each
mutant ends in a clean one-line error naming the file or in a load that an independent reader
agrees with (see formats.py). The long run is ``python scripts/fuzz.py``."""

from __future__ import annotations

import warnings

import pytest

from tests.fuzz.formats import FORMATS, run

# mutants per format in CI; the seeds are fixed, so a failure names a mutant that replays
SHORT_RUN = {"config": 300, "checkpoint": 100, "idx": 400, "image": 300}


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_every_mutant_is_a_clean_error_or_a_correct_load(name, tmp_path):
    if name == "image":
        pytest.importorskip("PIL")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # NumPy's and Pillow's warnings about odd values
        counts, failures = run(name, seed=19, count=SHORT_RUN[name], folder=tmp_path)
    assert not failures, f"{len(failures)} of {SHORT_RUN[name]} mutants: {failures[:5]}"
    # the mutations reach both sides: some are refused, some still load (and were checked)
    assert counts["error"] > 0 and counts["loaded"] > 0, dict(counts)
