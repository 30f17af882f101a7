"""The VGA text screen as the host sees it: the 80x25 buffer at B8000h
(character and attribute bytes) turned into text lines."""

TEXT_BASE = 0xB8000
COLUMNS = 80
ROWS = 25

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

    def __repr__(self):
        return f"<TextScreen 80x25:\n{self.text()}\n>"
