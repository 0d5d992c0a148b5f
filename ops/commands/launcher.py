"""launcher: the Flex Template launcher base image's tags newer than the Dockerfile's pin.

Read-only. The pin is the Dockerfile's `ARG LAUNCHER_IMAGE=NAME:TAG` (one place); Google
publishes a new dated tag (YYYYMMDD_RCNN) for each release, security fixes included
(https://cloud.google.com/dataflow/docs/reference/flex-templates-base-images).
"""

from __future__ import annotations

import re

from ops import answers
from ops.commands import PROG, Context
from ops.gcloud import ROOT, Stop, say

DOCKERFILE = ROOT / "Dockerfile"
_PIN = re.compile(
    r"^ARG LAUNCHER_IMAGE=(?P<name>[^\s:@]+(?::[0-9]+)?/[^\s:@]+):(?P<tag>\S+)$", re.M
)
# Google's dated release tags; the date first, so that text order is release order.
DATED = re.compile(r"[0-9]{8}_RC[0-9]{2}")


def pinned(text: str) -> tuple[str, str]:
    """(image name, tag) of the Dockerfile's launcher pin."""
    found = _PIN.findall(text)
    if len(found) != 1:
        raise Stop(
            f"the Dockerfile has no single 'ARG LAUNCHER_IMAGE=NAME:TAG' line ({DOCKERFILE})"
        )
    return found[0]


def newer_tags(images: list[dict], current: str) -> list[tuple[str, str]]:
    """(tag, digest) of each dated tag newer than `current`, newest first, from the images
    answers.image_tags read (each with a text digest, and a list of texts as tags or none)."""
    found = {}
    for image in images:
        for tag in image.get("tags") or []:
            if DATED.fullmatch(tag) and tag > current:
                found[tag] = image["digest"]
    return sorted(found.items(), reverse=True)


def launcher(ctx: Context) -> int:
    name, current = pinned(DOCKERFILE.read_text(encoding="utf-8"))
    answer = ctx.gcloud.read(
        ["gcloud", "container", "images", "list-tags", name, "--sort-by=~timestamp", "--limit=50"],
        [],
        answers.image_tags,
    )
    if ctx.gcloud.dry_run:
        say(f"a real run lists the tags of {name} newer than {current}")
        return 0
    newer = newer_tags(answer, current)
    if not newer:
        say(f"the Dockerfile's launcher {name}:{current} is the newest dated tag")
        return 0
    out = ctx.gcloud.out
    print(f"{'TAG':<16} DIGEST", file=out)
    for tag, digest in newer:
        print(f"{tag:<16} {digest}", file=out)
    newest = newer[0][0]
    say(f"the Dockerfile pins {current}; to move to the newest, change its line to:")
    print(f"ARG LAUNCHER_IMAGE={name}:{newest}", file=out)
    say(f"then rebuild and register: {PROG} deploy (running stream jobs move with {PROG} update)")
    return 0
