"""The quality benchmark's questions: two task families from the Debian package ``bsdgames``, offline.

``bsdgames`` ships the data files of BSD ``quiz(6)`` (BSD licence, see benchmarks/README.md). Two
families are read from them, each item with its reference answers:

- **capitals** (files ``europe``, ``asia``, ``africa``, ``america``): "What is the capital of X?";
- **arithmetic** (files ``arith``, ``mult``): grade-school subtraction with a blank and the
  multiplication table, "What is 7 x 8?".

The package is fetched with ``apt-get download bsdgames`` (no root needed) into ``benchmarks/.data/`` and
unpacked with ``dpkg-deb -x``, once. ``QUIZ_DIR`` points at an unpacked copy instead.
"""

from __future__ import annotations

import os
import random
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE / ".data"
PACKAGE = "bsdgames"
CAPITAL_FILES = ("europe", "asia", "africa", "america")
ARITHMETIC_FILES = ("arith", "mult")
# the quiz files write accents in ASCII ('e for é): a name without them is the one shown
_ACCENT_MARKS = set("'^~°/,.")


@dataclass(frozen=True)
class Item:
    """One question with every answer that counts as right."""

    family: str
    question: str
    answers: tuple[str, ...]


def quiz_dir() -> Path:
    """The unpacked quiz data directory, downloading and unpacking ``bsdgames`` the first time."""
    if os.environ.get("QUIZ_DIR"):
        return Path(os.environ["QUIZ_DIR"])
    found = sorted(DATA.glob("unpacked/usr/share/games/bsdgames/quiz"))
    if found:
        return found[0]
    DATA.mkdir(parents=True, exist_ok=True)
    try:
        subprocess.run(["apt-get", "download", PACKAGE], cwd=DATA, check=True, capture_output=True)
        debs = sorted(DATA.glob(f"{PACKAGE}_*.deb"))
        subprocess.run(["dpkg-deb", "-x", str(debs[-1]), str(DATA / "unpacked")], check=True)
    except (OSError, subprocess.CalledProcessError, IndexError) as exc:
        raise SystemExit(
            f"could not fetch the Debian package {PACKAGE} ({exc}); run `apt-get update` first, or set "
            "QUIZ_DIR to a directory holding its quiz files (usr/share/games/bsdgames/quiz)"
        ) from exc
    return DATA / "unpacked" / "usr" / "share" / "games" / "bsdgames" / "quiz"


def expand(pattern: str) -> list[str]:
    """Every string a quiz(6) answer pattern accepts: ``a|b`` alternatives, ``[a|b]`` groups of
    alternatives, ``{x}`` optional parts. ``"Bern{e}"`` -> ``["Berne", "Bern"]``."""

    def sequence(i: int, stop: str) -> tuple[list[str], int]:
        alternatives: list[list[str]] = [[""]]
        while i < len(pattern) and pattern[i] not in stop:
            char = pattern[i]
            if char == "|":
                alternatives.append([""])
                i += 1
                continue
            if char in "[{":
                inner, i = sequence(i + 1, "]" if char == "[" else "}")
                options = inner + ([""] if char == "{" else [])
                i += 1
            else:
                options = [char]
                i += 1
            alternatives[-1] = [done + option for done in alternatives[-1] for option in options]
        return [text for alternative in alternatives for text in alternative], i

    found, _ = sequence(0, "")
    return list(dict.fromkeys(" ".join(text.split()) for text in found if text.strip()))


def _first_alternative(pattern: str) -> str:
    depth = 0
    for index, char in enumerate(pattern):
        depth += char in "[{"
        depth -= char in "]}"
        if char == "|" and depth == 0:
            return pattern[:index]
    return pattern


def _display(pattern: str) -> str:
    """The name a question shows: the first alternative, spelt without ASCII accents, in full."""
    forms = expand(_first_alternative(pattern))
    return min(forms, key=lambda form: (sum(char in _ACCENT_MARKS for char in form), -len(form)))


def capitals(directory: Path) -> list[Item]:
    """Every country of the four capital files once (the first file naming it wins)."""
    items: dict[str, Item] = {}
    for name in CAPITAL_FILES:
        for line in (directory / name).read_text(encoding="utf-8", errors="replace").splitlines():
            if ":" not in line:
                continue
            country, capital = line.split(":")[:2]
            shown = _display(country)
            question = f"What is the capital of {shown}?"
            items.setdefault(shown, Item("capitals", question, tuple(expand(capital))))
    return list(items.values())


def arithmetic(directory: Path) -> list[Item]:
    """Subtractions (``63 - ... = 55``, the blank asked for) and the multiplication table."""
    items = []
    for name in ARITHMETIC_FILES:
        for line in (directory / name).read_text(encoding="utf-8").splitlines():
            if ":" not in line:
                continue
            expression, answer = (part.strip() for part in line.rsplit(":", 1))
            if expression.endswith("..."):  # "147 - 3 = ..." or "614 - 9 ..."
                asked = re.sub(r"\s*=?\s*\.\.\.$", "", expression)
                question = f"What is {asked}?"
            elif "..." in expression:
                question = f"What number goes in the blank: {expression.replace('...', '___')}?"
            else:
                question = f"What is {expression}?"
            items.append(Item("arithmetic", question, (answer,)))
    return items


def load_items(per_family: int | None, seed: int = 12) -> list[Item]:
    """``per_family`` items of each family (all when ``None``), a fixed shuffle of each, interleaved."""
    directory = quiz_dir()
    families = [capitals(directory), arithmetic(directory)]
    chosen = []
    for family in families:
        shuffled = list(family)
        random.Random(seed).shuffle(shuffled)
        chosen.append(shuffled[:per_family] if per_family is not None else shuffled)
    interleaved = [item for pair in zip(*chosen, strict=False) for item in pair]
    longest = max(chosen, key=len)
    return interleaved + longest[len(interleaved) // len(chosen) :]
