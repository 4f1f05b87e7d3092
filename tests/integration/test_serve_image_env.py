"""The ``serve`` image's environment, built without a Docker engine and served from.

The build replays the ``build`` and ``build-serve`` stages of ``deploy/Dockerfile`` (read from
the file, so the test and the image cannot drift apart): the same ``COPY`` of the build context
into a fresh directory, the same ``ENV`` and the same ``uv sync`` commands, with
``UV_PROJECT_ENVIRONMENT`` pointed at a temporary directory instead of ``/opt/venv``. Then
``regressops serve`` runs from that environment on a linear bundle, answers ``/readyz`` and a
prediction equal to the bundle's own, shows the live drift gauges (numpy only), and neither
has scikit-learn, pandas, MLflow or SciPy installed nor imports them (``python -X importtime``
lists every module the server imported).
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from helpers.servers import free_port
from regressops.models.bundle import load_bundle

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
HEAVY = ("sklearn", "pandas", "mlflow", "scipy", "matplotlib", "pyarrow")

pytestmark = pytest.mark.slow


def _instructions(path: Path) -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` pairs of a Dockerfile, continuation lines joined."""
    out: list[tuple[str, str]] = []
    logical = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not logical and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            logical += line[:-1] + " "
            continue
        logical += line
        word, _, rest = logical.partition(" ")
        out.append((word.upper(), rest.strip()))
        logical = ""
    return out


def stage_steps(path: Path, target: str) -> list[tuple[str, str]]:
    """The instructions that build stage ``target``, its parent stages' first."""
    stages: dict[str, list[tuple[str, str]]] = {}
    parents: dict[str, str] = {}
    current = ""
    for word, rest in _instructions(path):
        if word == "FROM":
            image, _, name = rest.partition(" AS ")
            current = name.strip()
            parents[current] = image.strip()
            stages[current] = []
        elif current:
            stages[current].append((word, rest))
    chain = [target]
    while parents.get(chain[-1]) in stages:
        chain.append(parents[chain[-1]])
    return [step for name in reversed(chain) for step in stages[name]]


def _uv() -> list[str]:
    exe = shutil.which("uv")
    if exe:
        return [exe]
    probe = subprocess.run(["python3", "-m", "uv", "--version"], capture_output=True)
    if probe.returncode == 0:  # make installs uv with pip when it is missing
        return ["python3", "-m", "uv"]
    pytest.fail("uv is not installed (make sync installs it)")


def build_env(target: str, workdir: Path, venv: Path) -> list[str]:
    """Replay the Dockerfile's stage ``target`` into ``venv``; return the uv commands run."""
    # the machine's index and cache settings stay; what shapes the environment comes from ENV
    keep = ("UV_CACHE_DIR", "UV_INDEX", "UV_DEFAULT_INDEX", "UV_EXTRA_INDEX_URL", "UV_FIND_LINKS",
            "UV_OFFLINE", "UV_NATIVE_TLS", "UV_HTTP_TIMEOUT")  # fmt: skip
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("UV_", "VIRTUAL_ENV")) or k.startswith(keep)
    }
    ran: list[str] = []
    for word, rest in stage_steps(DOCKERFILE, target):
        if word == "ENV":
            for pair in shlex.split(rest):
                key, _, value = pair.partition("=")
                env[key] = value
        elif word == "COPY" and not rest.startswith("--from"):
            *sources, dest = shlex.split(rest)
            for src in sources:  # paths of the build context, the repository root
                to = (
                    workdir / dest / Path(src).name if dest.endswith(("/", ".")) else workdir / dest
                )
                if (ROOT / src).is_dir():
                    shutil.copytree(ROOT / src, to, ignore=shutil.ignore_patterns("__pycache__"))
                else:
                    shutil.copy2(ROOT / src, to)
        elif word == "RUN" and " uv sync " in f" {rest} ":
            args = [a for a in shlex.split(rest) if not a.startswith("--mount=")]
            assert args[:2] == ["uv", "sync"], rest
            env["UV_PROJECT_ENVIRONMENT"] = str(venv)
            ran.append(" ".join(args))
            done = subprocess.run(
                [*_uv(), *args[1:]], cwd=workdir, env=env, capture_output=True, text=True,
                timeout=300,
            )  # fmt: skip
            assert done.returncode == 0, done.stderr
    return ran


def size_mb(path: Path) -> float:
    """Bytes on disk under ``path`` in MB (apparent sizes of regular files)."""
    total = sum(p.lstat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())
    return total / 1e6


def test_the_stages_read_from_the_dockerfile() -> None:
    serve = stage_steps(DOCKERFILE, "build-serve")
    full = stage_steps(DOCKERFILE, "build-full")
    syncs = [rest for word, rest in serve if word == "RUN" and "uv sync" in rest]
    assert len(syncs) == 2 and all("--frozen" in s and "--extra serve" in s for s in syncs)
    assert any("--all-extras" in rest for word, rest in full if word == "RUN")
    assert ("COPY", "pyproject.toml uv.lock README.md ./") in serve  # from the parent stage
    # the final stages carry neither uv nor the build stage's cache
    for target in ("serve", "full"):
        runs = " ".join(rest for word, rest in stage_steps(DOCKERFILE, target) if word == "RUN")
        assert "uv" not in runs.split() and "pip install" not in runs


