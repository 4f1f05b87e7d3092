"""Real webhook receivers for the tests (``webhook_receiver.py`` in its own process)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

RECEIVER = Path(__file__).with_name("webhook_receiver.py")


class Receiver:
    """A receiver process on 127.0.0.1 verifying with ``secret`` (a ``whsec_`` string).

    Parameters
    ----------
    tmp : Path
        Folder for its record of requests.
    secret : str
        The secret it verifies with.
    fail, fail_status, hang : int
        Answer the first ``fail`` requests with ``fail_status``; hold the first ``hang`` open.
    pause_on : str, optional
        Hold the answer to the first event of this type until :meth:`resume`
        (:meth:`paused` tells when it arrived).
    tls : tuple of (Path, Path), optional
        Certificate and key files: serve HTTPS.
    """

    def __init__(
        self,
        tmp: Path,
        secret: str,
        *,
        fail: int = 0,
        fail_status: int = 503,
        hang: int = 0,
        tls: tuple[Path, Path] | None = None,
        pause_on: str | None = None,
    ) -> None:
        tmp.mkdir(parents=True, exist_ok=True)
        self.out = tmp / f"received-{os.urandom(4).hex()}.jsonl"
        env = {**os.environ, "RECEIVER_SECRET": secret}
        cmd = [sys.executable, str(RECEIVER), "--secret-env", "RECEIVER_SECRET"]
        cmd += ["--out", str(self.out), "--fail", str(fail), "--fail-status", str(fail_status)]
        cmd += ["--hang", str(hang)]
        if pause_on is not None:
            cmd += ["--pause-on", pause_on]
        if tls is not None:
            cmd += ["--tls-cert", str(tls[0]), "--tls-key", str(tls[1])]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, env=env, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()  # blocks until the receiver listens
        if not line.strip().isdigit():
            self.stop()
            raise RuntimeError(f"receiver did not start: {line!r}")
        self.port = int(line)
        scheme = "https" if tls is not None else "http"
        self.url = f"{scheme}://127.0.0.1:{self.port}/hooks/regressops"

    def requests(self) -> list[dict[str, Any]]:
        """Every request received so far, in arrival order."""
        if not self.out.exists():
            return []
        return [json.loads(line) for line in self.out.read_text().splitlines()]

    def paused(self) -> bool:
        """Whether the ``pause_on`` event arrived (its answer is held until :meth:`resume`)."""
        return self.out.with_name(self.out.name + ".paused").exists()

    def resume(self) -> None:
        """Let the receiver answer the held event."""
        self.out.with_name(self.out.name + ".resume").touch()

    def stop(self) -> None:
        """Terminate the process and wait for it."""
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()

    def __enter__(self) -> Receiver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def self_signed(folder: Path, name: str) -> tuple[Path, Path]:
    """A self-signed certificate for the DNS name ``name`` (its own authority) and its key."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder.mkdir(parents=True, exist_ok=True)
    cert_file, key_file = folder / f"{name}.pem", folder / f"{name}.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file
