"""The VGA text screen as the host sees it: the 80x25 buffer at B8000h
(character and attribute bytes) turned into text lines."""

TEXT_BASE = 0xB8000
COLUMNS = 80
ROWS = 25
CELL_WIDTH, CELL_HEIGHT = 8, 16

# the 16 colours of the CGA/VGA text attribute (bits 0-3 foreground, 4-6 background)
PALETTE = (
    (0x00, 0x00, 0x00), (0x00, 0x00, 0xAA), (0x00, 0xAA, 0x00), (0x00, 0xAA, 0xAA),
    (0xAA, 0x00, 0x00), (0xAA, 0x00, 0xAA), (0xAA, 0x55, 0x00), (0xAA, 0xAA, 0xAA),
    (0x55, 0x55, 0x55), (0x55, 0x55, 0xFF), (0x55, 0xFF, 0x55), (0x55, 0xFF, 0xFF),
    (0xFF, 0x55, 0x55), (0xFF, 0x55, 0xFF), (0xFF, 0xFF, 0x55), (0xFF, 0xFF, 0xFF),
)

# code page 437 as the PC's character ROM draws it: control codes 1-31 are
# glyphs on screen; the upper half is box drawing, accents and symbols
_CP437_LOW = ("\u0020\u263A\u263B\u2665\u2666\u2663\u2660\u2022\u25D8\u25CB\u25D9\u2642\u2640"
              "\u266A\u266B\u263C\u25BA\u25C4\u2195\u203C\u00B6\u00A7\u25AC\u21A8\u2191\u2193"
              "\u2192\u2190\u221F\u2194\u25B2\u25BC")


def cp437_char(byte):
    if byte < 0x20:
        return _CP437_LOW[byte]
    if byte == 0x7F:
        return "\u2302"
    if byte < 0x80:
        return chr(byte)
    return bytes([byte]).decode("cp437")


class TextScreen:
    """``m.screen``: the text-mode screen of a machine."""

    def __init__(self, machine):
        self._m = machine

    def cells(self):
        """(character byte, attribute byte) for each of the 25 x 80 cells."""
        raw = self._m.memory.read(TEXT_BASE, COLUMNS * ROWS * 2)
        return [(raw[i], raw[i + 1]) for i in range(0, len(raw), 2)]

    def lines(self):
        """The 25 rows as text, trailing blanks removed (a NUL shows as a blank)."""
        raw = self._m.memory.read(TEXT_BASE, COLUMNS * ROWS * 2)
        rows = []
        for r in range(ROWS):
            chars = raw[r * COLUMNS * 2:(r + 1) * COLUMNS * 2:2]
            rows.append("".join(" " if b == 0 else cp437_char(b) for b in chars).rstrip())
        return rows

    def text(self):
        """The screen as one string, without the blank rows at the bottom."""
        rows = self.lines()
        while rows and not rows[-1]:
            rows.pop()
        return "\n".join(rows)

    def pixels(self):
        """The screen as RGB pixels: a uint8 array of 400 x 640 x 3 (8x16
        cells in visor86's font, the 16-colour palette; blinking is shown
        as a plain background, the cursor is not drawn)."""
        import numpy as np
        from devices.host.font import glyph
        raw = np.frombuffer(self._m.memory.read(TEXT_BASE, COLUMNS * ROWS * 2), dtype=np.uint8)
        chars, attrs = raw[0::2], raw[1::2]
        # glyph bitmaps of every character: (256, 16, 8) booleans
        table = np.array([glyph(c) for c in range(256)], dtype=np.uint8)
        bits = np.unpackbits(table[:, :, None], axis=2).astype(bool)
        on = bits[chars].reshape(ROWS, COLUMNS, CELL_HEIGHT, CELL_WIDTH)
        palette = np.array(PALETTE, dtype=np.uint8)
        fg = palette[attrs & 0x0F].reshape(ROWS, COLUMNS, 1, 1, 3)
        bg = palette[(attrs >> 4) & 0x07].reshape(ROWS, COLUMNS, 1, 1, 3)
        cells = np.where(on[..., None], fg, bg)                      # rows, cols, 16, 8, 3
        return cells.transpose(0, 2, 1, 3, 4).reshape(ROWS * CELL_HEIGHT, COLUMNS * CELL_WIDTH, 3)

    def to_png(self):
        """The screen as PNG bytes (640 x 400)."""
        from devices.host.png import encode_png
        return encode_png(self.pixels())

    def save_png(self, path):
        """Write the screen to ``path`` as a PNG picture (atomically)."""
        import os
        data = self.to_png()
        path = os.fspath(path)
        tmp = f"{path}.tmp{os.getpid()}"
        try:
            with open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        except OSError as e:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise OSError(e.errno, f"cannot write the screen picture {path}: {e.strerror}") from e

    def __call__(self):
        """``m.screen()`` is the screen too (the object reads guest memory
        whenever it is shown, so it is always current)."""
        return self

    def __str__(self):
        return self.text()

    def _repr_png_(self):
        return self.to_png()

    def _repr_html_(self):
        """The picture, with the text underneath for copying and for readers
        that do not show images."""
        import base64
        import html
        picture = base64.b64encode(self.to_png()).decode("ascii")
        return (f'<img src="data:image/png;base64,{picture}" width="640" height="400" '
                f'alt="80x25 text screen"><pre>{html.escape(self.text())}</pre>')

    def __repr__(self):
        return f"<TextScreen 80x25:\n{self.text()}\n>"
