"""One module per group of commands; each command is a function of a `Context`."""

from __future__ import annotations

from dataclasses import dataclass

from ops.gcloud import PROG, Gcloud
from ops.lab import Catalog
from ops.settings import Options, Settings


@dataclass
class Context:
    settings: Settings
    gcloud: Gcloud
    catalog: Catalog
    options: Options

    @property
    def project(self) -> list[str]:
        return [f"--project={self.settings.project}"]

    @property
    def project_region(self) -> list[str]:
        return [f"--project={self.settings.project}", f"--region={self.settings.region}"]


__all__ = ["PROG", "Context"]
