"""ops/flex in-process: `flex(*args)` runs one command against a recording FakeGcloud."""

from __future__ import annotations

import pytest

from ops.cli import main
from tests.support.fake_gcloud import FakeGcloud
from tests.support.flex import Result


@pytest.fixture
def flex(capsys):
    def run(*args: str, dry: bool = True, env: dict | None = None, catalog=None, **cloud) -> Result:
        fake = FakeGcloud(**cloud)
        code = main(
            (["--dry-run"] if dry else []) + list(args),
            gcloud=fake,
            catalog=catalog,
            env={"PYTHON": "python3", **(env or {})},
        )
        out, err = capsys.readouterr()
        return Result(code, out, err, fake.calls, fake)

    return run
