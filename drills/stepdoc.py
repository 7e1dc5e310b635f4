"""`drills steps`: each step of the library as a feature author writes it, with its docstring's
first sentence (no regular expressions, no sentence cut in the middle)."""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from typing import Any

_NAMED = re.compile(r"\(\?P<(\w+)>")
_PARSE_FIELD = re.compile(r"\{(\w+)(?::[^}]*)?\}")


def readable(pattern: str, is_regex: bool) -> str:
    """'(?P<count>\\d+) enclave instances? (?:is|are) terminated' ->
    '<count> enclave instance(s) is/are terminated'; '{count:d} writes' -> '<count> writes'."""
    if not is_regex:
        return _PARSE_FIELD.sub(lambda m: f"<{m.group(1)}>", pattern)
    out, i = [], 0
    while i < len(pattern):
        named = _NAMED.match(pattern, i)
        if named:
            out.append(f"<{named.group(1)}>")
            i = _group_end(pattern, i)
        elif pattern.startswith("(?:", i):
            end = _group_end(pattern, i)
            inner = pattern[i + 3:end - 1]
            alts = [readable(alt, True) for alt in _alternatives(inner)]
            out.append(f"[{' | '.join(alts)}]" if any(" " in a for a in alts) else "/".join(alts))
            i = end + (1 if pattern[end:end + 1] == "?" else 0)
        elif pattern[i] == "\\" and i + 1 < len(pattern):
            out.append("<n>" if pattern[i + 1] == "d" else pattern[i + 1])
            i += 2
            if pattern[i:i + 1] == "+":
                i += 1
        elif pattern[i] == "?" and out and out[-1].isalpha():
            out[-1] = f"({out[-1]})"
            i += 1
        elif pattern[i] in "^$":
            i += 1
        else:
            out.append(pattern[i])
            i += 1
    return "".join(out)


def _group_end(pattern: str, start: int) -> int:
    """Index just past the ')' closing the group that opens at `start`."""
    depth, i = 0, start
    while i < len(pattern):
        if pattern[i] == "\\":
            i += 2
            continue
        if pattern[i] == "(":
            depth += 1
        elif pattern[i] == ")":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return len(pattern)


def _alternatives(inner: str) -> list[str]:
    """Split a group's body at its top-level '|'."""
    parts, depth, current, i = [], 0, "", 0
    while i < len(inner):
        ch = inner[i]
        if ch == "\\":
            current += inner[i:i + 2]
            i += 2
            continue
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "|" and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
        i += 1
    return [*parts, current]


def first_sentence(func: Callable[..., Any]) -> str:
    """The whole first sentence of a function's docstring (its first paragraph, joined)."""
    doc = inspect.getdoc(func) or ""
    paragraph = " ".join(doc.split("\n\n")[0].split())
    match = re.search(r"(?<!e\.g)(?<!i\.e)[.!?](\s|$)", paragraph)
    return paragraph[:match.end()].strip() if match else paragraph or "(undocumented)"
