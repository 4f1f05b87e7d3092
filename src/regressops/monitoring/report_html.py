"""``report.html``: one self-contained page rendered from the content of ``drift.json``.

No request leaves the page: the style is inline CSS, the charts inline SVG, no script, no font
or image from elsewhere. Order: the verdict, the windows and model, the features table, the
prediction (and target) distribution, performance when labels exist, then each feature's
reference and current distributions drawn over each other.
"""

from __future__ import annotations

import math
from html import escape
from typing import Any

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1d2430;
background:#f6f7f9}
main{max-width:1100px;margin:0 auto;padding:24px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px}
.verdict{border-radius:8px;padding:18px 22px;color:#fff;margin:12px 0 8px}
.verdict b{font-size:22px;display:block}
.ok{background:#1f7a4d}.drift{background:#b3261e}.not_enough_data{background:#6b7280}
.degraded{background:#b3261e}.watch{background:#b26a00}
table{border-collapse:collapse;width:100%;background:#fff}
th,td{padding:6px 10px;border-bottom:1px solid #e3e6ea;text-align:left}
th{background:#eef1f4;font-weight:600}td.num{text-align:right;font-variant-numeric:tabular-nums}
.tag{display:inline-block;padding:1px 8px;border-radius:10px;color:#fff;font-size:12px}
.meta{display:grid;grid-template-columns:max-content 1fr;gap:2px 14px;background:#fff;
padding:12px 16px;border-radius:8px}
.meta dt{color:#5b6472}.meta dd{margin:0}
.charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(330px,1fr));gap:12px}
figure{margin:0;background:#fff;border-radius:8px;padding:10px}
figcaption{font-weight:600;margin-bottom:4px}
.legend{font-size:12px;color:#5b6472}
.sw{display:inline-block;width:10px;height:10px;margin:0 4px 0 10px}
"""
REF_COLOUR = "#8a94a6"
CUR_COLOUR = "#2563eb"
_W, _H, _PAD = 320, 150, 22


def render_html(doc: dict[str, Any]) -> str:
    """The report page for a ``drift.json`` document."""
    status = str(doc.get("status", "ok"))
    features: dict[str, Any] = doc.get("features", {})
    drifted = [n for n, f in features.items() if f.get("drifted")]
    perf = doc.get("performance")
    headline = {
        "ok": "No dataset drift",
        "drift": "Dataset drift detected",
        "not_enough_data": "Not enough data to judge drift",
    }.get(status, status)
    judged = sum(1 for f in features.values() if f.get("status") != "not_enough_data")
    detail = (
        f"{len(drifted)} of {judged} features drifted "
        f"(share {doc.get('share_drifted', 0):.2f}; dataset drift at "
        f"{doc.get('drift_share', 0.5):.2f})" + (": " + ", ".join(drifted) if drifted else "")
    )
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width,initial-scale=1'>",
        f"<title>Drift report: {escape(headline)}</title><style>{_CSS}</style></head><body><main>",
        "<h1>regressops drift report</h1>",
        f"<section id='verdict' class='verdict {escape(status)}'><b>{escape(headline)}</b>",
        f"{escape(detail)}</section>",
    ]
    if perf:
        parts.append(_performance_banner(perf))
    parts.append(_meta(doc))
    parts.append("<h2>Features</h2>" + _features_table(features))
    dists = doc.get("distributions") or {}
    extra = []
    for key, title in (("prediction", "Predictions"), ("target", "Target")):
        verdict = doc.get(key)
        dist = dists.get(key)
        if verdict and dist:
            extra.append(_figure(title, verdict, dist))
    if extra:
        parts.append("<h2>Predictions</h2><div class='charts'>" + "".join(extra) + "</div>")
    if perf:
        parts.append("<h2>Performance</h2>" + _performance_table(perf))
        if perf.get("shadow"):
            parts.append("<h2>Challenger in shadow</h2>" + _shadow_table(perf["shadow"]))
    charts = [
        _figure(name, f, (dists.get("features") or {}).get(name) or {})
        for name, f in features.items()
    ]
    parts.append(
        "<h2>Distributions</h2><p class='legend'>"
        f"<span class='sw' style='background:{REF_COLOUR}'></span>reference"
        f"<span class='sw' style='background:{CUR_COLOUR};opacity:.6'></span>current</p>"
        "<div class='charts'>" + "".join(charts) + "</div>"
    )
    parts.append("</main></body></html>\n")
    return "".join(parts)


def _fmt(v: Any, digits: int = 4) -> str:
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        if not math.isfinite(v):
            return "–"
        return f"{v:.{digits}g}"
    return escape(str(v))


def _tag(status: str) -> str:
    label = {
        "ok": "ok",
        "drift": "drift",
        "not_enough_data": "not enough data",
        "degraded": "degraded",
    }.get(status, status)
    return f"<span class='tag {escape(status)}'>{escape(label)}</span>"


def _meta(doc: dict[str, Any]) -> str:
    ref, cur, model = doc.get("reference") or {}, doc.get("current") or {}, doc.get("model")
    rows = []
    if model:
        rows.append(("Model", f"{model.get('name')} version {model.get('version')}"))
    rows.append(("Reference", f"{ref.get('source')} ({_fmt(ref.get('rows'))} rows)"))
    window = f"{cur.get('source')} ({_fmt(cur.get('rows'))} rows)"
    if cur.get("from"):
        window += f", {cur.get('from')} to {cur.get('to')}"
    rows.append(("Current", window))
    if cur.get("model_version"):
        rows.append(("Logged by version", str(cur["model_version"])))
    if doc.get("fdr"):
        rows.append(("p-values", "adjusted for the false discovery rate (Benjamini–Hochberg)"))
    rows.append(("Generated", str(doc.get("generated_at", ""))))
    body = "".join(f"<dt>{escape(k)}</dt><dd>{escape(str(v))}</dd>" for k, v in rows)
    return f"<h2>Windows</h2><dl class='meta'>{body}</dl>"


def _features_table(features: dict[str, Any]) -> str:
    head = (
        "<tr><th>feature</th><th>type</th><th>method</th><th>score</th><th>adjusted p</th>"
        "<th>threshold</th><th>verdict</th><th>std score</th><th>current rows</th></tr>"
    )
    rows = []
    for name, f in features.items():
        rows.append(
            f"<tr><td>{escape(name)}</td><td>{escape(str(f.get('type')))}</td>"
            f"<td>{escape(str(f.get('method')))}</td><td class='num'>{_fmt(f.get('score'))}</td>"
            f"<td class='num'>{_fmt(f.get('p_adjusted'))}</td>"
            f"<td class='num'>{_fmt(f.get('threshold'))}</td><td>{_tag(str(f.get('status')))}</td>"
            f"<td class='num'>{_fmt(f.get('std_score'))}</td>"
            f"<td class='num'>{_fmt(f.get('current_rows'))}</td></tr>"
        )
    return f"<table id='features'>{head}{''.join(rows)}</table>"


def _performance_banner(perf: dict[str, Any]) -> str:
    status = str(perf.get("status"))
    text = {
        "ok": "Performance holds",
        "degraded": "Performance degraded",
        "not_enough_data": "Not enough labelled rows to judge performance",
    }.get(status, status)
    inc = perf.get("rmse_increase")
    more = f" — RMSE {inc:+.1%} against the test set" if isinstance(inc, float) else ""
    return (
        f"<section id='performance-verdict' class='verdict {escape(status)}'>"
        f"<b>{escape(text)}</b>{_fmt(perf.get('rows_labelled'))} labelled rows{escape(more)}"
        "</section>"
    )


def _performance_table(perf: dict[str, Any]) -> str:
    ref = perf.get("reference") or {}
    rows = "".join(
        f"<tr><td>{m}</td><td class='num'>{_fmt(perf.get(m))}</td>"
        f"<td class='num'>{_fmt(ref.get(m))}</td></tr>"
        for m in ("r2", "rmse", "mse", "mae")
    )
    return (
        "<table id='performance'><tr><th>metric</th><th>labelled rows</th><th>model's test set"
        f"</th></tr>{rows}</table><p class='legend'>{_fmt(perf.get('rows_labelled'))} labelled "
        f"rows; {_fmt(perf.get('labels_unmatched'))} labels matched no logged row.</p>"
    )


def _shadow_table(shadow: dict[str, Any]) -> str:
    """Both models' metrics on the same labelled rows, and the comparison's verdict."""
    champion = shadow.get("champion") or {}
    head = (
        f"<tr><th>metric</th><th>challenger v{_fmt(shadow.get('model_version'))}</th>"
        f"<th>champion v{_fmt(champion.get('model_version'))}</th></tr>"
    )
    rows = "".join(
        f"<tr><td>{m}</td><td class='num'>{_fmt(shadow.get(m))}</td>"
        f"<td class='num'>{_fmt(champion.get(m))}</td></tr>"
        for m in ("r2", "rmse", "mse", "mae")
    )
    status = str(shadow.get("status"))
    text = {
        "better": "The challenger is better than the champion",
        "not_better": "The challenger is not better than the champion",
        "not_enough_data": "Not enough labelled rows to compare the challenger",
    }.get(status, status)
    change = shadow.get("rmse_change")
    more = f" (RMSE {change:+.1%})" if isinstance(change, float) else ""
    css = {"better": "ok", "not_better": "degraded"}.get(status, status)
    return (
        f"<section id='shadow-verdict' class='verdict {escape(css)}'><b>{escape(text)}</b>"
        f"{_fmt(shadow.get('rows_labelled'))} labelled rows both scored{escape(more)}</section>"
        f"<table id='shadow'>{head}{rows}</table><p class='legend'>"
        f"{escape(str(shadow.get('model_name')))} version {_fmt(shadow.get('model_version'))} "
        f"scored the served rows in shadow; {_fmt(shadow.get('labelled_without_shadow'))} "
        "labelled rows it did not score are left out; at least "
        f"{_fmt(shadow.get('min_labelled_rows'))} rows are needed for a verdict.</p>"
    )


def _figure(title: str, verdict: dict[str, Any], dist: dict[str, Any]) -> str:
    status = str(verdict.get("status"))
    caption = (
        f"<figcaption>{escape(title)} {_tag(status)} <span class='legend'>"
        f"{escape(str(verdict.get('method')))} {_fmt(verdict.get('score'))}</span></figcaption>"
    )
    return f"<figure>{caption}{_svg(dist, title)}</figure>"


def _svg(dist: dict[str, Any], title: str) -> str:
    ref, cur = dist.get("reference") or [], dist.get("current") or []
    n = max(len(ref), len(cur))
    if not n:
        return "<p class='legend'>no values</p>"
    top = max([*ref, *cur, 1e-12])
    inner_w, inner_h = _W - 2 * _PAD, _H - 2 * _PAD
    step = inner_w / n
    shapes = []
    for series, colour, opacity, shrink in (
        (ref, REF_COLOUR, 0.9, 0.0),
        (cur, CUR_COLOUR, 0.55, 0.2),
    ):
        for i, v in enumerate(series):
            h = inner_h * v / top
            x = _PAD + i * step + step * shrink / 2
            shapes.append(
                f"<rect x='{x:.1f}' y='{_PAD + inner_h - h:.1f}' width='{step * (1 - shrink):.1f}'"
                f" height='{h:.1f}' fill='{colour}' fill-opacity='{opacity}'/>"
            )
    if dist.get("kind") == "hist":
        edges = dist.get("edges") or [0.0, 1.0]
        labels = (
            f"<text x='{_PAD}' y='{_H - 6}' font-size='10'>{_fmt(edges[0], 3)}</text>"
            f"<text x='{_W - _PAD}' y='{_H - 6}' font-size='10' text-anchor='end'>"
            f"{_fmt(edges[-1], 3)}</text>"
        )
    else:
        names = dist.get("labels") or []
        labels = "".join(
            f"<text x='{_PAD + (i + 0.5) * step:.1f}' y='{_H - 6}' font-size='10' "
            f"text-anchor='middle'>{escape(str(name)[:10])}</text>"
            for i, name in enumerate(names)
        )
    axis = (
        f"<line x1='{_PAD}' y1='{_PAD + inner_h}' x2='{_W - _PAD}' y2='{_PAD + inner_h}' "
        "stroke='#9aa3af'/>"
    )
    return (
        f"<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 {_W} {_H}' role='img' "
        f"aria-label='{escape(title)}: reference and current distributions'>"
        f"{''.join(shapes)}{axis}{labels}</svg>"
    )
