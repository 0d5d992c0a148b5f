#!/usr/bin/env bash
# How long the image takes to build and how big it is, per layer the Dockerfile adds.
#
#   bench/image_report.sh              warm build (the cache in FLEX_IMAGE_CACHE; made first
#                                      if missing), then sizes
#   bench/image_report.sh --cold       also a cold build first, in a new, empty cache folder
#                                      (debootstrap, every layer; what a fresh CI machine does)
#   bench/image_report.sh --compressed also the gzip size of each layer as a registry stores
#                                      it (buildah push to an OCI layout; about a minute more)
#
# Builds every template in pipelines/registry.py with tests/system/image/build.sh, and times, too, a
# warm build after a code change (a copy of the build context with pipelines/ touched).
# Sizes come from buildah's storage: the image's layers with their uncompressed sizes and the
# Dockerfile instruction that made each. Also lists which packages the lock adds or changes
# over the Beam stand-in base (which carries apache-beam[gcp,dataframe], as the SDK image does).
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=$REPO_ROOT/tests/system/image/build.sh
cold=0 compressed=0
for arg in "$@"; do
    case $arg in
        --cold) cold=1 ;;
        --compressed) compressed=1 ;;
        *) echo "usage: $0 [--cold] [--compressed]" >&2; exit 2 ;;
    esac
done

elapsed() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.0f", b - a }'; }

timed_build() {   # $1: phase; prints seconds. Build log: $LOG, its result lines: $LOG.$1
    local start=$EPOCHREALTIME
    bash "$BUILD" >"$LOG.$1" 2>>"$LOG" || { tail -n 30 "$LOG" >&2; exit 1; }
    elapsed "$start"
}

LOG=$(mktemp /tmp/image-report.XXXXXX.log)
echo "build logs: $LOG"
declare -A seconds
if [[ $cold == 1 ]]; then
    FLEX_IMAGE_CACHE=$(mktemp -d /var/tmp/flex-image-cold.XXXXXX)
    export FLEX_IMAGE_CACHE
    trap 'rm -rf "$FLEX_IMAGE_CACHE"' EXIT
    seconds[cold]=$(timed_build cold)
else
    timed_build first >/dev/null   # make sure the cache is there
fi
seconds[warm]=$(timed_build warm)

# A code change: the same build on a copy of the context whose pipelines/ differs.
context=$(mktemp -d /tmp/image-report-context.XXXXXX)
(cd "$REPO_ROOT" && cp -a Dockerfile .dockerignore requirements.lock requirements-models.txt \
    pyproject.toml pipelines templates "$context/" && mkdir -p "$context/models" \
    && cp -a models/mnist "$context/models/")
echo "# changed by bench/image_report.sh at $EPOCHREALTIME" >>"$context/pipelines/__init__.py"
seconds[changed]=$(FLEX_IMAGE_CONTEXT=$context FLEX_IMAGE_REPO=localhost/flex-image-report \
    timed_build changed)
rm -rf "$context"

CACHE_DIR=${FLEX_IMAGE_CACHE:-/var/cache/flex-image}
DRIVER=$(cat "$CACHE_DIR/storage-driver")
img() {   # buildah on the build cache's storage, as tests/system/image/build.sh uses it
    buildah --root "$CACHE_DIR/storage" --runroot "$CACHE_DIR/run" --storage-driver "$DRIVER" "$@"
}
image=$(awk '$1 == "built" { print $3; exit }' "$LOG.warm")
count=$(grep -c '^built ' "$LOG.warm")
# The code-change images were only for timing.
while read -r name; do
    img rmi "$name" >/dev/null 2>&1 || true
done < <(img images --format '{{.Name}}:{{.Tag}}' | grep '^localhost/flex-image-report' || true)

echo
echo "== build times, all $count templates (2 cores) =="
[[ -n ${seconds[cold]:-} ]] && echo "cold (empty cache: debootstrap + every layer): ${seconds[cold]} s"
echo "warm (nothing changed):                         ${seconds[warm]} s"
echo "warm after a change in pipelines/:              ${seconds[changed]} s"
echo
echo "== seconds per template, in build order =="
for phase in cold warm changed; do
    [[ -f $LOG.$phase ]] || continue
    printf '%-8s' "$phase"
    awk '$1 == "built" { printf "  %s %.1f", $2, $4 } END { print "" }' "$LOG.$phase"
