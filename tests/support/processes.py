"""Run templates and tools the way a user (or the Flex launcher) would: in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tools.pubsub_emulator import free_port, wait_for_port  # noqa: F401 (re-exported)

REPO = Path(__file__).resolve().parents[2]
ANONYMOUS_GCP = Path(__file__).resolve().parent / "anonymous_gcp"


def template_env(extra: dict | None = None, *, anonymous_gcp: bool = False) -> dict:
    env = dict(os.environ)
    env.pop("GOOGLE_APPLICATION_CREDENTIALS", None)
    if anonymous_gcp:
        env["BEAM_TEST_ANONYMOUS_GCP"] = "1"
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(ANONYMOUS_GCP), env.get("PYTHONPATH", "")) if p
        )
    env.update(extra or {})
    return env


def run_template(
    name: str, args: list[str], *, env: dict | None = None, timeout: float = 600, check: bool = True
) -> subprocess.CompletedProcess:
    command = [sys.executable, str(REPO / "templates" / f"{name}.py"), *args]
    completed = subprocess.run(
        command,
        cwd=REPO,
        env=env or template_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and completed.returncode != 0:
        raise AssertionError(
            f"{name} exited {completed.returncode}\nSTDOUT:\n{completed.stdout[-4000:]}\n"
            f"STDERR:\n{completed.stderr[-8000:]}"
        )
    return completed


def read_shards(prefix: Path | str) -> list[str]:
    """All lines of the files Beam wrote under a local output prefix."""
    prefix = Path(prefix)
    lines: list[str] = []
    for shard in sorted(prefix.parent.glob(prefix.name + "-*-of-*")):
        lines += shard.read_text(encoding="utf-8").splitlines()
    return lines


class RunningTemplate:
    """A streaming template in a subprocess; stop() ends it and returns its output."""

    def __init__(self, name: str, args: list[str], env: dict | None = None):
        import tempfile

        self.log = tempfile.NamedTemporaryFile(prefix=f"{name}-", suffix=".log", delete=False)
        self.process = subprocess.Popen(
            [sys.executable, str(REPO / "templates" / f"{name}.py"), *args],
            cwd=REPO,
            env=env or template_env(),
            stdout=self.log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )

    def output(self) -> str:
        self.log.flush()
        return Path(self.log.name).read_text(errors="replace")

    def assert_running(self) -> None:
        if self.process.poll() is not None:
            raise AssertionError(
                f"the job exited with {self.process.returncode}:\n{self.output()[-6000:]}"
            )

    def stop(self) -> str:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        return self.output()
