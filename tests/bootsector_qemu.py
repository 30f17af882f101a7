"""The text screen of a disk image booted by qemu-system-i386 with its own
SeaBIOS: the reference for the boot-sector guests (firmware/bootsectors).

QEMU runs headless on a temporary copy of the image (QEMU never opens the
original, so a guest that writes its disk cannot change it). Its human
monitor, on a unix socket, reads the VGA text buffer with `pmemsave` and
types keys with `sendkey`. Needs no stdin; QEMU is killed on every exit."""
import os
import shutil
import socket
import subprocess
import tempfile
import time

TEXT_BUFFER, COLUMNS, ROWS = 0xB8000, 80, 25

# characters the guests are typed -> QEMU key names (sendkey); letters and
# digits are their own names, upper case is typed with shift
KEY_NAMES = {" ": "spc", "\n": "ret", "\r": "ret", "\t": "tab", "\b": "backspace",
             "-": "minus", "=": "equal", ".": "dot", ",": "comma", "/": "slash",
             ";": "semicolon", "'": "apostrophe", "[": "bracket_left", "]": "bracket_right",
             "\\": "backslash", "`": "grave_accent"}


def key_name(ch):
    if ch in KEY_NAMES:
        return KEY_NAMES[ch]
    if ch.isascii() and ch.isalnum():
        return f"shift-{ch.lower()}" if ch.isupper() else ch
    raise ValueError(f"no QEMU key name for {ch!r}")


def screen_lines(raw):
    """The 25 rows of a text buffer (character bytes only) as text, trailing
    blanks removed, and the blank rows at the bottom dropped."""
    rows = []
    for r in range(ROWS):
        chars = bytes(raw[r * COLUMNS * 2:(r + 1) * COLUMNS * 2:2]).replace(b"\0", b" ")
        rows.append(chars.decode("cp437").rstrip())
    while rows and not rows[-1]:
        rows.pop()
    return rows


class Monitor:
    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect(path)
        self.sock.settimeout(5)
        self._until_prompt()

    def _until_prompt(self):
        data = b""
        while not data.endswith(b"(qemu) "):
            chunk = self.sock.recv(65536)
            if not chunk:
                raise RuntimeError("the QEMU monitor closed")
            data += chunk
        return data

    def command(self, text):
        self.sock.sendall(text.encode() + b"\n")
        return self._until_prompt()


def qemu_screen(image_path, keys="", memory="16M", timeout=30, done="DONE", prompt=None):
    """Boot a copy of ``image_path`` as QEMU's IDE disk; once a screen row
    starts with ``prompt`` (if given; else at once), type ``keys`` ('\\n' is
    Enter); return the screen rows (trailing blank rows dropped) when a row
    equals ``done``.  TimeoutError carries the last screen."""
    qemu = shutil.which("qemu-system-i386")
    if qemu is None:
        raise FileNotFoundError("qemu-system-i386 is not installed")
    with tempfile.TemporaryDirectory() as d:
        sock, dump = os.path.join(d, "monitor"), os.path.join(d, "screen.bin")
        disk = os.path.join(d, "disk.img")
        shutil.copyfile(image_path, disk)
        proc = subprocess.Popen(
            [qemu, "-nodefaults", "-display", "none", "-vga", "std", "-m", memory, "-no-reboot",
             "-drive", f"file={disk},format=raw,if=ide",
             "-monitor", f"unix:{sock},server,nowait"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        mon = None
        try:
            deadline = time.monotonic() + timeout
            while not os.path.exists(sock):
                if proc.poll() is not None:
                    raise RuntimeError(f"qemu-system-i386 failed: {proc.stderr.read().decode()}")
                if time.monotonic() > deadline:
                    raise TimeoutError("QEMU did not open its monitor")
                time.sleep(0.05)
            mon = Monitor(sock)
            typed = not keys
            rows = []
            while time.monotonic() < deadline:
                mon.command(f'pmemsave {TEXT_BUFFER:#x} {COLUMNS * ROWS * 2} "{dump}"')
                with open(dump, "rb") as f:
                    rows = screen_lines(f.read())
                if done in rows:
                    return rows
                if not typed and (prompt is None or any(r.startswith(prompt) for r in rows)):
                    for ch in keys:
                        mon.command(f"sendkey {key_name(ch)}")
                        time.sleep(0.05)
                    typed = True
                time.sleep(0.1)
            raise TimeoutError("QEMU's screen never showed DONE; the last screen:\n" + "\n".join(rows))
        finally:
            if mon is not None:
                mon.sock.close()
            proc.kill()
            proc.wait()
            proc.stderr.close()
