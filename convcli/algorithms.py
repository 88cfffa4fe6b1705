"""The one table of the ways `conv2d` can compute a convolution.

The planner (`convcli.plan.choose_algorithm`), the CLI's ``--algo`` choice and the engine
(`convcli.conv.run`) all read `ALGORITHMS`.  Each row names its runner and its cost model
as ``module:function``, resolved on first use, so this module stays pure Python (the CLI's
``--help`` imports it without numpy).  A new algorithm is one row here, its runner in
`convcli.conv` and its cost in `convcli.plan`.
"""

from __future__ import annotations

import functools
import importlib
from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class Algorithm:
    """One way of computing a convolution.

    Attributes
    ----------
    name : str
        What users type (``algo=``, ``--algo``).
    runner : str
        ``module:function`` computing it: ``runner(x, weight, bias, plan, out)`` with x
        (N, Cin, H, W) and out (N, Cout, Ho, Wo), contiguous arrays of one float dtype.
    cost : str
        ``module:function`` estimating its seconds on one core: ``cost(plan, rank)``.
    compiled : bool
        Whether it runs in the compiled core (loads numba).
    exact : bool
        Whether it sums every product of the definition (rounding as direct summation
        does), rather than through a transform or a factorisation.
    """

    name: str
    runner: str
    cost: str
    compiled: bool
    exact: bool

    def run(self, x, weight, bias, plan, out) -> None:
        """Compute the convolution `plan` into `out` (see `runner`)."""
        _resolve(self.runner)(x, weight, bias, plan, out)

    def seconds(self, plan, rank: int) -> float:
        """Estimated seconds on one core (see `cost`)."""
        return _resolve(self.cost)(plan, rank)


@functools.cache
def _resolve(reference: str):
    module, _, function = reference.partition(":")
    return getattr(importlib.import_module(module), function)


ALGORITHMS = {a.name: a for a in (
    Algorithm(name="direct", runner="convcli.conv:run_direct", cost="convcli.plan:direct_cost",
              compiled=True, exact=True),
    Algorithm(name="separable", runner="convcli.conv:run_separable",
              cost="convcli.plan:separable_cost", compiled=True, exact=False),
    Algorithm(name="fft", runner="convcli.conv:run_fft", cost="convcli.plan:fft_cost",
              compiled=False, exact=False),
    Algorithm(name="gemm", runner="convcli.conv:run_gemm", cost="convcli.plan:gemm_cost",
              compiled=True, exact=True),
    Algorithm(name="numpy", runner="convcli.conv:run_numpy", cost="convcli.plan:numpy_cost",
              compiled=False, exact=True),
)}
#: The names, in the table's order (``auto`` lets the planner choose among them).
NAMES = tuple(ALGORITHMS)
