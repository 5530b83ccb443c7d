import numpy as np
import pytest

from embedkit.pipeline.pooling import cls_pool, l2_normalize, last_token_pool, mean_pool, pool, read_pooling_mode


def _tokens() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.normal(size=(2, 4, 3)).astype(np.float32)


def test_mean_pool_ignores_padding():
    tokens = _tokens()
    mask = np.array([[1, 1, 0, 0], [1, 1, 1, 1]])
    pooled = mean_pool(tokens, mask)
    np.testing.assert_allclose(pooled[0], tokens[0, :2].mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(pooled[1], tokens[1].mean(axis=0), rtol=1e-6)


def test_padding_values_never_change_a_row():
    tokens = _tokens()
    mask = np.array([[1, 1, 0, 0], [1, 1, 1, 0]])
    altered = tokens.copy()
    altered[0, 2:] = 1e6
    altered[1, 3] = -1e6
    for mode in ("mean", "cls", "last"):
        np.testing.assert_array_equal(pool(tokens, mask, mode, True), pool(altered, mask, mode, True))


@pytest.mark.parametrize(
    "mask, first, last",
    [
        (np.array([[1, 1, 1, 0], [1, 1, 0, 0]]), [0, 0], [2, 1]),  # right padding
        (np.array([[0, 1, 1, 1], [0, 0, 1, 1]]), [1, 2], [3, 3]),  # left padding
    ],
)
def test_cls_and_last_token_follow_the_padding_side(mask, first, last):
    tokens = _tokens()
    np.testing.assert_array_equal(cls_pool(tokens, mask), tokens[[0, 1], first])
    np.testing.assert_array_equal(last_token_pool(tokens, mask), tokens[[0, 1], last])


def test_all_zero_mask_is_an_error_not_nan():
    with pytest.raises(ValueError, match=r"row\(s\) \[1\]"):
        pool(_tokens(), np.array([[1, 0, 0, 0], [0, 0, 0, 0]]), "mean", True)


def test_l2_normalize_unit_norm_and_zero_vector_stays_finite():
    vectors = np.array([[3.0, 4.0], [0.0, 0.0]], dtype=np.float32)
    normalized = l2_normalize(vectors)
    np.testing.assert_allclose(normalized[0], [0.6, 0.8], rtol=1e-6)
    assert np.all(np.isfinite(normalized)) and not normalized[1].any()


def test_unknown_mode_and_pooling_config():
    with pytest.raises(ValueError, match="unknown pooling mode"):
        pool(_tokens(), np.ones((2, 4)), "max", False)
    assert read_pooling_mode({"pooling_mode_cls_token": True}) == "cls"
    assert read_pooling_mode({"pooling_mode_lasttoken": True}) == "last"
    with pytest.raises(ValueError, match="pooling_mode_max_tokens"):
        read_pooling_mode({"pooling_mode_max_tokens": True})