@pytest.fixture(scope="module")
def serve_env(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The serve image's /opt/venv, built once for this module."""
    root = tmp_path_factory.mktemp("serve-image")
    (root / "src").mkdir()
    ran = build_env("build-serve", root / "src", root / "venv")
    assert ran[-1] == "uv sync --frozen --no-dev --no-editable --extra serve"
    size = size_mb(root / "venv")
    print(f"\nserve environment: {size:.0f} MB ({' && '.join(ran)})")
    assert size < 250, f"the serve environment grew to {size:.0f} MB (170 MB in docs/deploy.md)"
    return root / "venv"


@pytest.mark.parametrize("kind", ["linear", "linear-int8"])
def test_serve_image_env_serves_a_linear_bundle_without_heavy_modules(
    tmp_path: Path, serve_env: Path, diabetes_bundle: Path, kind: str
) -> None:
    if kind == "linear-int8":  # the int8 model of the same fit, served the same way
        from regressops.models.quantize import quantize_bundle

        int8 = quantize_bundle(load_bundle(diabetes_bundle)).save(tmp_path / "int8")
        shutil.copyfile(diabetes_bundle / "reference.json", int8 / "reference.json")  # as quantize
        diabetes_bundle = int8
    venv, home = serve_env, tmp_path / "home"
    home.mkdir()
    python = venv / "bin" / "python"
    installed = subprocess.run(
        [str(python), "-c", "import importlib.util as u, sys;"
         f"print(' '.join(m for m in {HEAVY!r} if u.find_spec(m)))"],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )  # fmt: skip
    assert installed.returncode == 0, installed.stderr
    assert installed.stdout.split() == []

    port = free_port()
    env = {
        "PATH": f"{venv / 'bin'}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "REGRESSOPS_HOME": str(home),
        "REGRESSOPS_CONFIG": "none",
        "REGRESSOPS_API_KEYS": "image-test-key",
        "REGRESSOPS_SERVE__DRIFT_INTERVAL_SECONDS": "0.2",
    }
    log_path = tmp_path / "server.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [str(python), "-X", "importtime", str(venv / "bin" / "regressops"), "serve",
             "--model", str(diabetes_bundle), "--host", "127.0.0.1", "--port", str(port)],
            stdout=log, stderr=subprocess.STDOUT, env=env, cwd=tmp_path,
        )  # fmt: skip
        try:
            url = f"http://127.0.0.1:{port}"
            _wait_ready(proc, url, log_path)
            assert httpx.get(f"{url}/readyz", timeout=5).status_code == 200
            row = [0.01 * j for j in range(10)]
            key = {"X-API-Key": "image-test-key"}
            assert httpx.post(f"{url}/stream", json={"data": row}, timeout=5).status_code == 401
            reply = httpx.post(f"{url}/stream", json={"data": row}, headers=key, timeout=10)
            assert reply.status_code == 200, reply.text
            bundle = load_bundle(diabetes_bundle)
            expected = bundle.predict_records([dict(zip(bundle.spec.names, row, strict=True))])
            assert reply.json()["prediction"] == pytest.approx(float(expected.ravel()[0]))
            card = httpx.get(f"{url}/model-check", headers={**key, "Accept": "text/html"})
            assert card.status_code == 200 and f"({kind})</h1>" in card.text
            # the live drift gauges, computed without SciPy (numpy-only distances)
            rows = [[0.01 * ((i * 7 + j) % 13 - 6) for j in range(10)] for i in range(60)]
            assert httpx.post(f"{url}/batch", json={"data": rows}, headers=key).status_code == 200
            methods = _drift_methods(url, log_path)
            assert methods <= {"wasserstein", "jensenshannon"} and "wasserstein" in methods
        finally:
            proc.terminate()
            proc.wait(30)
    # uvicorn re-raises the SIGTERM it handled once it has shut down gracefully
    assert proc.returncode in (0, -15), log_path.read_text(errors="replace")
    imported = {
        line.split("|")[-1].strip().split(".")[0]
        for line in log_path.read_text(errors="replace").splitlines()
        if line.startswith("import time:")
    }
    assert "fastapi" in imported and "uvicorn" in imported  # importtime saw the server's imports
    assert sorted(imported & set(HEAVY)) == []


def _drift_methods(url: str, log_path: Path) -> set[str]:
    """The ``method`` labels of the live drift scores once ``/metrics`` shows them."""
    import re
    import time

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        text = httpx.get(f"{url}/metrics", timeout=5).text
        methods = set(re.findall(r'regressops_feature_drift_score\{[^}]*method="(\w+)"', text))
        if methods:
            return methods
        time.sleep(0.1)
    pytest.fail(f"no live drift gauges in 30 s:\n{log_path.read_text(errors='replace')[-3000:]}")


def _wait_ready(proc: subprocess.Popen[bytes], url: str, log_path: Path) -> None:
    import time

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"server exited early:\n{log_path.read_text(errors='replace')[-3000:]}")
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    pytest.fail(f"server not ready in 60 s:\n{log_path.read_text(errors='replace')[-3000:]}")


def test_a_command_of_the_full_install_names_the_missing_extra(
    tmp_path: Path, serve_env: Path
) -> None:
    out = subprocess.run(
        [str(serve_env / "bin" / "regressops"), "train", "--dataset", "diabetes"],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "REGRESSOPS_HOME": str(tmp_path / "home")},
    )  # fmt: skip
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "pip install 'regressops[train]'" in lines[0]
