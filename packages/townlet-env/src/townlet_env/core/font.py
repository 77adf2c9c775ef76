"""A 3x5 pixel font for the labels of `rgb_array` pictures.

Hand-written rather than drawn with Pillow or a TrueType font: townlet-env does not depend on
Pillow, the glyphs are the same on every machine (so pictures are reproducible byte for byte),
and 3x5 is as small as readable text gets in a picture whose grid cells are 16 pixels. Letters
are upper case only; a character without a glyph is drawn as "?".
"""

from __future__ import annotations

import numpy as np

WIDTH, HEIGHT, ADVANCE = 3, 5, 4  # glyph size and the step to the next character, in pixels

_GLYPHS = {
    "A": ".#. #.# ### #.# #.#", "B": "##. #.# ##. #.# ##.", "C": ".## #.. #.. #.. .##",
    "D": "##. #.# #.# #.# ##.", "E": "### #.. ##. #.. ###", "F": "### #.. ##. #.. #..",
    "G": ".## #.. #.# #.# .##", "H": "#.# #.# ### #.# #.#", "I": "### .#. .#. .#. ###",
    "J": "..# ..# ..# #.# .#.", "K": "#.# #.# ##. #.# #.#", "L": "#.. #.. #.. #.. ###",
    "M": "#.# ### ### #.# #.#", "N": "##. #.# #.# #.# #.#", "O": ".#. #.# #.# #.# .#.",
    "P": "##. #.# ##. #.. #..", "Q": ".#. #.# #.# ##. .##", "R": "##. #.# ##. #.# #.#",
    "S": ".## #.. .#. ..# ##.", "T": "### .#. .#. .#. .#.", "U": "#.# #.# #.# #.# ###",
    "V": "#.# #.# #.# #.# .#.", "W": "#.# #.# ### ### #.#", "X": "#.# #.# .#. #.# #.#",
    "Y": "#.# #.# .#. .#. .#.", "Z": "### ..# .#. #.. ###",
    "0": "### #.# #.# #.# ###", "1": ".#. ##. .#. .#. ###", "2": "##. ..# .#. #.. ###",
    "3": "##. ..# .#. ..# ##.", "4": "#.# #.# ### ..# ..#", "5": "### #.. ##. ..# ##.",
    "6": ".## #.. ### #.# ###", "7": "### ..# .#. .#. .#.", "8": "### #.# ### #.# ###",
    "9": "### #.# ### ..# ##.",
    " ": "... ... ... ... ...", "-": "... ... ### ... ...", "_": "... ... ... ... ###",
    ".": "... ... ... ... .#.", "/": "..# ..# .#. #.. #..", ":": "... .#. ... .#. ...",
    "=": "... ### ... ### ...", "%": "#.# ..# .#. #.. #.#", "(": ".#. #.. #.. #.. .#.",
    ")": ".#. ..# ..# ..# .#.", "+": "... .#. ### .#. ...", "?": "##. ..# .#. ... .#.",
}  # fmt: skip
GLYPHS = {c: np.array([[p == "#" for p in row] for row in rows.split()]) for c, rows in _GLYPHS.items()}


def text_width(text: str) -> int:
    return max(0, len(text) * ADVANCE - 1)


def draw_text(image: np.ndarray, x: int, y: int, text: str, colour: tuple[int, int, int]) -> None:
    """Write `text` with its top-left corner at (x, y), clipped to the image."""
    h, w = image.shape[:2]
    for i, char in enumerate(text.upper()):
        glyph = GLYPHS.get(char, GLYPHS["?"])
        left = x + i * ADVANCE
        ys, xs = np.nonzero(glyph)
        ys, xs = ys + y, xs + left
        keep = (ys >= 0) & (ys < h) & (xs >= 0) & (xs < w)
        image[ys[keep], xs[keep]] = colour
