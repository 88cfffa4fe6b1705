"""The lists of names a user can type, in a module light enough for ``--help``.

The CLI's `click.Choice`s, the library's validation and the docs all read them from here
(padding modes live with their aliases in `convcli.plan`, formats in `convcli.formats`,
algorithms in `convcli.algorithms`).
"""

#: How convolution results become pixel values (``auto`` asks the kernel).
RANGE_POLICIES = ("auto", "clip", "abs", "offset", "minmax", "float")
#: The range hints a catalogue entry may give (`auto` and `float` are the user's to choose).
RANGE_HINTS = ("clip", "abs", "offset", "minmax")
#: What happens to an alpha channel.
ALPHA_POLICIES = ("keep", "filter", "drop")
#: How a filter bank's outputs become one image.
COMBINES = ("magnitude", "max", "sum")
