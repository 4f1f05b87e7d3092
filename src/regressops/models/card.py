"""The model card: what a model predicts, from which data, how well, and how to serve it.

One function builds the card (:func:`model_card`) from a bundle and what the registry knows
about it (:class:`CardContext`: registered name and version, the gate report, the champion it
replaced); two renderers turn it into text — :func:`render_markdown` for the MLflow model-version
description and :func:`render_html` for ``GET /model-check`` with ``Accept: text/html``. Both
escape every value taken from the bundle or the registry, so a feature called ``<script>`` or
``a|b`` is shown as written.

Pure Python: no numpy arithmetic, no pandas, MLflow or scikit-learn, so serving can render it.
"""

from __future__ import annotations

import html
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from regressops.features import NumericFeature

if TYPE_CHECKING:
    from regressops.models.bundle import ModelBundle

METRICS = ("r2", "rmse", "mae", "mse")
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>#|~])")


@dataclass(frozen=True)
class Code:
    """Inline code inside a paragraph."""

    text: str


@dataclass(frozen=True)
class Paragraph:
    """Text runs (plain strings or :class:`Code`)."""

    parts: tuple[str | Code, ...]


@dataclass(frozen=True)
class Table:
    """A table of plain strings."""

    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class CodeBlock:
    """A block of shell commands."""

    text: str


Block = Paragraph | Table | CodeBlock


@dataclass(frozen=True)
class Section:
    """A titled part of the card."""

    title: str
    blocks: tuple[Block, ...]


@dataclass(frozen=True)
class ModelCard:
    """A card independent of its rendering: a title and its sections."""

    title: str
    sections: tuple[Section, ...]


