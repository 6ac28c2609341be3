"""Render a terminal screen captured with ``tmux capture-pane -e -p`` (text + SGR colours) to a PNG.

Only what capture-pane emits is understood: SGR sequences (``ESC [ ... m``) with the 16 basic
colours, the 256-colour palette, 24-bit colours, bold, italic, underline and reverse video. Every
other escape sequence is dropped. One character is one cell (wide characters are not expected).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path

RGB = tuple[int, int, int]

#: xterm's 16 colours
BASIC: list[RGB] = [
    (0, 0, 0), (205, 0, 0), (0, 205, 0), (205, 205, 0), (0, 0, 238), (205, 0, 205), (0, 205, 205), (229, 229, 229),
    (127, 127, 127), (255, 0, 0), (0, 255, 0), (255, 255, 0), (92, 92, 255), (255, 0, 255), (0, 255, 255), (255, 255, 255),
]
DEFAULT_FG: RGB = (224, 226, 234)  # Neovim's NvimLightGrey2
DEFAULT_BG: RGB = (20, 22, 27)  # Neovim's NvimDarkGrey1


def palette(n: int) -> RGB:
    if n < 16:
        return BASIC[n]
    if n < 232:
        n -= 16
        steps = [0, 95, 135, 175, 215, 255]
        return steps[n // 36], steps[(n // 6) % 6], steps[n % 6]
    v = 8 + 10 * (n - 232)
    return v, v, v


@dataclass(frozen=True)
class Style:
    fg: RGB | None = None
    bg: RGB | None = None
    bold: bool = False
    italic: bool = False
    underline: bool = False
    reverse: bool = False


@dataclass
class Cell:
    ch: str
    style: Style


_ESC = re.compile(r"\x1b\[([0-9;:]*)([A-Za-z])|\x1b[()][0-9A-Za-z]|\x1b[=>]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)")


def _sgr(style: Style, params: str) -> Style:
    nums = [int(p) if p else 0 for p in re.split(r"[;:]", params)] if params else [0]
    i = 0
    while i < len(nums):
        n = nums[i]
        if n == 0:
            style = Style()
        elif n == 1:
            style = replace(style, bold=True)
        elif n == 3:
            style = replace(style, italic=True)
        elif n == 4:
            style = replace(style, underline=True)
        elif n == 7:
            style = replace(style, reverse=True)
        elif n == 22:
            style = replace(style, bold=False)
        elif n == 23:
            style = replace(style, italic=False)
        elif n == 24:
            style = replace(style, underline=False)
        elif n == 27:
            style = replace(style, reverse=False)
        elif 30 <= n <= 37:
            style = replace(style, fg=BASIC[n - 30])
        elif 90 <= n <= 97:
            style = replace(style, fg=BASIC[n - 90 + 8])
        elif 40 <= n <= 47:
            style = replace(style, bg=BASIC[n - 40])
        elif 100 <= n <= 107:
            style = replace(style, bg=BASIC[n - 100 + 8])
        elif n == 39:
            style = replace(style, fg=None)
        elif n == 49:
            style = replace(style, bg=None)
        elif n in (38, 48) and i + 1 < len(nums):
            if nums[i + 1] == 5 and i + 2 < len(nums):
                color, i = palette(nums[i + 2]), i + 2
            elif nums[i + 1] == 2 and i + 4 < len(nums):
                color, i = (nums[i + 2], nums[i + 3], nums[i + 4]), i + 4
            else:
                color = None
            if color is not None:
                style = replace(style, fg=color) if n == 38 else replace(style, bg=color)
        i += 1
    return style


def parse(ansi: str, width: int, height: int) -> list[list[Cell]]:
    """The screen as rows of cells; SGR state carries over line ends as in capture-pane output."""
    rows: list[list[Cell]] = []
    style = Style()
    for line in ansi.split("\n")[:height]:
        row: list[Cell] = []
        pos = 0
        for m in _ESC.finditer(line):
            for ch in line[pos:m.start()]:
                row.append(Cell(ch, style))
            if m.group(2) == "m":
                style = _sgr(style, m.group(1))
            pos = m.end()
        for ch in line[pos:]:
            if ch not in "\r":
                row.append(Cell(ch, style))
        row += [Cell(" ", style)] * (width - len(row))  # trailing blanks keep the last background
        rows.append(row[:width])
    while len(rows) < height:
        rows.append([Cell(" ", Style()) for _ in range(width)])
    return rows


def colors(cell: Cell) -> tuple[RGB, RGB]:
    fg, bg = cell.style.fg or DEFAULT_FG, cell.style.bg or DEFAULT_BG
    return (bg, fg) if cell.style.reverse else (fg, bg)


def _font(size: int, bold: bool = False, italic: bool = False):
    from PIL import ImageFont

    suffix = {(False, False): "", (True, False): "-Bold", (False, True): "-Oblique", (True, True): "-BoldOblique"}[(bold, italic)]
    for d in ("/usr/share/fonts/truetype/dejavu", "/usr/share/fonts/dejavu", "/usr/share/fonts/TTF"):
        p = Path(d) / f"DejaVuSansMono{suffix}.ttf"
        if p.exists():
            return ImageFont.truetype(str(p), size)
    return ImageFont.load_default(size=size)


def render(ansi: str, out: Path, width: int = 100, height: int = 30, font_size: int = 16) -> tuple[int, int]:
    """Draw the captured screen to ``out`` (PNG); returns the image size."""
    from PIL import Image, ImageDraw

    rows = parse(ansi, width, height)
    fonts = {(b, i): _font(font_size, b, i) for b in (False, True) for i in (False, True)}
    cw = max(int(round(fonts[(False, False)].getlength("M"))), 1)
    ch = int(font_size * 1.3)
    img = Image.new("RGB", (cw * width, ch * height), DEFAULT_BG)
    draw = ImageDraw.Draw(img)
    for y, row in enumerate(rows):
        for x, cell in enumerate(row):
            fg, bg = colors(cell)
            x0, y0 = x * cw, y * ch
            if bg != DEFAULT_BG:
                draw.rectangle([x0, y0, x0 + cw - 1, y0 + ch - 1], fill=bg)
            if cell.ch.strip():
                draw.text((x0, y0 + (ch - font_size) // 2 - 1), cell.ch, fill=fg,
                          font=fonts[(cell.style.bold, cell.style.italic)])
            if cell.style.underline:
                draw.line([x0, y0 + ch - 2, x0 + cw - 1, y0 + ch - 2], fill=fg)
    out.parent.mkdir(parents=True, exist_ok=True)
    img.save(out)
    return img.size
