"""The standard-library PNG writer, read back by Pillow (the oracle)."""

import io

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cnnlab.analysis.png import encode_png, upscale

PIL = pytest.importorskip("PIL.Image")


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 40), st.integers(1, 40), st.sampled_from([None, 1, 3]),
       st.integers(0, 2**31))
def test_pillow_reads_back_the_pixels(h, w, c, seed):
    rng = np.random.default_rng(seed)
    shape = (h, w) if c is None else (h, w, c)
    image = rng.integers(0, 256, size=shape).astype(np.uint8)
    with PIL.open(io.BytesIO(encode_png(image))) as im:
        im.load()
        assert im.size == (w, h)
        assert im.mode == ("RGB" if c == 3 else "L")
        back = np.asarray(im)
    assert (back == image.reshape(back.shape)).all()


def test_float_images_and_upscale():
    image = np.array([[0.0, 0.5], [1.0, 2.0]], np.float32)  # 2.0 is clipped to 1
    with PIL.open(io.BytesIO(encode_png(upscale(image, 3)))) as im:
        back = np.asarray(im)
    assert back.shape == (6, 6)
    assert back[:3, :3].max() == 0 and (back[:3, 3:] == 128).all() and (back[3:] == 255).all()


def test_bad_shape():
    with pytest.raises(ValueError, match=r"encode_png: image must be \(H, W\).*\(4, 4, 2\)"):
        encode_png(np.zeros((4, 4, 2), np.uint8))
    with pytest.raises(ValueError, match="at least 1x1"):
        encode_png(np.zeros((0, 4), np.uint8))