@dataclass(frozen=True)
class CardContext:
    """What the registry adds to a bundle's card.

    Attributes
    ----------
    name, version : str, optional
        Registered model name and version (``None``: a local bundle).
    gates : mapping, optional
        The gate report (``GateReport.to_dict()``): ``passed``, ``checks``, ``candidate`` and
        ``champion`` with their metrics on the same held-out rows.
    status : str, optional
        The outcome at registration (``champion``, ``archived``, ...).
    """

    name: str | None = None
    version: str | None = None
    gates: Mapping[str, Any] | None = None
    status: str | None = None

    def to_json(self, limit: int = 4800) -> str:
        """Compact JSON for a registry tag; gate details are shortened to fit ``limit``."""
        doc: dict[str, Any] = {"name": self.name, "version": self.version, "status": self.status}
        if self.gates is not None:
            doc["gates"] = compact_gates(self.gates)
        for width in (300, 120, 40, 0):
            if doc.get("gates"):
                for check in doc["gates"]["checks"]:
                    check["detail"] = str(check.get("detail", ""))[:width]
            text = json.dumps(doc, separators=(",", ":"), allow_nan=False)
            if len(text) <= limit:
                return text
        doc.pop("gates", None)
        return json.dumps(doc, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> CardContext:
        """Read :meth:`to_json`'s form (an unreadable text gives an empty context)."""
        try:
            doc = json.loads(text)
        except ValueError:
            return cls()
        if not isinstance(doc, dict):
            return cls()
        gates = doc.get("gates")
        return cls(
            name=_opt_str(doc.get("name")),
            version=_opt_str(doc.get("version")),
            gates=gates if isinstance(gates, dict) else None,
            status=_opt_str(doc.get("status")),
        )


def stored_context(bundle: ModelBundle) -> CardContext | None:
    """The card context a loaded bundle carries: the registry's card tag (``extra["card"]``,
    set when served from the registry), else its registry coordinates, else None."""
    text = bundle.extra.get("card")
    if isinstance(text, str) and text:
        return CardContext.from_json(text)
    registry = bundle.extra.get("registry")
    if isinstance(registry, Mapping) and registry.get("name"):
        return CardContext(name=str(registry["name"]), version=_opt_str(registry.get("version")))
    return None


def compact_gates(report: Mapping[str, Any]) -> dict[str, Any]:
    """The parts of a gate report a card shows: verdict, checks, both models' metrics."""
    checks = [
        {
            "name": str(c.get("name", "")),
            "passed": bool(c.get("passed")),
            "skipped": bool(c.get("skipped")),
            "detail": str(c.get("detail", "")),
        }
        for c in report.get("checks", [])
        if isinstance(c, Mapping)
    ]
    out: dict[str, Any] = {"passed": bool(report.get("passed")), "checks": checks}
    out["n_rows"] = report.get("n_rows")
    for role in ("candidate", "champion"):
        part = report.get(role)
        if isinstance(part, Mapping):
            found = part.get("metrics")
            metrics: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
            out[role] = {
                "version": _opt_str(part.get("version")),
                "metrics": {k: metrics[k] for k in METRICS if _number(metrics.get(k))},
            }
    return out


def model_card(
    bundle: ModelBundle,
    context: CardContext | None = None,
    *,
    max_features: int | None = None,
    detail_width: int | None = None,
) -> ModelCard:
    """Build the card of ``bundle`` (with what the registry knows, when given).

    Parameters
    ----------
    bundle : ModelBundle
        The model: its spec, metrics and lineage.
    context : CardContext, optional
        Registry name and version, gate report, status.
    max_features : int, optional
        List at most this many features (the rest are counted); default all.
    detail_width : int, optional
        Shorten each gate's detail to this many characters; default in full.

    Returns
    -------
    ModelCard
    """
    ctx = context or CardContext()
    name = ctx.name or bundle.name
    version = ctx.version or bundle.version
    sections = (
        _what(bundle, name),
        _data(bundle),
        _features(bundle, max_features),
        _metrics(bundle, ctx),
        _gates(ctx, detail_width),
        _serve(bundle, name, version, registered=ctx.name is not None),
    )
    label = f"v{version}" if version != "local" else "local bundle"
    return ModelCard(f"{name} {label} ({bundle.kind})", sections)


def card_markdown(
    bundle: ModelBundle, context: CardContext | None = None, *, limit: int = 5000
) -> str:
    """The card as markdown of at most ``limit`` characters (MLflow keeps 5000).

    A card that does not fit is built again with shorter gate details and fewer features
    listed, then cut at a line with a note.
    """
    text = render_markdown(model_card(bundle, context))
    for features, width in ((20, 120), (10, 60), (5, 0)):
        if len(text) <= limit:
            return text
        card = model_card(bundle, context, max_features=features, detail_width=width)
        text = render_markdown(card)
    if len(text) <= limit:
        return text
    note = "\n\n(card shortened to fit the registry; see model.json)\n"
    return text[: limit - len(note)].rsplit("\n", 1)[0] + note


# ---------------------------------------------------------------------------- sections
def _what(bundle: ModelBundle, name: str) -> Section:
    target = bundle.spec.target or "the target"
    blocks: list[Block] = [
        Paragraph(
            (
                "Predicts ",
                Code(target),
                f" from {len(bundle.spec.names)} feature(s) with a {bundle.kind} model",
                f", trained {bundle.created_at}." if bundle.created_at else ".",
            )
        )
    ]
    if bundle.quantized is not None:
        q = bundle.quantized
        source = bundle.extra.get("quantized_from") or {}
        blocks.append(
            Paragraph(
                (
                    f"Coefficients stored as symmetric int8 ({q.granularity} scale, "
                    f"{q.nbytes} bytes) from a float {source.get('kind', 'linear')} model; "
                    "intercept in float. A prediction differs from the float model's by at most "
                    "Σ (s_j/2)·|x_j| over the standardised features.",
                )
            )
        )
    params = {k: v for k, v in bundle.params.items() if v is not None}
    if params:
        text = ", ".join(f"{k}={v}" for k, v in sorted(params.items()))
        blocks.append(Paragraph(("Parameters: ", Code(text))))
    return Section("What it predicts", tuple(blocks))


def _data(bundle: ModelBundle) -> Section:
    lin = bundle.lineage
    rows: list[tuple[str, str]] = []
    source = str(lin.get("source", "unknown"))
    rows.append(("source", source))
    for key, label in (
        ("dataset", "dataset"),
        ("clean_version", "lake clean version"),
        ("raw_version", "lake raw version"),
        ("source_url", "source database"),
        ("source_table", "source table"),
        ("source_query", "source query"),
        ("extracted_at", "extracted at"),
        ("path", "file"),
        ("rows", "rows"),
        ("content_hash", "content SHA-256"),
        ("git_commit", "code commit"),
    ):
        value = lin.get(key)
        if value not in (None, ""):
            rows.append((label, str(value)))
    split = lin.get("split")
    if isinstance(split, Mapping):
        parts = ", ".join(f"{k}={v}" for k, v in split.items() if not isinstance(v, list | dict))
        rows.append(("split", parts))
    if source != "lake":
        rows.append(("lake version", "none: not trained from the lake"))
    return Section("Data", (Table(("what", "value"), tuple(rows)),))


def _features(bundle: ModelBundle, limit: int | None) -> Section:
    rows = []
    features = bundle.spec.features
    for f in features[:limit]:
        if isinstance(f, NumericFeature):
            rng = f"{_num(f.min)} … {_num(f.max)}, mean {_num(f.mean)}"
            rows.append((f.name, "numeric", rng, _num(f.impute)))
        else:
            rows.append((f.name, "categorical", ", ".join(f.categories), str(f.impute)))
    header = ("feature", "type", "training range / categories", "impute")
    blocks: tuple[Block, ...] = (Table(header, tuple(rows)),)
    if limit is not None and len(features) > limit:
        more = f"… and {len(features) - limit} more: " + ", ".join(f.name for f in features[limit:])
        blocks += (Paragraph((more[:600],)),)
    return Section("Features", blocks)


def _metrics(bundle: ModelBundle, ctx: CardContext) -> Section:
    gates = compact_gates(ctx.gates) if ctx.gates is not None else {}
    cand = (gates.get("candidate") or {}).get("metrics") or {
        k: bundle.metrics[k] for k in METRICS if _number(bundle.metrics.get(k))
    }
    champ = gates.get("champion")
    header: tuple[str, ...] = ("metric", "this model")
    if champ:
        replaced = (ctx.status or "").startswith("@champion")
        role = "champion replaced" if replaced else "champion compared"
        header += (f"{role} (v{champ.get('version')})", "change")
    rows = []
    for k in METRICS:
        if k not in cand:
            continue
        row: tuple[str, ...] = (k, _num(cand[k]))
        if champ:
            other = champ["metrics"].get(k)
            row += (_num(other), _delta(cand[k], other)) if _number(other) else ("", "")
        rows.append(row)
    where = f"{gates['n_rows']} held-out rows" if gates.get("n_rows") else "the test rows"
    text = f"On {where}" + (", the same rows for both models." if champ else ".")
    if not champ:
        text += " No champion was replaced (first version, or not compared)."
    blocks: list[Block] = [Paragraph((text,)), Table(header, tuple(rows))]
    quant = bundle.metrics.get("quantization")
    if isinstance(quant, Mapping) and _number(quant.get("float_r2")):
        blocks.append(
            Paragraph(
                (
                    f"Float model before quantisation: r2 {_num(quant['float_r2'])}, rmse "
                    f"{_num(quant['float_rmse'])}; largest |Δŷ| measured "
                    f"{_num(quant['max_abs_error'])} (bound there {_num(quant['bound_at_max'])}).",
                )
            )
        )
    return Section("Metrics", tuple(blocks))


def _gates(ctx: CardContext, width: int | None) -> Section:
    status = f"; status: {ctx.status}" if ctx.status else ""
    if ctx.gates is None:
        text = f"No gate report recorded for this model{status}."
        return Section("Gates", (Paragraph((text,)),))
    gates = compact_gates(ctx.gates)
    verdict = "passed" if gates["passed"] else "failed"
    rows = tuple(
        (c["name"], _verdict(c), c["detail"][:width] if width is not None else c["detail"])
        for c in gates["checks"]
    )
    return Section(
        "Gates",
        (
            Paragraph((f"Quality gates {verdict}{status}.",)),
            Table(("gate", "result", "detail"), rows),
        ),
    )


def _serve(bundle: ModelBundle, name: str, version: str, *, registered: bool) -> Section:
    ref = f"models:/{name}/{version}" if registered else "PATH/TO/BUNDLE"
    record = {f.name: f.impute for f in bundle.spec.features}
    body = json.dumps({"data": [record]}, allow_nan=False, default=str)
    lines = [f"regressops serve --model {ref}"]
    if registered:
        lines.append(f"regressops serve --model models:/{name}@champion   # whichever is champion")
    lines.append(
        "curl -s http://127.0.0.1:8000/predict -H 'Content-Type: application/json' "
        f"-d '{body.replace(chr(39), '')}'"
    )
    if registered:
        lines.append(f"mlflow models serve -m {ref} --env-manager local")
    return Section(
        "How to serve it",
        (
            Paragraph(
                (
                    "Served with numpy only (no scikit-learn or MLflow)."
                    if bundle.is_linear
                    else "Needs scikit-learn and skops to load (the full installation).",
                )
            ),
            CodeBlock("\n".join(lines)),
        ),
    )


# ---------------------------------------------------------------------------- renderers
def render_markdown(card: ModelCard) -> str:
    """Markdown for the MLflow model-version description (values escaped)."""
    out = [f"# {_md(card.title)}", ""]
    for section in card.sections:
        out += [f"## {_md(section.title)}", ""]
        for block in section.blocks:
            if isinstance(block, Paragraph):
                out.append("".join(_md_part(p) for p in block.parts))
            elif isinstance(block, Table):
                out.append("| " + " | ".join(_md_cell(h) for h in block.header) + " |")
                out.append("|" + "---|" * len(block.header))
                out.extend("| " + " | ".join(_md_cell(c) for c in r) + " |" for r in block.rows)
            else:
                fence = "~~~~" if "```" in block.text else "```"
                out += [f"{fence}sh", block.text.replace("~~~~", "~ ~ ~ ~"), fence]
            out.append("")
    return "\n".join(out).rstrip() + "\n"


def render_html(card: ModelCard) -> str:
    """A standalone HTML page (every value escaped)."""
    e = html.escape
    out = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{e(card.title)}</title>",
        "<style>body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;"
        "padding:0 1rem}table{border-collapse:collapse}td,th{border:1px solid #ccc;"
        "padding:.25rem .5rem;text-align:left}pre{background:#f4f4f4;padding:.5rem;"
        "overflow-x:auto}</style>",
        "</head><body>",
        f"<h1>{e(card.title)}</h1>",
    ]
    for section in card.sections:
        out.append(f"<h2>{e(section.title)}</h2>")
        for block in section.blocks:
            if isinstance(block, Paragraph):
                parts = (
                    f"<code>{e(p.text)}</code>" if isinstance(p, Code) else e(p)
                    for p in block.parts
                )
                out.append(f"<p>{''.join(parts)}</p>")
            elif isinstance(block, Table):
                head = "".join(f"<th>{e(h)}</th>" for h in block.header)
                body = "".join(
                    "<tr>" + "".join(f"<td>{e(c)}</td>" for c in r) + "</tr>" for r in block.rows
                )
                out.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
            else:
                out.append(f"<pre><code>{e(block.text)}</code></pre>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------- helpers
def _md(text: str) -> str:
    return _MD_SPECIAL.sub(r"\\\1", text.replace("\n", " "))


def _md_cell(text: str) -> str:
    return _md(text) if text else " "


def _md_part(part: str | Code) -> str:
    if isinstance(part, Code):
        ticks = "``" if "`" in part.text else "`"
        return f"{ticks} {part.text} {ticks}" if ticks == "``" else f"`{part.text}`"
    return _md(part)


def _verdict(check: Mapping[str, Any]) -> str:
    return "skipped" if check["skipped"] else ("pass" if check["passed"] else "FAIL")


def _num(value: Any) -> str:
    return f"{float(value):.6g}" if _number(value) else "n/a"


def _delta(a: Any, b: Any) -> str:
    return f"{float(a) - float(b):+.4g}"


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)
