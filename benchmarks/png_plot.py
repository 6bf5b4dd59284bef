"""A tiny line chart written straight to PNG (zlib + struct, no plotting library).

For the benchmarks' figures where matplotlib is not installed: axes, ticks and their numbers,
one coloured line per series with square markers and vertical error bars, a legend, a title
and axis labels, in a 5x7 bitmap font (upper-case letters, digits, a little punctuation)::

    from png_plot import Series, line_chart
    line_chart("out.png", [Series("parallel", [1, 2, 4], [10.0, 6.1, 4.0], [0.2, 0.1, 0.3])],
               title="time per epoch", x_label="workers", y_label="seconds")
"""
from __future__ import annotations

import math
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

Color = tuple[int, int, int]

WHITE: Color = (255, 255, 255)
BLACK: Color = (0, 0, 0)
GRID: Color = (225, 225, 225)
PALETTE: tuple[Color, ...] = ((31, 119, 180), (214, 39, 40), (44, 160, 44), (255, 127, 14), (148, 103, 189))

# 5x7 glyphs, one string of 7 rows of 5 bits each ('#' on); lower case is drawn as upper case.
_GLYPHS: dict[str, tuple[str, ...]] = {
    " ": (".....",) * 7,
    "0": (".###.", "#...#", "#..##", "#.#.#", "##..#", "#...#", ".###."),
    "1": ("..#..", ".##..", "..#..", "..#..", "..#..", "..#..", ".###."),
    "2": (".###.", "#...#", "....#", "...#.", "..#..", ".#...", "#####"),
    "3": ("#####", "...#.", "..#..", "...#.", "....#", "#...#", ".###."),
    "4": ("...#.", "..##.", ".#.#.", "#..#.", "#####", "...#.", "...#."),
    "5": ("#####", "#....", "####.", "....#", "....#", "#...#", ".###."),
    "6": ("..##.", ".#...", "#....", "####.", "#...#", "#...#", ".###."),
    "7": ("#####", "....#", "...#.", "..#..", ".#...", ".#...", ".#..."),
    "8": (".###.", "#...#", "#...#", ".###.", "#...#", "#...#", ".###."),
    "9": (".###.", "#...#", "#...#", ".####", "....#", "...#.", ".##.."),
    "A": (".###.", "#...#", "#...#", "#####", "#...#", "#...#", "#...#"),
    "B": ("####.", "#...#", "#...#", "####.", "#...#", "#...#", "####."),
    "C": (".###.", "#...#", "#....", "#....", "#....", "#...#", ".###."),
    "D": ("###..", "#..#.", "#...#", "#...#", "#...#", "#..#.", "###.."),
    "E": ("#####", "#....", "#....", "####.", "#....", "#....", "#####"),
    "F": ("#####", "#....", "#....", "####.", "#....", "#....", "#...."),
    "G": (".###.", "#...#", "#....", "#.###", "#...#", "#...#", ".####"),
    "H": ("#...#", "#...#", "#...#", "#####", "#...#", "#...#", "#...#"),
    "I": (".###.", "..#..", "..#..", "..#..", "..#..", "..#..", ".###."),
    "J": ("..###", "...#.", "...#.", "...#.", "...#.", "#..#.", ".##.."),
    "K": ("#...#", "#..#.", "#.#..", "##...", "#.#..", "#..#.", "#...#"),
    "L": ("#....", "#....", "#....", "#....", "#....", "#....", "#####"),
    "M": ("#...#", "##.##", "#.#.#", "#.#.#", "#...#", "#...#", "#...#"),
    "N": ("#...#", "#...#", "##..#", "#.#.#", "#..##", "#...#", "#...#"),
    "O": (".###.", "#...#", "#...#", "#...#", "#...#", "#...#", ".###."),
    "P": ("####.", "#...#", "#...#", "####.", "#....", "#....", "#...."),
    "Q": (".###.", "#...#", "#...#", "#...#", "#.#.#", "#..#.", ".##.#"),
    "R": ("####.", "#...#", "#...#", "####.", "#.#..", "#..#.", "#...#"),
    "S": (".####", "#....", "#....", ".###.", "....#", "....#", "####."),
    "T": ("#####", "..#..", "..#..", "..#..", "..#..", "..#..", "..#.."),
    "U": ("#...#", "#...#", "#...#", "#...#", "#...#", "#...#", ".###."),
    "V": ("#...#", "#...#", "#...#", "#...#", "#...#", ".#.#.", "..#.."),
    "W": ("#...#", "#...#", "#...#", "#.#.#", "#.#.#", "#.#.#", ".#.#."),
    "X": ("#...#", "#...#", ".#.#.", "..#..", ".#.#.", "#...#", "#...#"),
    "Y": ("#...#", "#...#", ".#.#.", "..#..", "..#..", "..#..", "..#.."),
    "Z": ("#####", "....#", "...#.", "..#..", ".#...", "#....", "#####"),
    ".": (".....", ".....", ".....", ".....", ".....", ".##..", ".##.."),
    ",": (".....", ".....", ".....", ".....", ".##..", "..#..", ".#..."),
    ":": (".....", ".##..", ".##..", ".....", ".##..", ".##..", "....."),
    "-": (".....", ".....", ".....", "#####", ".....", ".....", "....."),
    "+": (".....", "..#..", "..#..", "#####", "..#..", "..#..", "....."),
    "/": ("....#", "....#", "...#.", "..#..", ".#...", "#....", "#...."),
    "(": ("...#.", "..#..", ".#...", ".#...", ".#...", "..#..", "...#."),
    ")": (".#...", "..#..", "...#.", "...#.", "...#.", "..#..", ".#..."),
    "%": ("##...", "##..#", "...#.", "..#..", ".#...", "#..##", "...##"),
    "=": (".....", ".....", "#####", ".....", "#####", ".....", "....."),
    "_": (".....", ".....", ".....", ".....", ".....", ".....", "#####"),
    "?": (".###.", "#...#", "....#", "...#.", "..#..", ".....", "..#.."),
}
GLYPH_W, GLYPH_H = 5, 7


