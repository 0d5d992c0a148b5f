"""What the jobs do with Cloud Storage files, on a local Cloud Storage API (gcp-storage-emulator):
the model check reads a gs:// folder, and a run removes an earlier run's files of its prefix."""

from __future__ import annotations

import apache_beam as beam
import pytest
from apache_beam.io import WriteToText
from apache_beam.io.filesystems import FileSystems
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from pipelines.core.params import ParameterError
from pipelines.io.text import RemoveStaleFiles
from pipelines.mnist.location import check_model
from tests.support.launch import BUCKET, upload
from tests.support.processes import REPO

MODEL = REPO / "models" / "mnist"


def test_a_saved_model_without_its_variables_folder_is_refused_in_cloud_storage(
    gcs_emulator, monkeypatch
):
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_emulator)
    folder = upload(
        gcs_emulator, "holes/model/saved_model.pb", (MODEL / "saved_model.pb").read_bytes()
    ).rsplit("/", 1)[0]
    with pytest.raises(ParameterError, match="the SavedModel has no variables/variables.index"):
        check_model(folder, on_dataflow=False)
    for path in sorted((MODEL / "variables").iterdir()):
        upload(gcs_emulator, f"holes/model/variables/{path.name}", path.read_bytes())
    check_model(folder, on_dataflow=False)


def test_remove_stale_files_in_cloud_storage(gcs_emulator, monkeypatch):
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_emulator)
    old = [upload(gcs_emulator, f"stale/out-0000{i}-of-00002", b"old\n") for i in range(2)]
    keep = upload(gcs_emulator, "stale/out-notes.txt", b"notes\n")
    with TestPipeline() as p:
        written = p | beam.Create(["new"]) | WriteToText(f"gs://{BUCKET}/stale/out")
        removed = written | RemoveStaleFiles(f"gs://{BUCKET}/stale/out")
        assert_that(removed, equal_to(old))
    left = FileSystems.match([f"gs://{BUCKET}/stale/*"])[0].metadata_list
    assert sorted(m.path for m in left) == sorted([keep, f"gs://{BUCKET}/stale/out-00000-of-00001"])
