"""The largest sizes convcli allocates, in one place, and the one check against them.

Every size a user gives (an option, a kernel spec, a catalogue, a network file, an image
or ``.npy`` header) is turned into the number of values it implies and checked here
*before* anything is allocated, so an absurd size is one line naming it, never a
MemoryError or a hang.  Commands that only count (``stats``) use Python integers and
need no limit.
"""

from __future__ import annotations

from .errors import ParameterError

#: Values in one array convcli computes or reads: an image, a result, a feature map
#: (2**30 float32 values are 4 GiB).
MAX_VALUES = 2**30
#: Weights in one kernel or layer (a 2048×2048 kernel; 32 MiB as float64).
MAX_WEIGHTS = 2**22
#: Entries of a dense matrix `matrix` builds (512 MiB as float64).
MAX_DENSE_ENTRIES = 2**26
#: Weight placements of the sparse equivalent matrix (three int64/float64 arrays of this
#: length, about 800 MiB).
MAX_SPARSE_ENTRIES = 2**25
#: The largest weight magnitude: a 16-bit image (values up to 65535) through a kernel of
#: `MAX_WEIGHTS` such weights still sums to a finite float32 (≈ 2.7e31 < 3.4e38).
MAX_WEIGHT_MAGNITUDE = 1e20
#: Worker processes or threads (-j, --threads).
MAX_WORKERS = 1024
#: Gradient descent steps.
MAX_EPOCHS = 10**6
#: Bytes of a YAML file (catalogue, bank, network).
MAX_YAML_BYTES = 16 * 2**20
#: Nodes that YAML aliases may add beyond those written out ("billion laughs").
MAX_ALIAS_NODES = 100_000
#: Levels of nesting in a YAML file (a 4-D layer in a catalogue needs 7).
MAX_YAML_DEPTH = 32


def check_size(what: str, count: int, limit: int, unit: str = "values", hint: str = "",
               parameter: str | None = None) -> None:
    """Refuse `count` over `limit`, in one line naming `what` implies it.

    Parameters
    ----------
    what : str
        What implies the size, as the user wrote it ("box:1000000", "padding 100000 on a
        5×5 image gives a 200004×200004 output").
    count, limit : int
        The size implied and the most allowed.
    unit : str
        What is counted ("values", "weights", "entries").
    hint : str
        What to do instead, appended after a semicolon.
    parameter : str, optional
        The keyword argument at fault (see `convcli.errors.ParameterError`); `what`
        then continues its name ("cout" + "1000 filters of 3×3×3").

    Raises
    ------
    ParameterError
        If ``count > limit``.
    """
    if count > limit:
        advice = f"; {hint}" if hint else ""
        raise ParameterError(f"{what}: {count:,} {unit}, over the limit of {limit:,}{advice}",
                             parameter)


def product(values) -> int:
    """The product of sizes as a Python integer (no overflow, whatever the sizes)."""
    total = 1
    for value in values:
        total *= int(value)
    return total


def check_convolution(plan) -> None:
    """Refuse a planned convolution (`convcli.plan.ConvPlan`) whose output or padded input
    holds more than `MAX_VALUES` values, before either is allocated.

    Raises
    ------
    ParameterError
        Giving the padding and the output shape it gives (``parameter="padding"``).
    """
    n, cin, h, w = plan.input_shape
    top, bottom, left, right = plan.padding
    output = plan.output_shape
    padded = (n, cin, h + top + bottom, w + left + right)
    count = max(product(output), product(padded))
    check_size(f"{top},{bottom},{left},{right} on a {cin}×{h}×{w} input gives a "
               f"{'×'.join(map(str, output[1:]))} output", count, MAX_VALUES,
               hint="use less padding", parameter="padding")
