"""Padding modes, their aliases, index maps and the plan's shape arithmetic."""

import numpy as np
import pytest

from convcli.errors import ParameterError
from convcli.plan import (PAD_MODE_NAMES, PAD_MODES, canonical_pad_mode, make_plan,
                          source_index)
from naive import NUMPY_PAD


@pytest.mark.parametrize("name, mode", [
    ("zeros", "zeros"), ("constant", "zeros"), ("BORDER_CONSTANT", "zeros"),
    ("reflect", "reflect"), ("reflect_101", "reflect"), ("cv2.BORDER_REFLECT_101", "reflect"),
    ("border_default", "reflect"), ("scipy:mirror", "reflect"),
    ("symmetric", "symmetric"), ("scipy:reflect", "symmetric"), ("BORDER_REFLECT", "symmetric"),
    ("opencv:reflect", "symmetric"), ("grid-mirror", "symmetric"), ("imagemagick:Mirror", "symmetric"),
    ("replicate", "replicate"), ("edge", "replicate"), ("nearest", "replicate"),
    ("circular", "circular"), ("wrap", "circular"), ("tile", "circular"), ("grid-wrap", "circular"),
    ("numpy:reflect", "reflect"), ("torch:circular", "circular"),
])
def test_pad_mode_aliases(name, mode):
    assert canonical_pad_mode(name) == mode


def test_names_libraries_disagree_on_must_be_qualified():
    with pytest.raises(ParameterError, match="scipy:mirror = reflect.*imagemagick:mirror = symmetric"):
        canonical_pad_mode("mirror")


@pytest.mark.parametrize("name, words", [("bogus", "not known"), ("scipy:edge", "scipy has no mode"),
                                         ("gimp:edge", "unknown library")])
def test_unknown_pad_modes_list_what_is_allowed(name, words):
    with pytest.raises(ParameterError, match=words):
        canonical_pad_mode(name)


def test_every_library_name_maps_to_a_mode():
    for names in PAD_MODE_NAMES.values():
        assert set(names.values()) <= set(PAD_MODES)


@pytest.mark.parametrize("mode", PAD_MODES)
@pytest.mark.parametrize("length", [1, 2, 3, 5])
@pytest.mark.parametrize("before, after", [(0, 0), (1, 2), (4, 0), (11, 13)])
def test_source_index_matches_numpy_pad(mode, length, before, after):
    values = np.arange(1, length + 1)
    padded = np.pad(values, (before, after), mode=NUMPY_PAD[mode])
    index = source_index(length, before, after, mode)
    got = np.where(index >= 0, values[index], 0)
    np.testing.assert_array_equal(got, padded)


def test_plan_output_shape_and_padding_forms():
    plan = make_plan((2, 3, 224, 224), (64, 3, 7, 7), stride=2, padding=3)
    assert plan.output_shape == (2, 64, 112, 112)
    assert make_plan((3, 10, 10), (1, 3, 3, 3), padding=(1, 2)).padding == (1, 1, 2, 2)
    assert make_plan((3, 10, 10), (1, 3, 3, 3), padding=(1, 2, 3, 4)).padding == (1, 2, 3, 4)
    assert make_plan((3, 10, 10), (1, 3, 4, 5), padding="same").padding == (1, 2, 2, 2)
    assert make_plan((3, 10, 10), (1, 3, 3, 3), padding="full", dilation=2).padding == (4, 4, 4, 4)