def encode_png(width: int, height: int, rgb: bytes | bytearray) -> bytes:
    """An 8-bit RGB PNG of ``rgb`` (rows top to bottom, 3 bytes a pixel)."""
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive: {width}x{height}")
    if len(rgb) != width * height * 3:
        raise ValueError(f"{len(rgb)} bytes of pixels for {width}x{height} RGB (want {width * height * 3})")
    stride = width * 3
    raw = b"".join(b"\x00" + bytes(rgb[y * stride:(y + 1) * stride]) for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


class Canvas:
    """An RGB raster with the few drawing operations a chart needs."""

    def __init__(self, width: int, height: int, background: Color = WHITE) -> None:
        self.width, self.height = width, height
        self.pixels = bytearray(bytes(background) * (width * height))

    def set(self, x: int, y: int, color: Color) -> None:
        if 0 <= x < self.width and 0 <= y < self.height:
            i = (y * self.width + x) * 3
            self.pixels[i:i + 3] = bytes(color)

    def rect(self, x0: int, y0: int, x1: int, y1: int, color: Color) -> None:
        """Filled, corners included."""
        for y in range(max(0, min(y0, y1)), min(self.height, max(y0, y1) + 1)):
            for x in range(max(0, min(x0, x1)), min(self.width, max(x0, x1) + 1)):
                self.set(x, y, color)

    def line(self, x0: int, y0: int, x1: int, y1: int, color: Color, thickness: int = 1, dash: int = 0) -> None:
        """Bresenham, ``thickness`` pixels wide (a square brush); ``dash``: on/off runs of that many pixels."""
        dx, dy = abs(x1 - x0), -abs(y1 - y0)
        sx, sy = (1 if x0 < x1 else -1), (1 if y0 < y1 else -1)
        err = dx + dy
        low, high = -((thickness - 1) // 2), thickness // 2
        step = 0
        while True:
            if not dash or (step // dash) % 2 == 0:
                for oy in range(low, high + 1):
                    for ox in range(low, high + 1):
                        self.set(x0 + ox, y0 + oy, color)
            step += 1
            if x0 == x1 and y0 == y1:
                return
            e2 = 2 * err
            if e2 >= dy:
                err += dy
                x0 += sx
            if e2 <= dx:
                err += dx
                y0 += sy

    def text(self, x: int, y: int, text: str, color: Color = BLACK, scale: int = 1) -> None:
        """``text`` with its top-left corner at (x, y); unknown characters are drawn as '?'."""
        for i, char in enumerate(text):
            glyph = _GLYPHS.get(char) or _GLYPHS.get(char.upper()) or _GLYPHS["?"]
            for row, bits in enumerate(glyph):
                for col, bit in enumerate(bits):
                    if bit == "#":
                        gx, gy = x + (i * (GLYPH_W + 1) + col) * scale, y + row * scale
                        self.rect(gx, gy, gx + scale - 1, gy + scale - 1, color)

    def text_vertical(self, x: int, y: int, text: str, color: Color = BLACK, scale: int = 1) -> None:
        """``text`` rotated a quarter turn anticlockwise (reads bottom to top), its baseline at x."""
        for i, char in enumerate(text):
            glyph = _GLYPHS.get(char) or _GLYPHS.get(char.upper()) or _GLYPHS["?"]
            for row, bits in enumerate(glyph):
                for col, bit in enumerate(bits):
                    if bit == "#":
                        gx, gy = x + row * scale, y - (i * (GLYPH_W + 1) + col) * scale
                        self.rect(gx, gy, gx + scale - 1, gy + scale - 1, color)

    def png(self) -> bytes:
        return encode_png(self.width, self.height, self.pixels)


def text_width(text: str, scale: int = 1) -> int:
    return max(0, len(text) * (GLYPH_W + 1) - 1) * scale


@dataclass
class Series:
    label: str
    x: Sequence[float]
    y: Sequence[float | None]  # None: no point there (e.g. skipped)
    err: Sequence[float] | None = None  # half-height of the error bar at each point
    color: Color | None = None
    dashed: bool = False


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values covering [low, high] (1, 2, 2.5 or 5 times a power of ten apart)."""
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError("tick range must be finite")
    if high < low:
        low, high = high, low
    if high == low:
        high = low + (abs(low) or 1.0)
    raw = (high - low) / max(1, count)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.floor(low / step) * step
    ticks, value = [], first
    while value <= high + step * 1e-9:
        ticks.append(round(value, 10))
        value += step
    if ticks[-1] < high - step * 1e-9:
        ticks.append(round(value, 10))
    return ticks


def format_tick(value: float) -> str:
    if abs(value - round(value)) < 1e-9:
        return str(int(round(value)))
    return f"{value:.2f}".rstrip("0").rstrip(".")


def line_chart(
    path: str | Path | None,
    series: Sequence[Series],
    *,
    title: str = "",
    x_label: str = "",
    y_label: str = "",
    width: int = 720,
    height: int = 480,
    x_ticks: Sequence[float] | None = None,
    y_from_zero: bool = True,
) -> bytes:
    """Draw the chart; write it to ``path`` (when given, creating its folder) and return the PNG bytes."""
    if width < 200 or height < 150:
        raise ValueError(f"a chart needs at least 200x150 pixels, not {width}x{height}")
    points = [(x, y, (s.err[i] if s.err else 0.0) or 0.0)
              for s in series for i, (x, y) in enumerate(zip(s.x, s.y)) if y is not None]
    canvas = Canvas(width, height)
    left, right, top, bottom = 70, width - 20, 40, height - 50
    xs = [p[0] for p in points] or [0.0, 1.0]
    lows = [p[1] - p[2] for p in points] or [0.0]
    highs = [p[1] + p[2] for p in points] or [1.0]
    x_tick_values = list(x_ticks) if x_ticks else nice_ticks(min(xs), max(xs), 5)
    x_min, x_max = min(x_tick_values + xs), max(x_tick_values + xs)
    if x_max == x_min:
        x_min, x_max = x_min - 1, x_max + 1
    pad = (x_max - x_min) * 0.06
    x_min, x_max = x_min - pad, x_max + pad
    y_tick_values = nice_ticks(0.0 if y_from_zero else min(lows), max(highs) * 1.05 if highs else 1.0, 5)
    y_min, y_max = y_tick_values[0], y_tick_values[-1]
    if y_max == y_min:
        y_max = y_min + 1

    def px(x: float) -> int:
        return round(left + (x - x_min) / (x_max - x_min) * (right - left))

    def py(y: float) -> int:
        return round(bottom - (y - y_min) / (y_max - y_min) * (bottom - top))

    for value in y_tick_values:  # grid, ticks, numbers
        y = py(value)
        canvas.line(left, y, right, y, GRID)
        canvas.line(left - 5, y, left, y, BLACK)
        label = format_tick(value)
        canvas.text(left - 8 - text_width(label), y - GLYPH_H // 2, label)
    for value in x_tick_values:
        x = px(value)
        canvas.line(x, top, x, bottom, GRID)
        canvas.line(x, bottom, x, bottom + 5, BLACK)
        label = format_tick(value)
        canvas.text(x - text_width(label) // 2, bottom + 9, label)
    canvas.line(left, top, left, bottom, BLACK)  # axes
    canvas.line(left, bottom, right, bottom, BLACK)
    if title:
        canvas.text((width - text_width(title, 2)) // 2, 12, title, scale=2)
    if x_label:
        canvas.text((left + right - text_width(x_label)) // 2, bottom + 26, x_label)
    if y_label:
        canvas.text_vertical(14, (top + bottom + text_width(y_label)) // 2, y_label)

    for index, s in enumerate(series):
        color = s.color or PALETTE[index % len(PALETTE)]
        drawn = [(px(x), py(y), i) for i, (x, y) in enumerate(zip(s.x, s.y)) if y is not None]
        for (x0, y0, _), (x1, y1, _) in zip(drawn, drawn[1:]):
            canvas.line(x0, y0, x1, y1, color, thickness=2, dash=6 if s.dashed else 0)
        for x, y, i in drawn:
            err = (s.err[i] if s.err else 0.0) or 0.0
            if err > 0:
                value = s.y[i]
                assert value is not None
                y_hi, y_lo = py(value + err), py(value - err)
                canvas.line(x, y_hi, x, y_lo, color)
                canvas.line(x - 4, y_hi, x + 4, y_hi, color)
                canvas.line(x - 4, y_lo, x + 4, y_lo, color)
            canvas.rect(x - 3, y - 3, x + 3, y + 3, color)

    if series:  # legend, top right inside the plot area
        box_w = max(text_width(s.label) for s in series) + 34
        box_h = len(series) * 14 + 8
        bx, by = right - box_w - 8, top + 8
        canvas.rect(bx, by, bx + box_w, by + box_h, WHITE)
        for edge in ((bx, by, bx + box_w, by), (bx, by + box_h, bx + box_w, by + box_h),
                     (bx, by, bx, by + box_h), (bx + box_w, by, bx + box_w, by + box_h)):
            canvas.line(*edge, BLACK)
        for index, s in enumerate(series):
            color = s.color or PALETTE[index % len(PALETTE)]
            ly = by + 6 + index * 14
            if s.dashed:
                canvas.rect(bx + 6, ly, bx + 9, ly + 7, color)
                canvas.rect(bx + 13, ly, bx + 16, ly + 7, color)
            else:
                canvas.rect(bx + 6, ly, bx + 16, ly + 7, color)
            canvas.text(bx + 24, ly, s.label)

    data = canvas.png()
    if path is not None:
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return data
