"""Building any template's graph imports no TensorFlow: the Flex launcher only builds the
graph, within its time limit, and the models load on the workers (DoFn.setup/ModelHandler)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from pipelines.registry import TEMPLATES
from tests.support.processes import REPO


@pytest.mark.parametrize("template", sorted(TEMPLATES))
def test_building_a_template_graph_imports_no_tensorflow(template):
    """What the launcher does with a template (import, parse, build; preflight needs the
    template's resources and is covered by each job's tests), in a fresh process."""
    code = f"""
import sys
import apache_beam as beam
from pipelines.core.launch import parse
from pipelines.registry import job_module
job = job_module({template!r})
_, args, options = parse(job.TEMPLATE, [])
for p in job.TEMPLATE.parameters:
    if getattr(args, p.name) is None and not p.optional:
        setattr(args, p.name, "projects/lab-project/topics/top" if job.TEMPLATE.streaming
                else "out/x")
# An input that exists here: Beam's text source checks its pattern while the graph is built.
args.input = ("projects/lab-project/subscriptions/sub" if job.TEMPLATE.streaming
              else "data/kinglear.txt")
job.build_pipeline(beam.Pipeline(options=options), args)
loaded = sorted(n for n in sys.modules if n.split(".")[0] == "tensorflow")
sys.exit("tensorflow imported: " + ", ".join(loaded[:5]) if loaded else 0)
"""
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, done.stderr[-3000:]


def test_a_launch_imports_without_collecting_and_freezes_what_it_imported():
    """registry.load_template, in a fresh process as on the launcher: no garbage collection
    runs while Beam and the job are imported, collection is on again after, the imported
    objects are frozen (out of later collections and the one at exit), and a failed load
    leaves collection on too."""
    code = """
import gc, sys
from pipelines.registry import load_template
collections = []
gc.callbacks.append(lambda phase, info: phase == "start" and collections.append(info))
job = load_template("wordcount2")
assert "apache_beam" in sys.modules and "pipelines.core.launch" in sys.modules
assert collections == [], collections
assert gc.isenabled()
frozen, live = gc.get_freeze_count(), len(gc.get_objects())
assert frozen > 50_000 and live < frozen / 10, (frozen, live)
try:
    load_template("no_such_template")
except KeyError:
    pass
assert gc.isenabled()
# The control: the same imports with collection on do collect.
gc.unfreeze()
for name in [m for m in sys.modules if m.split(".")[0] in ("apache_beam", "pipelines")]:
    del sys.modules[name]
import apache_beam
assert collections, "no collection while importing Beam"
"""
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, done.stderr[-3000:]
