"""Pictures of the VGA text screen (devices/host/screen.py, font.py, png.py):
the PNG is decoded here independently (chunks, CRCs, zlib, filter 0) and
its pixels checked against the font and the 16-colour palette."""
import struct
import zlib

import numpy as np
import pytest

from devices.host.font import ASCII, UNKNOWN, glyph
from devices.host.png import encode_png
from devices.host.screen import PALETTE, TextScreen
from emu.cli import main as cli_main


class FakeMemory:
    def __init__(self, cells):
        self.data = bytes(cells)

    def read(self, address, length):
        assert address == 0xB8000
        return self.data[:length]


class FakeMachine:
    def __init__(self, cells):
        self.memory = FakeMemory(cells)


def decode_png(data):
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks = 8, []
    while pos < len(data):
        length, = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        crc, = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        assert crc == zlib.crc32(kind + body) & 0xFFFFFFFF, kind
        chunks.append((kind, body))
        pos += 12 + length
    assert [k for k, _ in chunks][0] == b"IHDR" and chunks[-1][0] == b"IEND"
    width, height, depth, colour, _, _, _ = struct.unpack(">IIBBBBB", chunks[0][1])
    assert (depth, colour) == (8, 2)
    raw = zlib.decompress(b"".join(body for kind, body in chunks if kind == b"IDAT"))
    rows = np.frombuffer(raw, dtype=np.uint8).reshape(height, 1 + width * 3)
    assert (rows[:, 0] == 0).all()                                  # filter type 0
    return rows[:, 1:].reshape(height, width, 3)


def screen_of(cells_text):
    """A screen whose first cells are (char, attribute) pairs, the rest blank (07h)."""
    cells = bytearray(b" \x07" * 2000)
    cells[:len(cells_text)] = cells_text
    return TextScreen(FakeMachine(cells))


def cell(image, row, column):
    return image[row * 16:(row + 1) * 16, column * 8:(column + 1) * 8]


def test_a_character_is_its_glyph_in_its_colours():
    image = decode_png(screen_of(b"A\x1f").to_png())
    assert image.shape == (400, 640, 3)
    a = cell(image, 0, 0)
    bits = np.unpackbits(np.array(glyph(ord("A")), dtype=np.uint8)[:, None], axis=1).astype(bool)
    assert (a[bits] == (0xFF, 0xFF, 0xFF)).all()                    # white on ...
    assert (a[~bits] == (0x00, 0x00, 0xAA)).all()                   # ... blue
    assert (cell(image, 0, 1) == 0).all()                           # a blank cell in 07h is black


def test_every_attribute_colour_comes_from_the_palette():
    cells = b"".join(bytes([0xDB, fg | bg << 4]) for bg in range(8) for fg in range(16))
    image = decode_png(screen_of(cells).to_png())
    for i in range(128):
        fg = i % 16
        block = cell(image, i // 80, i % 80)
        assert (block == PALETTE[fg]).all(), i                       # a full block shows its foreground


def test_font_glyphs_are_distinct_and_unknown_codes_are_a_box():
    printable = [glyph(c) for c in range(0x21, 0x7F)]
    assert all(any(g) for g in printable)
    assert len(set(printable)) == len(printable)
    assert not any(glyph(0x20)) and len(ASCII) == 95
    assert glyph(0x01) == UNKNOWN and glyph(0xC4) != UNKNOWN and glyph(0xB1) != UNKNOWN


def test_encode_png_refuses_what_is_not_an_rgb_image():
    with pytest.raises(ValueError, match="uint8 array of shape"):
        encode_png(np.zeros((4, 4), dtype=np.uint8))


def test_cli_saves_the_screen_of_a_booted_disk(tmp_path, capsysbinary):
    from tests.test_bios import boot_sector
    disk = tmp_path / "disk.img"
    disk.write_bytes(boot_sector("mov ax, 0E41h\nint 10h\nmov al, 0\nout 0F4h, al"))
    picture = tmp_path / "screen.png"
    assert cli_main(["run", str(disk), "--screen", str(picture)]) == 1
    image = decode_png(picture.read_bytes())
    assert image.shape == (400, 640, 3) and image.any()
    assert cli_main(["run", str(disk), "--screen", str(tmp_path / "no" / "such" / "dir.png")]) == 2


def test_notebook_views_of_the_screen():
    """m.screen() and m.screen are the same live view: str is the text,
    HTML carries the picture (a data: URL of the PNG) and the text."""
    import base64
    screen = screen_of(b"H\x07i\x07<\x07")
    assert screen() is screen and str(screen) == "Hi<"
    page = screen._repr_html_()
    assert "<pre>Hi&lt;</pre>" in page
    data = page.split('src="data:image/png;base64,')[1].split('"')[0]
    assert decode_png(base64.b64decode(data)).shape == (400, 640, 3)
