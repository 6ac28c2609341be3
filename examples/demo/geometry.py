"""A small module to try completions on (used by `make demo`)."""

import math
from dataclasses import dataclass


@dataclass
class Point:
    x: float
    y: float

    def distance(self, other: "Point") -> float:
        """Euclidean distance to ``other``."""
        return 

    def __add__(self, other: "Point") -> "Point":
        return Point(self.x + other.x, self.y + other.y)


def centroid(points: list[Point]) -> Point:
    n = len(points)
    
    return Point(sum(p.x for p in points) / n, sum(p.y for p in points) / n)