done

echo
echo "== what requirements.lock changes over the Beam base (pip freeze before/after) =="
echo "base: $(awk '$1 == "base" && $2 == "beam" { print $3 }' "$LOG.warm")"
awk '$1 == "lock" { $1 = ""; print " " $0 }' "$LOG.warm"

oci=""
if [[ $compressed == 1 ]]; then
    oci=$(mktemp -d /var/tmp/image-report-oci.XXXXXX)
    img push --quiet --compression-format gzip "$image" "oci:$oci:image" >/dev/null
fi

echo
echo "== $image =="
inspect=$(mktemp)
img inspect --type image "$image" >"$inspect"
python3 - "$DRIVER" "$CACHE_DIR/storage" "$oci" "$REPO_ROOT/Dockerfile" "$inspect" <<'PY'
import json, os, sys
image = json.load(open(sys.argv[5]))
driver, storage, oci = sys.argv[1], sys.argv[2], sys.argv[3]
with open(os.path.join(storage, f"{driver}-layers", "layers.json")) as f:
    size_of = {layer.get("diff-digest"): layer.get("diff-size", 0) for layer in json.load(f)}
gzip_of = {}
if oci:
    index = json.load(open(os.path.join(oci, "index.json")))
    digest = index["manifests"][0]["digest"].split(":")[1]
    manifest = json.load(open(os.path.join(oci, "blobs", "sha256", digest)))
    gzip_of = dict(zip(image["OCIv1"]["rootfs"]["diff_ids"],
                       (layer["size"] for layer in manifest["layers"])))
# The Dockerfile's own text for each layer: its final stage's COPY, ADD and RUN, in order.
with open(sys.argv[4]) as f:
    lines = f.read().replace("\\\n", " ").splitlines()
final_stage = [i for i, line in enumerate(lines) if line.upper().startswith("FROM ")][-1]
instructions = [" ".join(line.split()) for line in lines[final_stage:]
                if line.split()[:1] and line.split()[0].upper() in ("COPY", "ADD", "RUN")]
layers = iter(image["OCIv1"]["rootfs"]["diff_ids"])
rows, total, base_total, base = [], 0, 0, True
for entry in image["OCIv1"]["history"]:
    step = entry.get("created_by", "").replace("/bin/sh -c #(nop) ", "").replace("/bin/sh -c ", "RUN ")
    if base and step.startswith("COPY") and "/opt/google/dataflow" in step:
        base = False   # the first instruction of our Dockerfile after FROM
    if entry.get("empty_layer"):
        continue
    diff = next(layers)
    size, gz = size_of.get(diff, 0), gzip_of.get(diff)
    total += size
    if base:
        base_total += size
    else:
        rows.append((size, gz, " ".join(step.split())[:90]))
def mb(n):
    if n is None:
        return " " * 12
    return f"{n / 1e6:9.1f} MB" if n >= 1e5 else f"{n / 1e3:9.1f} kB"
print(f"image, uncompressed:          {mb(total)}")
print(f"  stand-in Beam SDK base:     {mb(base_total)}  (Debian + apache-beam[gcp,dataframe])")
print(f"  added by the Dockerfile:    {mb(total - base_total)}")
if gzip_of:
    added_gz = sum(gz for _, gz, _ in rows)
    print(f"  added, gzip as pushed:      {mb(added_gz)}")
print()
print("layers the Dockerfile adds (ENV, ARG, WORKDIR, ENTRYPOINT add none):")
if len(instructions) == len(rows):
    rows = [(size, gz, step[:90]) for (size, gz, _), step in zip(rows, instructions)]
print("uncompressed".rjust(12), ("gzip" if gzip_of else "").rjust(12), " instruction")
for size, gz, step in rows:
    print(f"{mb(size)} {mb(gz)}  {step}")
PY
rm -f "$inspect"
[[ -n $oci ]] && rm -rf "$oci"
