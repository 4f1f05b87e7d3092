"""Reasons are declared once (regressops.reasons.Reason): every raised reason is a member, every
member is raised, every reason the API maps to a status is raised, and no code branches on a
reason spelled as a string literal."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import regressops
from regressops.reasons import Reason
from regressops.serving.problems import STATUS_BY_REASON

PACKAGE = Path(regressops.__file__).parent


def _trees() -> Iterator[tuple[Path, ast.AST]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        yield path, ast.parse(path.read_text(encoding="utf-8"))


def _str(node: ast.AST) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _member(node: ast.AST) -> str | None:
    """``Reason.X`` → its value."""
    if (
        isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "Reason"
    ):
        return Reason[node.attr].value
    return None


def raised_reasons() -> dict[str, set[str]]:
    """Every reason given to an error in the package → the files that give it."""
    found: dict[str, set[str]] = {}
    for path, tree in _trees():
        for node in ast.walk(tree):
            values: list[ast.AST] = []
            if isinstance(node, ast.Call):
                values += [kw.value for kw in node.keywords if kw.arg == "reason"]
                func = node.func
                name = getattr(func, "id", getattr(func, "attr", ""))
                if name == "ApiError" and len(node.args) >= 2:
                    values.append(node.args[1])
            elif isinstance(node, ast.Assign) and any(
                getattr(t, "id", "") == "default_reason" for t in node.targets
            ):
                values.append(node.value)
            for value in values:
                reason = _str(value) or _member(value)
                if reason is not None:
                    found.setdefault(reason, set()).add(path.name)
    return found


def test_every_raised_reason_is_declared() -> None:
    unknown = {r: sorted(files) for r, files in raised_reasons().items() if r not in set(Reason)}
    assert not unknown, f"add these to regressops.reasons.Reason (or fix the typo): {unknown}"


def test_every_declared_reason_is_raised_somewhere() -> None:
    raised = set(raised_reasons())
    assert not [r.value for r in Reason if r.value not in raised]


def test_every_reason_mapped_to_an_http_status_is_raised() -> None:
    raised = set(raised_reasons())
    assert all(r.value in raised for r in STATUS_BY_REASON)
    assert all(400 <= s < 600 for s in STATUS_BY_REASON.values())


def test_no_code_branches_on_a_reason_literal() -> None:
    offenders = []
    for path, tree in _trees():
        for node in ast.walk(tree):
            if not isinstance(node, ast.Compare):
                continue
            sides = [node.left, *node.comparators]
            if not any(isinstance(s, ast.Attribute) and s.attr == "reason" for s in sides):
                continue
            for side in sides:
                items = side.elts if isinstance(side, ast.Tuple | ast.List | ast.Set) else [side]
                if any(_str(item) is not None for item in items):
                    offenders.append(f"{path.name}:{node.lineno}")
    assert not offenders, f"compare reasons with Reason members: {offenders}"
