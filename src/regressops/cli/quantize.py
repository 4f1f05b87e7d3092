"""``regressops quantize``: a float linear bundle to a ``linear-int8`` bundle, with its cost.

Exit codes: 0 written; 2 bad option (same path, unknown granularity); 3 the test rows cannot be
reloaded; 4 not a float linear bundle, or missing; 7 refused by a quantisation gate (nothing
written).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from regressops.cli.options import JsonOpt, ModelDirOpt
from regressops.cli.support import out, print_json, run, shown

if TYPE_CHECKING:
    from regressops.training.quantization import QuantizeResult


def quantize(
    model: ModelDirOpt,
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Directory of the quantised bundle.")
    ],
    granularity: Annotated[
        str,
        typer.Option(
            help="Scale per-tensor (one for all coefficients: 1 byte each) or per-feature "
            "(one per input feature: exact for numeric features, but larger)."
        ),
    ] = "per-tensor",
    json_output: JsonOpt = False,
) -> None:
    """Quantise a linear model's coefficients to int8; report size, R², RMSE and |Δŷ|."""
    from regressops.training.quantization import quantize_model

    result = run(quantize_model, model=model, output=output, granularity=granularity)
    if json_output:
        print_json(result.to_dict())
        return
    show_quantization(result)


def show_quantization(result: QuantizeResult) -> None:
    """Print the before/after table, the error against its bound and the gates."""
    from rich.table import Table

    r = result.report
    table = Table(title=f"{result.bundle.name}: float -> int8 ({r.granularity}, {r.n_rows} rows)")
    for name in ("", "float", "int8"):
        table.add_column(name, justify="left" if not name else "right")
    table.add_row("R²", f"{r.float_r2:.4f}", f"{r.int8_r2:.4f}")
    table.add_row("RMSE", f"{r.float_rmse:.4f}", f"{r.int8_rmse:.4f}")
    table.add_row("coefficient bytes", str(r.float_bytes), str(r.int8_bytes))
    table.add_row("model.json bytes", str(result.source_bytes), str(result.output_bytes))
    console = out()
    console.print(table)
    console.print(
        f"largest |Δŷ| {r.max_abs_error:.4g}, bound (s/2)·Σ|x_j| at that row "
        f"{r.bound_at_max:.4g} (largest bound {r.max_bound:.4g}); "
        f"{r.bound_violations} row(s) over their bound",
        markup=False,
    )
    for check in result.checks:
        mark = "[green]pass[/green]" if check.passed else "[red]FAIL[/red]"
        console.print(f"{mark} {check.name}: {check.detail}", highlight=False)
    console.print(f"bundle: {shown(result.path)}", markup=False)
