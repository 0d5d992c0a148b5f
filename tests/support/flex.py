"""ops/flex in-process: what one command printed and asked, and how to read its lines."""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from tests.support.fake_gcloud import FakeGcloud

PROJECT = "lab-project-123"
REGION = "northamerica-northeast2"
BUCKET = f"{PROJECT}-bucket"
WORKER = f"serviceAccount:dataflow-worker@{PROJECT}.iam.gserviceaccount.com"
BUILDER = f"serviceAccount:flex-builder@{PROJECT}.iam.gserviceaccount.com"


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str
    calls: list  # what the fake cloud was asked to do
    cloud: FakeGcloud

    @property
    def commands(self) -> list[list[str]]:
        """The "+ " lines: commands a real run would execute, as argv lists."""
        return [shlex.split(line[2:]) for line in self.stdout.splitlines() if line.startswith("+ ")]

    @property
    def checks(self) -> list[list[str]]:
        return [shlex.split(line[2:]) for line in self.stdout.splitlines() if line.startswith("? ")]

    def find(self, *prefix: str) -> list[list[str]]:
        return [c for c in self.commands if c[: len(prefix)] == list(prefix)]

    def one(self, *prefix: str) -> list[str]:
        found = self.find(*prefix)
        assert len(found) == 1, f"expected one {' '.join(prefix)}, got {found}"
        return found[0]

    def called(self, *prefix: str) -> list[list[str]]:
        return [c for c in self.calls if c[: len(prefix)] == list(prefix)]


def ok(result: Result) -> Result:
    assert result.returncode == 0, result.stderr
    assert result.calls == [], f"a dry run called {result.calls}"
    assert len(result.commands) == len({tuple(c) for c in result.commands}), "a command runs twice"
    return result


def flag(command: list[str], name: str) -> str:
    values = [a.split("=", 1)[1] for a in command if a.startswith(f"--{name}=")]
    assert len(values) == 1, f"--{name} in {command}"
    return values[0]


def parameters(command: list[str]) -> dict[str, str]:
    if not [a for a in command if a.startswith("--parameters=")]:
        return {}
    text = flag(command, "parameters")
    separator = ","
    if text.startswith("^"):
        separator, text = text[1], text[3:]
    return dict(item.split("=", 1) for item in text.split(separator))


def experiments(command: list[str]) -> list[str]:
    found = [a.split("=", 1)[1] for a in command if a.startswith("--additional-experiments=")]
    assert len(found) <= 1, command
    return found[0].split(",") if found else []
