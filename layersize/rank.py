"""Effective rank of a matrix or of a batch of matrices.

The effective rank of Roy and Vetterli (EUSIPCO 2007) is the exponential of the
Shannon entropy of the normalised singular values: with p_k = sigma_k / sum(sigma),

    erank(A) = exp(-sum_k p_k ln p_k),    0 ln 0 = 0.

It lies in [1, min(M, N)] for a non-zero M x N matrix. An all-zero matrix has no
singular-value distribution, and this module defines its effective rank as 0.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

import numpy as np
import torch
from threadpoolctl import OpenBLASController, ThreadpoolController

__all__ = ["effective_rank", "one_cpu_thread", "singular_values"]

Method = Literal["gram", "svd"]


_blas_controller: ThreadpoolController | None = None

# The BLAS thread count is process-wide, so calls of one_cpu_thread that overlap
# in several threads share one limit: the first to enter sets it and the last to
# leave restores it. torch's count belongs to each thread, which restores its own.
_limit_lock = threading.Lock()
_limit_holders = 0
_blas_limiter = None
_torch_state = threading.local()


def _blas_libraries() -> ThreadpoolController:
    """Return a controller of the BLAS libraries loaded in this process, made once."""
    global _blas_controller
    if _blas_controller is None:
        _blas_controller = ThreadpoolController().select(user_api="blas")
    return _blas_controller


def _release_blas_control() -> None:
    """Let the next thread change OpenBLAS's thread count.

    threadpoolctl 3.8 and newer accept OpenBLAS thread counts only from the
    thread that set one first. The first and the last holder of the limit can
    be different threads, so the lock holder clears that mark around each change.
    """
    clear = getattr(OpenBLASController, "clear_controlling_thread", None)
    if clear is not None:
        clear(force=True)


def _enter_one_thread() -> None:
    global _limit_holders, _blas_limiter
    with _limit_lock:
        if _limit_holders == 0:
            _release_blas_control()
            _blas_limiter = _blas_libraries().limit(limits=1)
            _release_blas_control()
        _limit_holders += 1
    depth = getattr(_torch_state, "depth", 0)
    if depth == 0:
        _torch_state.previous = torch.get_num_threads()
        if _torch_state.previous != 1:
            torch.set_num_threads(1)
    _torch_state.depth = depth + 1


def _leave_one_thread() -> None:
    global _limit_holders, _blas_limiter
    _torch_state.depth -= 1
    if _torch_state.depth == 0 and torch.get_num_threads() != _torch_state.previous:
        torch.set_num_threads(_torch_state.previous)
    with _limit_lock:
        _limit_holders -= 1
        if _limit_holders == 0:
            _release_blas_control()
            _blas_limiter.restore_original_limits()
            _blas_limiter = None
            _release_blas_control()


@contextmanager
def one_cpu_thread(device: torch.device | str = "cpu") -> Iterator[None]:
    """Run the enclosed torch and NumPy work on one CPU thread, then restore the counts.

    Batched decompositions of many small matrices gain nothing from a second
    thread. On a 2-core machine with other work running, two threads made a
    batch of 400 Gram matrices of size 128 eight times slower (0.30 s against
    2.4 s, median of 7) and single calls up to 50 times slower. The limit
    covers torch's intra-op threads and the BLAS library under NumPy, which
    forms the Gram matrices and solves their eigenvalue problems on the CPU.
    Work on another device runs unchanged.

    Calls that overlap in several Python threads share one BLAS limit, which
    is restored when the last of them ends; each thread restores its own torch
    count when its outermost call ends.

    NOTE: the BLAS count is process-wide, so NumPy work started from another
    Python thread meanwhile also runs on one thread. So does torch work in a
    thread that starts meanwhile, because new threads take the torch count
    that was set last.
    """
    if torch.device(device).type != "cpu":
        yield
        return
    _enter_one_thread()
    try:
        yield
    finally:
        _leave_one_thread()


def _as_float_tensor(matrices) -> torch.Tensor:
    tensor = torch.as_tensor(np.asarray(matrices) if not isinstance(matrices, torch.Tensor) else matrices)
    if tensor.ndim < 2:
        raise ValueError(
            f"effective_rank expects a matrix or a batch of matrices with shape (..., M, N), "
            f"got an array with shape {tuple(tensor.shape)}. Reshape a vector with "
            f"reshape(1, -1) or reshape(-1, 1)."
        )
    if not tensor.is_floating_point():
        tensor = tensor.to(torch.float64)
    return tensor


def singular_values(matrices, method: Method = "gram") -> torch.Tensor:
    """Compute the singular values of each matrix in a batch, in float64.

    Parameters
    ----------
    matrices : array-like or torch.Tensor of shape (..., M, N)
        Real matrices. Integer input is converted to float64.
    method : {"gram", "svd"}, default="gram"
        ``"gram"`` takes the square roots of the eigenvalues of the smaller Gram
        matrix (A Aᵀ or Aᵀ A), formed in float64, from a symmetric eigen-solver.
        ``"svd"`` calls ``torch.linalg.svdvals`` in the input's precision.

    Returns
    -------
    torch.Tensor of shape (..., min(M, N))
        Non-negative singular values in float64, ascending for ``"gram"`` and
        descending for ``"svd"``.

    Raises
    ------
    ValueError
        If ``method`` is unknown, or if any entry is NaN or infinite.

    Notes
    -----
    Each matrix is divided by its largest absolute entry before the Gram matrix is
    formed, so that squaring neither overflows nor underflows. The effective rank
    does not depend on that scale. The Gram route loses relative precision on
    singular values below about sqrt(eps) times the largest one; such values add
    almost nothing to the entropy.
    """
    if method not in ("gram", "svd"):
        raise ValueError(f"method must be 'gram' or 'svd', got {method!r}.")
    tensor = _as_float_tensor(matrices).detach()
    if tensor.numel() == 0:
        raise ValueError(f"effective_rank needs non-empty matrices, got shape {tuple(tensor.shape)}.")

    # The largest absolute entry of each matrix is NaN or inf exactly when the
    # matrix contains one, so it doubles as the finiteness check.
    scale = tensor.abs().amax(dim=(-2, -1), keepdim=True)
    if not bool(torch.isfinite(scale).all()):
        n_bad = int((~torch.isfinite(tensor)).sum())
        raise ValueError(
            f"The matrices contain {n_bad} NaN or infinite entries out of {tensor.numel()}. "
            f"An effective rank of such a matrix is undefined; check the inputs and the "
            f"weights that produced these activations (for example an exploding "
            f"initialisation)."
        )

    if method == "svd":
        with one_cpu_thread(tensor.device):
            return torch.linalg.svdvals(tensor).to(torch.float64)

    # A float32 Gram matrix puts a noise floor near sqrt(n * eps) * sigma_max under
    # every singular value, which inflates the effective rank of nearly low-rank
    # matrices by up to 0.1 (measured on rank-one plus 1e-4 noise, n = 200), so the
    # Gram matrix is formed in float64.
    scale = scale.to(torch.float64)
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    scaled = tensor.to(torch.float64) / scale
    if scaled.shape[-2] > scaled.shape[-1]:
        scaled = scaled.mT
    if scaled.device.type == "cpu":
        # NumPy forms A·Aᵀ as a symmetric rank-k update, half a general product.
        # With its eigen-solver this was 1.6× faster than torch at 1280 × 1280.
        rows = scaled.numpy()
        with one_cpu_thread():
            eigenvalues = torch.from_numpy(np.linalg.eigvalsh(rows @ rows.swapaxes(-1, -2)))
    else:
        with one_cpu_thread(scaled.device):
            eigenvalues = torch.linalg.eigvalsh(scaled @ scaled.mT)
    # Rounding can leave tiny negative eigenvalues of a positive semi-definite matrix.
    return eigenvalues.clamp_min(0.0).sqrt() * scale.squeeze(-1)


def effective_rank(matrices, method: Method = "gram") -> torch.Tensor:
    """Compute the effective rank of each matrix in a batch.

    Parameters
    ----------
    matrices : array-like or torch.Tensor of shape (..., M, N)
        Real matrices. Leading dimensions are batch dimensions.
    method : {"gram", "svd"}, default="gram"
        How singular values are computed; see :func:`singular_values`.

    Returns
    -------
    torch.Tensor of shape (...)
        Effective ranks in float64: in [1, min(M, N)] for a non-zero matrix and
        exactly 0 for an all-zero matrix.

    Raises
    ------
    ValueError
        If the input has fewer than two dimensions, or contains NaN or inf.

    Examples
    --------
    >>> import torch
    >>> float(effective_rank(torch.eye(5)))
    5.0
    """
    sigma = singular_values(matrices, method=method)
    total = sigma.sum(dim=-1, keepdim=True)
    nonzero = total > 0
    p = sigma / torch.where(nonzero, total, torch.ones_like(total))
    entropy = -torch.special.xlogy(p, p).sum(dim=-1)
    return torch.where(nonzero.squeeze(-1), entropy.exp(), torch.zeros_like(entropy))
