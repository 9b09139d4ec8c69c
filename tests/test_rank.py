"""Effective rank: closed forms, invariances and the agreement of both routes."""

import math
import threading

import numpy as np
import pytest
import torch

from layersize.rank import effective_rank, one_cpu_thread, singular_values

METHODS = ["gram", "svd"]


def entropy_rank(sigma):
    """Plain reference: exp of the Shannon entropy of normalised singular values."""
    sigma = np.asarray(sigma, dtype=float)
    p = sigma[sigma > 0] / sigma.sum()
    return math.exp(-np.sum(p * np.log(p)))


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("n", [1, 2, 7, 64])
def test_identity_rank_is_n(method, n):
    assert float(effective_rank(torch.eye(n), method=method)) == pytest.approx(n, rel=1e-10)


@pytest.mark.parametrize("method", METHODS)
def test_rank_one_matrix_is_one(method):
    u = torch.randn(20, 1, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    v = torch.randn(1, 30, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    assert float(effective_rank(u @ v, method=method)) == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("method", METHODS)
def test_zero_matrix_is_zero(method):
    ranks = effective_rank(torch.zeros(3, 5, 5), method=method)
    assert torch.equal(ranks, torch.zeros(3, dtype=torch.float64))


@pytest.mark.parametrize("method", METHODS)
def test_circulant_closed_form(method):
    # The singular values of the circulant matrix with first row (a, b, c, d) are
    # the moduli of its DFT: |a+b+c+d|, |a-c + i(d-b)| twice, |a-b+c-d|.
    a, b, c, d = 4.0, 1.0, -2.0, 0.5
    first_row = torch.tensor([a, b, c, d], dtype=torch.float64)
    circulant = torch.stack([torch.roll(first_row, shift) for shift in range(4)])
    sigma = [abs(a + b + c + d), math.hypot(a - c, d - b), math.hypot(a - c, d - b), abs(a - b + c - d)]
    expected = entropy_rank(sigma)
    assert float(effective_rank(circulant, method=method)) == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("method", METHODS)
def test_invariant_under_orthogonal_transforms(method):
    generator = torch.Generator().manual_seed(3)
    matrix = torch.randn(16, 12, dtype=torch.float64, generator=generator)
    left, _ = torch.linalg.qr(torch.randn(16, 16, dtype=torch.float64, generator=generator))
    right, _ = torch.linalg.qr(torch.randn(12, 12, dtype=torch.float64, generator=generator))
    before = float(effective_rank(matrix, method=method))
    after = float(effective_rank(left @ matrix @ right, method=method))
    assert after == pytest.approx(before, rel=1e-10)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("factor", [1e-30, 1e-3, 7.0, 1e30])
def test_invariant_under_scaling(method, factor):
    matrix = torch.randn(10, 10, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    before = float(effective_rank(matrix, method=method))
    assert float(effective_rank(matrix * factor, method=method)) == pytest.approx(before, rel=1e-8)


def test_gram_and_svd_agree_on_batches():
    generator = torch.Generator().manual_seed(5)
    square = torch.randn(8, 40, 40, generator=generator)
    low_rank = torch.randn(8, 40, 3, generator=generator) @ torch.randn(8, 3, 40, generator=generator)
    wide = torch.randn(4, 10, 30, generator=generator)
    for batch in (square, low_rank, torch.tanh(low_rank), wide):
        gram = effective_rank(batch, method="gram")
        svd = effective_rank(batch.double(), method="svd")
        assert torch.allclose(gram, svd, atol=1e-6, rtol=0)


def test_matches_plain_reference():
    matrix = np.random.default_rng(6).normal(size=(9, 13))
    expected = entropy_rank(np.linalg.svd(matrix, compute_uv=False))
    assert float(effective_rank(matrix)) == pytest.approx(expected, rel=1e-10)


def test_batch_shape_is_kept():
    ranks = effective_rank(torch.randn(2, 3, 6, 5))
    assert ranks.shape == (2, 3)
    assert ranks.dtype == torch.float64


def test_rank_bounds():
    ranks = effective_rank(torch.randn(50, 8, 6, generator=torch.Generator().manual_seed(7)))
    assert bool((ranks >= 1).all())
    assert bool((ranks <= 6 + 1e-9).all())


def test_integer_input_is_converted():
    assert float(effective_rank(np.eye(3, dtype=np.int64))) == pytest.approx(3.0)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_raises(bad):
    matrix = torch.ones(4, 4)
    matrix[1, 2] = bad
    with pytest.raises(ValueError, match="1 NaN or infinite entries"):
        effective_rank(matrix)


def test_vector_raises_with_reshape_hint():
    with pytest.raises(ValueError, match=r"reshape\(1, -1\)"):
        effective_rank(torch.ones(5))


def test_unknown_method_raises():
    with pytest.raises(ValueError, match="'gram' or 'svd'"):
        singular_values(torch.eye(2), method="qr")


def test_singular_values_match_svdvals():
    matrix = torch.randn(7, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(8))
    gram = torch.sort(singular_values(matrix, "gram"), descending=True).values
    assert torch.allclose(gram, torch.linalg.svdvals(matrix), atol=1e-10)


@pytest.mark.parametrize("method", ["gram", "svd"])
def test_thread_count_is_restored(method):
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        effective_rank(torch.randn(3, 8, 8), method=method)
        after = torch.get_num_threads()
    finally:
        torch.set_num_threads(previous)

    assert after == 2


def test_empty_matrix_raises():
    with pytest.raises(ValueError, match="non-empty"):
        effective_rank(torch.zeros(0, 4))


def test_blas_threads_limited_then_restored():
    from threadpoolctl import ThreadpoolController

    blas = ThreadpoolController().select(user_api="blas")
    if not blas.lib_controllers:
        pytest.skip("NumPy reports no BLAS library whose threads can be counted")
    with blas.limit(limits=2):
        with one_cpu_thread():
            inside = {library.num_threads for library in blas.lib_controllers}
        after = {library.num_threads for library in blas.lib_controllers}

    assert inside == {1}
    assert after == {2}


def test_tall_matrix_uses_smaller_gram():
    generator = torch.Generator().manual_seed(3)
    tall = torch.randn(2, 40, 6, dtype=torch.float64, generator=generator)
    sigma = singular_values(tall, "gram")

    assert sigma.shape == (2, 6)
    assert torch.allclose(sigma.flip(-1), torch.linalg.svdvals(tall), atol=1e-10)
    assert torch.allclose(singular_values(tall.mT, "gram"), sigma)


def _blas_thread_counts():
    from threadpoolctl import ThreadpoolController

    return {library.num_threads for library in ThreadpoolController().select(user_api="blas").lib_controllers}


def test_overlapping_limits_restore_counts_once():
    import threading

    if not _blas_thread_counts():
        pytest.skip("NumPy reports no BLAS library whose threads can be counted")
    first_inside, second_inside, first_left = threading.Event(), threading.Event(), threading.Event()
    seen = {}

    def first():
        with one_cpu_thread():
            first_inside.set()
            second_inside.wait(10)
        first_left.set()

    def second():
        first_inside.wait(10)
        with one_cpu_thread():
            second_inside.set()
            first_left.wait(10)
            # The first holder has left, and this one still runs on one thread.
            seen["torch"] = torch.get_num_threads()
            seen["blas"] = _blas_thread_counts()

    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        before = _blas_thread_counts()
        threads = [threading.Thread(target=first), threading.Thread(target=second)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(20)
        after_torch, after_blas = torch.get_num_threads(), _blas_thread_counts()
    finally:
        torch.set_num_threads(previous)

    assert seen == {"torch": 1, "blas": {1}}
    assert after_torch == 2
    assert after_blas == before


def test_tensor_requiring_grad_accepted():
    matrix = torch.eye(4, dtype=torch.float64, requires_grad=True)

    assert float(effective_rank(matrix)) == pytest.approx(4.0)
    assert float(effective_rank(matrix, method="svd")) == pytest.approx(4.0)


def _torch_threads_of_new_thread():
    counts = []
    thread = threading.Thread(target=lambda: counts.append(torch.get_num_threads()))
    thread.start()
    thread.join()
    return counts[0]


def test_threads_limit_own_torch_count():
    started, entered = threading.Event(), threading.Event()
    inside = {}

    def worker():
        torch.get_num_threads()  # torch sets up this thread before the limit
        started.set()
        entered.wait(10)
        with one_cpu_thread():
            inside["worker"] = torch.get_num_threads()

    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        thread = threading.Thread(target=worker)
        thread.start()
        started.wait(10)
        with one_cpu_thread():
            entered.set()
            thread.join(20)
        after_main, after_new = torch.get_num_threads(), _torch_threads_of_new_thread()
    finally:
        torch.set_num_threads(previous)

    assert inside == {"worker": 1}
    assert after_main == 2
    assert after_new == 2


def test_early_leaver_keeps_default_threads():
    entered, leave = threading.Event(), threading.Event()

    def first():
        with one_cpu_thread():
            entered.set()
            leave.wait(10)

    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        thread = threading.Thread(target=first)
        thread.start()
        entered.wait(10)
        with one_cpu_thread():
            main_inside = torch.get_num_threads()
            leave.set()
            thread.join(20)
        after_main, after_new = torch.get_num_threads(), _torch_threads_of_new_thread()
    finally:
        torch.set_num_threads(previous)

    assert main_inside == 1
    assert after_main == 2
    assert after_new == 2
