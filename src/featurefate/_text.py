"""Counts and articles in messages: ``1 cell``, ``2 cells``, ``an init_scale store``."""

from __future__ import annotations


def count(n: int, noun: str, plural: str | None = None) -> str:
    """``n`` and ``noun`` in the number ``n`` asks for: ``1 cell``, ``0 cells``, ``2 problems``.

    ``plural`` defaults to ``noun + "s"``.
    """
    return f"{n} {noun if n == 1 else (plural or noun + 's')}"


def article(word: str) -> str:
    """``word`` after its indefinite article, by its first letter: ``an init_scale``,
    ``a linear_phase``."""
    return f"{'an' if word[:1].lower() in 'aeiou' else 'a'} {word}"
