"""Renders a Flex Template spec with gcloud and registers it in Cloud Storage.

    python3 tools/register_template.py --metadata metadata/mnist_stream.json \
        --image REGION-docker.pkg.dev/PROJECT/REPO/mnist_stream:TAG \
        --spec gs://BUCKET/templates/versions/mnist_stream/TAG.json \
        --spec gs://BUCKET/templates/mnist_stream.json \
        -- --max-workers=2 --enable-streaming-engine ...

Flags after `--` go to `gcloud dataflow flex-template build` as they are: they become the
spec's defaultEnvironment (service account, locations, worker cap, labels, Streaming
Engine), which every launch gets unless it sets its own.

`gcloud dataflow flex-template build` keeps only name, description and parameters of the
metadata file, so a streaming template would be registered as a batch one. This renders the
spec offline (`--print-only`), puts the streaming fields back from the metadata file, and
copies the result to each `--spec` in turn (or writes it locally when a --spec is not a
gs:// path), with the image as the object's custom metadata `image`, which `ops/flex
versions` lists without reading every spec. Give the kept version first and the current
spec last, so that a current spec always has its kept twin.
Standard library only: it runs in Cloud Build's google-cloud-cli image (python3, gcloud).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

STREAMING_FIELDS = (
    "streaming",
    "supportsAtLeastOnce",
    "supportsExactlyOnce",
    "defaultStreamingMode",
)


def render_spec(
    gcloud: str, spec_path: str, image: str, metadata_file: Path, build_flags: list[str] = ()
) -> dict:
    command = [
        gcloud,
        "dataflow",
        "flex-template",
        "build",
        spec_path,
        "--image",
        image,
        "--sdk-language",
        "PYTHON",
        "--metadata-file",
        str(metadata_file),
        *build_flags,
        "--print-only",
        "--format=json",
    ]
    completed = subprocess.run(command, capture_output=True, text=True)
    if completed.returncode != 0:
        sys.exit(f"gcloud could not render the spec:\n{completed.stderr}")
    try:
        return read_rendered_spec(completed.stdout)
    except ValueError as error:
        sys.exit(f"gcloud's rendered spec: {error}")


def read_json(text: str):
    """The JSON value of `text`; ValueError, one line saying where it breaks (never the
    text). The jobs and the other tools read JSON with pipelines.core.json_text, which this
    file cannot import: Cloud Build runs it as a script, with only tools/ on its path."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"not JSON: {error.msg} at position {error.pos}") from None
    except RecursionError:  # json's C scanner recurses once per [ or {
        raise ValueError("JSON nested too deep") from None


def read_rendered_spec(stdout: str) -> dict:
    """The spec `--print-only --format=json` printed; ValueError, one line saying the
    answer's shape (never its content), for anything that is not a spec's document."""
    # --format=json prints the spec as one JSON string holding the JSON document.
    text = read_json(stdout)
    if not isinstance(text, str):
        raise ValueError(f"a JSON {type(text).__name__}, not the spec as a JSON string")
    spec = read_json(text)
    if not isinstance(spec, dict) or not isinstance(spec.get("metadata"), dict):
        raise ValueError("not a JSON object with a metadata object")
    return spec


def read_metadata(path: Path) -> dict:
    """metadata/NAME.json (tools/generate.py writes it); ValueError, one line, otherwise."""
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as error:
        raise ValueError(f"{path}: {error.strerror or error}") from None
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not UTF-8 text") from None
    try:
        metadata = read_json(text)
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None
    if not isinstance(metadata, dict) or not isinstance(metadata.get("name"), str):
        raise ValueError(f"{path}: not a template's metadata (an object with a name)")
    return metadata


def restore_streaming_fields(spec: dict, metadata: dict) -> dict:
    for field in STREAMING_FIELDS:
        if field in metadata:
            spec["metadata"][field] = metadata[field]
    return spec


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--metadata", type=Path, required=True)
    parser.add_argument("--image", required=True)
    parser.add_argument(
        "--spec",
        required=True,
        action="append",
        help="gs://BUCKET/templates/NAME.json or a local file (repeatable)",
    )
    parser.add_argument("--gcloud", default="gcloud")
    parser.add_argument(
        "build_flags",
        nargs="*",
        metavar="-- GCLOUD_BUILD_FLAG",
        help="passed to gcloud dataflow flex-template build",
    )
    args = parser.parse_args(argv)

    try:
        metadata = read_metadata(args.metadata)
    except ValueError as error:
        parser.error(f"--metadata: {error}")
    # gcloud insists on a gs:// location even with --print-only, and never touches it.
    render_path = next(
        (s for s in args.spec if s.startswith("gs://")), "gs://render-only/spec.json"
    )
    spec = restore_streaming_fields(
        render_spec(args.gcloud, render_path, args.image, args.metadata, args.build_flags), metadata
    )
    text = json.dumps(spec, indent=2) + "\n"
    kind = "streaming" if spec["metadata"].get("streaming") else "batch"
    for target in args.spec:
        if not target.startswith("gs://"):
            Path(target).write_text(text, encoding="utf-8")
        else:
            with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
                handle.write(text)
            subprocess.run(
                [
                    args.gcloud,
                    "storage",
                    "cp",
                    f"--custom-metadata=image={args.image}",
                    handle.name,
                    target,
                ],
                check=True,
            )
        print(f"registered {kind} template {metadata['name']} at {target} -> {args.image}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
