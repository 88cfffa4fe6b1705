"""The public API: every name of `convcli.__all__` loads lazily and its docstring's
examples run (doctest), and importing convcli loads neither numpy nor numba."""

import doctest
import importlib
import subprocess
import sys

import pytest

import convcli


@pytest.mark.parametrize("name", convcli.__all__)
def test_each_public_name_has_a_numpydoc_docstring_whose_examples_run(name):
    value = getattr(convcli, name)
    doc = value.__doc__ or ""
    assert "Examples\n" in doc and ">>> " in doc, f"{name} has no example"
    if callable(value) and not isinstance(value, type):
        assert "Returns\n" in doc or "Parameters\n" in doc, f"{name} lacks numpydoc sections"
    finder = doctest.DocTestFinder(recurse=False)
    tests = finder.find(value, name, globs={})
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    for test in tests:
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.attempted > 0 and result.failed == 0, f"{name}: {result}"


def test_the_package_docstring_example_runs():
    result = doctest.testmod(convcli, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


def test_every_public_name_is_defined_where_the_lazy_table_says():
    for name, module in convcli._PUBLIC.items():
        assert getattr(importlib.import_module(module), name) is getattr(convcli, name)
    assert sorted(dir(convcli)) == dir(convcli) and set(convcli.__all__) <= set(dir(convcli))
    with pytest.raises(AttributeError, match="no attribute 'nonexistent'"):
        convcli.nonexistent


def test_importing_convcli_and_the_algorithm_table_loads_neither_numpy_nor_numba():
    code = ("import sys, convcli, convcli.algorithms, convcli.backend, convcli.options; "
            "print(sorted(m for m in ('numpy', 'numba') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"
