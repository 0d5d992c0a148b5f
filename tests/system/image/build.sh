#!/usr/bin/env bash
# Builds the project's own, unchanged Dockerfile with buildah (no Docker daemon), once per
# template, with locally made stand-ins for the two base images, which these machines cannot
# pull (gcr.io and Docker Hub are unreachable):
#
#   BEAM_SDK_IMAGE  apache/beam_python3.11_sdk:2.77.0 is python:3.11 on Debian bookworm, with
#                   `python`/`pip` on PATH, root, no PEP 668 marker and /opt/apache/beam/boot.
#                   Stand-in: a debootstrapped bookworm with Debian's python3.11 and pip set
#                   up the same way, and a placeholder executable at /opt/apache/beam/boot.
#   LAUNCHER_IMAGE  gcr.io/dataflow-templates-base/python311-template-launcher-base holds
#                   /opt/google/dataflow/python_template_launcher. Stand-in: an image holding
#                   only a placeholder executable there.
#
# The placeholders only exist, so that COPY --from and ENTRYPOINT resolve; they say what
# they are and exit 1 if run. Nothing is added to the Dockerfile for the stand-ins: pip's
# access to PyPI through this network's TLS-intercepting proxy comes from build-time
# mounts (the host CA bundle and a pip.conf naming it), which never enter a layer.
#
# Usage: tests/system/image/build.sh [TEMPLATE...]   (default: every template in pipelines/registry.py)
#        tests/system/image/build.sh --tools          (only install buildah and debootstrap if missing)
# Build logs go to stderr. Stdout gets, last, `base beam IMAGE`, `base launcher IMAGE`, one
# `built TEMPLATE IMAGE SECONDS` line per template, and what installing the lock changed over
# the Beam base: `lock changed NAME BASE_VERSION LOCK_VERSION`, `lock added NAME VERSION`,
# `lock kept N` (packages of the base the lock leaves as they are), from `pip freeze` in both.
#
# Environment:
#   FLEX_IMAGE_CACHE           cache folder: buildah storage, stand-in root fs tar
#                              (default /var/cache/flex-image); a warm run reuses both.
#   FLEX_IMAGE_STORAGE_DRIVER  overlay (default when the kernel allows it) or vfs.
#   FLEX_IMAGE_REPO            image name prefix (default localhost/flex-templates).
#   FLEX_IMAGE_NO_CACHE=1      rebuild the Dockerfile's layers (keeps the stand-ins).
#   FLEX_IMAGE_CONTEXT         build context holding the Dockerfile (default: this repository).
#   FLEX_STANDIN_PIP_INSTALL   what pip installs into the Beam stand-in, as the real SDK image
#                              ships it preinstalled (default "apache-beam[gcp,dataframe]==V",
#                              V the lock's apache-beam, resolved by pip from PyPI); set it
#                              empty for a bare Python base (faster, less faithful).
#   DEBIAN_MIRROR              where debootstrap fetches bookworm (default: the host apt's).
#
# Where the stand-in differs from the real SDK image: Debian's Python 3.11.2 in /usr/bin with
# pip 23.0.1 installing into /usr/local/lib/python3.11/dist-packages (the real one: CPython
# 3.11.x built in /usr/local, site-packages); Beam and its dependencies as pip resolves
# apache-beam[gcp,dataframe] today (the real image installs Beam's own pinned
# base_image_requirements.txt, which may pick other versions of the same packages).
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
CONTEXT=${FLEX_IMAGE_CONTEXT:-$REPO_ROOT}
CACHE_DIR=${FLEX_IMAGE_CACHE:-/var/cache/flex-image}
IMAGE_REPO=${FLEX_IMAGE_REPO:-localhost/flex-templates}
SUITE=bookworm
# Tags name what they stand in for; the recipe hash (below) is their version.
BEAM_STANDIN_NAME=localhost/standin/beam_python3.11_sdk
LAUNCHER_STANDIN_NAME=localhost/standin/python311-template-launcher-base

log() { printf '[build.sh %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "error: $*"; exit 1; }
elapsed() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }

ensure_tools() {
    local missing=()
    command -v buildah >/dev/null || missing+=(buildah)
    command -v debootstrap >/dev/null || missing+=(debootstrap)
    [[ ${#missing[@]} -eq 0 ]] && return 0
    [[ $(id -u) -eq 0 ]] || die "need ${missing[*]}; run as root so that apt-get can install them"
    log "installing ${missing[*]} with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null 2>&1 \
        || { apt-get update -qq && apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null; }
}

storage_driver() {
    if [[ -n ${FLEX_IMAGE_STORAGE_DRIVER:-} ]]; then
        echo "$FLEX_IMAGE_STORAGE_DRIVER"
    elif [[ -s $CACHE_DIR/storage-driver ]]; then
        cat "$CACHE_DIR/storage-driver"   # a storage folder keeps the driver it was made with
    else
        # overlay (layers share files) where the kernel allows it, else vfs (full copies).
        local probe driver=vfs
        probe=$(mktemp -d)
        mkdir -p "$probe"/{l,u,w,m}
        if mount -t overlay overlay -o "lowerdir=$probe/l,upperdir=$probe/u,workdir=$probe/w" \
                "$probe/m" 2>/dev/null; then
            umount "$probe/m"
            driver=overlay
        fi
        rm -rf "$probe"
        echo "$driver"
    fi
}

# buildah on this project's own storage, so that the cache is one folder.
img() {
    buildah --root "$CACHE_DIR/storage" --runroot "$CACHE_DIR/run" \
        --storage-driver "$DRIVER" "$@"
}

image_exists() { img inspect --type image "$1" >/dev/null 2>&1; }

# The Debian mirror the host's apt uses (only that one is reachable from here).
debian_mirror() {
    if [[ -n ${DEBIAN_MIRROR:-} ]]; then echo "$DEBIAN_MIRROR"; return; fi
    local uri
    uri=$(grep -rhoE '(URIs:|^deb)\s+[^ ]+/debian/?(\s|$)' /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null \
          | grep -v security | head -n1 | awk '{print $2}')
    echo "${uri:-http://deb.debian.org/debian}"
}

# --- the Beam SDK image stand-in -------------------------------------------------------

make_beam_rootfs() {   # $1: target folder; fills it with the stand-in's root file system
    local root=$1
    debootstrap --variant=minbase --include=python3.11,python3-pip,ca-certificates \
        "$SUITE" "$root" "$(debian_mirror)" >"$CACHE_DIR/debootstrap.log" 2>&1 \
        || { tail -n 20 "$CACHE_DIR/debootstrap.log" >&2; die "debootstrap failed"; }
    # As in python:3.11: `python` and `pip` on PATH, and pip may install into the system
    # Python (the official image has no EXTERNALLY-MANAGED marker).
    ln -sf /usr/bin/python3.11 "$root/usr/local/bin/python"
    ln -sf /usr/bin/pip3 "$root/usr/local/bin/pip"
    rm -f "$root"/usr/lib/python3*/EXTERNALLY-MANAGED
    mkdir -p "$root/opt/apache/beam"
    cat >"$root/opt/apache/beam/boot" <<'EOF'
#!/bin/sh
# Stand-in made by tests/system/image/build.sh: the real /opt/apache/beam/boot (Beam's Go worker
# boot loader) comes from apache/beam_python3.11_sdk. This file only lets ENTRYPOINT resolve.
echo "stand-in /opt/apache/beam/boot: not Beam's boot loader (local image test build)" >&2
exit 1
EOF
    chmod 755 "$root/opt/apache/beam/boot"
    # Leave no package caches or lists in the base, as the official images do not.
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/log/*.log \
        "$root"/tmp/* "$root"/root/.cache
    find "$root/usr/lib/python3" "$root/usr/lib/python3.11" -name __pycache__ -prune -exec rm -rf {} + 2>/dev/null || true
}

make_base_image() {   # $1: root fs tar, $2: image name, rest: `buildah config` options
    local tar=$1 name=$2 ctr
    shift 2
    ctr=$(img from --pull=never scratch)
    img add --quiet "$ctr" "$tar" / >/dev/null
    img config "$@" "$ctr"
    img commit --quiet --rm "$ctr" "$name" >/dev/null
}

ensure_beam_standin() {
    local recipe name tar
    recipe=$( { declare -f make_beam_rootfs make_base_image; echo "$SUITE"; } | sha256sum | cut -c1-12)
    name=$BEAM_STANDIN_NAME:2.77.0-standin-$recipe
    tar=$CACHE_DIR/beam-standin-$recipe.tar
    if image_exists "$name"; then
        log "Beam SDK stand-in: cached image $name"
    else
        if [[ ! -s $tar ]]; then
            log "Beam SDK stand-in: debootstrap $SUITE from $(debian_mirror) (about 2 minutes)"
            local root
            root=$(mktemp -d "$CACHE_DIR/rootfs.XXXXXX")
            make_beam_rootfs "$root"
            tar --numeric-owner -C "$root" -cf "$tar.part" .
            mv "$tar.part" "$tar"
            rm -rf "$root"
            find "$CACHE_DIR" -maxdepth 1 -name 'beam-standin-*.tar' ! -name "${tar##*/}" -delete
        else
            log "Beam SDK stand-in: cached root fs $tar"
        fi
        make_base_image "$tar" "$name" \
            --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
            --env LANG=C.UTF-8 --workingdir / --user root \
            --entrypoint '["/opt/apache/beam/boot"]' \
            --label "org.opencontainers.image.description=stand-in for apache/beam_python3.11_sdk:2.77.0 (tests/system/image/build.sh)"
        log "Beam SDK stand-in: made $name"
    fi
    BEAM_STANDIN=$name
    local beam_version
    beam_version=$(sed -n 's/^apache-beam==\([^ ;]*\).*/\1/p' "$CONTEXT/requirements.lock")
    [[ -n $beam_version ]] || die "requirements.lock pins no apache-beam"
    FLEX_STANDIN_PIP_INSTALL=${FLEX_STANDIN_PIP_INSTALL-apache-beam[gcp,dataframe]==$beam_version}
    if [[ -n ${FLEX_STANDIN_PIP_INSTALL:-} ]]; then
        # The real SDK image is not an empty Python: it ships Beam and its own pinned
        # dependencies (apache-beam[gcp,dataframe] and more), which the lock installs over.
        local extra ctr
        extra=$(echo "$FLEX_STANDIN_PIP_INSTALL" | sha256sum | cut -c1-8)
        name=$BEAM_STANDIN-pip-$extra
        if ! image_exists "$name"; then
            log "Beam SDK stand-in: pip install $FLEX_STANDIN_PIP_INSTALL"
            write_pip_conf
            ctr=$(img from --pull=never "$BEAM_STANDIN")
            # shellcheck disable=SC2086 # a list of requirements, split on purpose
            img run --isolation chroot --volume "$HOST_CA:/run/host-ca.crt:ro" \
                --volume "$PIP_CONF:/etc/pip.conf:ro" "$ctr" -- \
                pip install --no-cache-dir $FLEX_STANDIN_PIP_INSTALL >&2
            img commit --quiet --rm "$ctr" "$name" >/dev/null
            log "Beam SDK stand-in: made $name"
        else
            log "Beam SDK stand-in: cached image $name"
        fi
        BEAM_STANDIN=$name
    fi
}

HOST_CA=/etc/ssl/certs/ca-certificates.crt
write_pip_conf() {   # pip inside a build: trust the host's CA bundle (this network intercepts TLS)
    PIP_CONF=$CACHE_DIR/build-pip.conf
    printf '[global]\ncert = /run/host-ca.crt\ndisable-pip-version-check = true\n' >"$PIP_CONF"
}

ensure_launcher_standin() {
    local name=$LAUNCHER_STANDIN_NAME:standin-1 dir
    if ! image_exists "$name"; then
        dir=$(mktemp -d)
        mkdir -p "$dir/opt/google/dataflow"
        cat >"$dir/opt/google/dataflow/python_template_launcher" <<'EOF'
#!/bin/sh
# Stand-in made by tests/system/image/build.sh: the real launcher (a Go binary) comes from
# gcr.io/dataflow-templates-base/python311-template-launcher-base. This file only lets the
# Dockerfile's COPY --from=launcher resolve.
echo "stand-in python_template_launcher: not Dataflow's launcher (local image test build)" >&2
exit 1
EOF
        chmod 755 "$dir/opt/google/dataflow/python_template_launcher"
        tar --numeric-owner --owner=0 --group=0 -C "$dir" -cf "$dir.tar" opt
        make_base_image "$dir.tar" "$name" \
            --label "org.opencontainers.image.description=stand-in for python311-template-launcher-base (tests/system/image/build.sh)"
        rm -rf "$dir" "$dir.tar"
        log "launcher stand-in: made $name"
    fi
    LAUNCHER_STANDIN=$name
}

# --- building the Dockerfile --------------------------------------------------------------

registry_templates() {
    python3 -c 'import sys; sys.path.insert(0, sys.argv[1])
from pipelines.registry import TEMPLATES; print(" ".join(TEMPLATES))' "$CONTEXT"
}

template_image() { echo "$IMAGE_REPO/$1:local"; }

# buildah (1.28 here; containers/buildah#5501 and #5575, open in 2024) reuses a cached
# metadata-only step (ENV, ARG, ENTRYPOINT) even when a build argument it expands has changed,
# so every template would get the first one's FLEX_TEMPLATE_PYTHON_PY_FILE. Docker and
# BuildKit resolve such a step with the new value. So before each build we forget the cached
# metadata-only steps that no file-system layer was built on (redoing them costs nothing).
# `buildah rmi` also removes parents left untagged and childless, so the last layer-making
# image under them is first tagged $IMAGE_REPO-cache/layers:<id>, which keeps every
# layer cached. `--prune` afterwards: drop those tags except the current build's, and the
# images that only they kept (older Dockerfile or dependency versions).
cache_images() {   # prints "trailing ID" and "anchor ID" lines; or with --prune, "stale TAG"
    local id
    img images --all --json \
        | python3 -c 'import json, sys; print(*(i["id"] for i in json.load(sys.stdin)))' \
        | tr ' ' '\n' | while read -r id; do [[ -n $id ]] && img inspect --type image "$id"; echo; done \
        | python3 -c '
import json, sys
mode, prefix = sys.argv[1], sys.argv[2]
decoder, text, images = json.JSONDecoder(), sys.stdin.read().strip(), []
while text:
    image, end = decoder.raw_decode(text)
    text = text[end:].strip()
    history = image["OCIv1"].get("history") or [{}]
    images.append({"id": image["FromImageID"], "names": image.get("FromImage", ""),
                   "layers": image["OCIv1"]["rootfs"]["diff_ids"],
                   "metadata_only": bool(history[-1].get("empty_layer"))})
def extended(layers):
    return any(len(o["layers"]) > len(layers) and o["layers"][:len(layers)] == layers
               for o in images)
if mode == "--prune":
    tops = [i["layers"] for i in images if i["names"].startswith(sys.argv[3])]
    for i in images:
        if i["names"].startswith(prefix) and i["layers"] not in tops:
            print("stale", i["names"])
    sys.exit()
for i in images:
    if i["names"] or not i["metadata_only"] or extended(i["layers"]):
        continue
    print("trailing", i["id"])
    anchors = [o for o in images if o["layers"] == i["layers"] and not o["metadata_only"]]
    for anchor in anchors:
        print("anchor", anchor["id"])
' "${1:---forget}" "$CACHE_TAG_PREFIX" "$IMAGE_REPO/"
}

# Per image name prefix, so that builds under another FLEX_IMAGE_REPO never prune ours.
CACHE_TAG_PREFIX=$IMAGE_REPO-cache/layers

forget_trailing_metadata_steps() {
    local kind id trailing=()
    while read -r kind id; do
        if [[ $kind == anchor ]]; then
            img tag "$id" "$CACHE_TAG_PREFIX:${id:0:12}"
        else
            trailing+=("$id")
        fi
    done < <(cache_images)
    for id in "${trailing[@]}"; do
        img rmi "$id" >/dev/null 2>&1 || true   # already gone with a removed child: fine
    done
}

prune_stale_cache() {
    local kind tag
    while read -r kind tag; do
        img rmi "$tag" >/dev/null 2>&1 || true   # only untags if the image has other names
    done < <(cache_images --prune)
    img rmi --prune >/dev/null 2>&1 || true
}

build_template() {   # $1: template name
    local template=$1 image start
    image=$(template_image "$template")
    # pip inside the build: the host's CA bundle (this network intercepts TLS) and a pip.conf
    # naming it, mounted for the RUN steps only, never copied into a layer.
    write_pip_conf
    local no_cache=()
    [[ ${FLEX_IMAGE_NO_CACHE:-} == 1 ]] && no_cache=(--no-cache)
    start=$EPOCHREALTIME
    forget_trailing_metadata_steps
    log "building $image"
    img bud --isolation chroot --layers --pull=never "${no_cache[@]}" \
        --build-arg "BEAM_SDK_IMAGE=$BEAM_STANDIN" \
        --build-arg "LAUNCHER_IMAGE=$LAUNCHER_STANDIN" \
        --build-arg "TEMPLATE=$template" \
        --build-arg "IMAGE_URI=$image" \
        --volume "$HOST_CA:/run/host-ca.crt:ro" --volume "$PIP_CONF:/etc/pip.conf:ro" \
        --file "$CONTEXT/Dockerfile" --tag "$image" "$CONTEXT" >&2
    BUILT+=("built $template $image $(elapsed "$start")")
}

pip_freeze() {   # $1: image; prints NAME==VERSION lines, names normalised
    local ctr
    ctr=$(img from --pull=never "$1")
    img run --isolation chroot "$ctr" -- python -m pip freeze --all 2>/dev/null \
        | python3 -c 'import re, sys
for line in sys.stdin:
    if "==" in line:
        name, version = line.strip().split("==", 1)
        print(re.sub(r"[-_.]+", "-", name).lower() + "==" + version)' | sort
    img rm "$ctr" >/dev/null
}

lock_changes() {   # $1: base image, $2: built image; prints the `lock ...` lines
    python3 - <(pip_freeze "$1") <(pip_freeze "$2") <<'PY'
import sys
base, image = ({n: v for n, v in (l.strip().split("==", 1) for l in open(p) if "==" in l)}
               for p in sys.argv[1:3])
for name in sorted(image):
    if name not in base:
        print("lock added", name, image[name])
    elif base[name] != image[name]:
        print("lock changed", name, base[name], image[name])
for name in sorted(set(base) - set(image)):
    print("lock removed", name, base[name])
print("lock kept", sum(1 for n in base if image.get(n) == base[n]))
PY
}

main() {
    [[ -d $CONTEXT/models/mnist ]] \
        || die "models/mnist (the MNIST SavedModel the Dockerfile copies) is missing: train it first"
    # One build at a time on a cache (a second waits): they share stand-ins and storage.
    exec 9>"$CACHE_DIR/build.lock"
    flock 9
    # Every template from one snapshot of the context, as Cloud Build builds from one uploaded
    # source: edits made meanwhile in a shared checkout cannot make the images differ.
    SNAPSHOT=$(mktemp -d "$CACHE_DIR/context.XXXXXX")
    trap 'rm -rf "$SNAPSHOT"' EXIT
    tar -C "$CONTEXT" --exclude=./.git --exclude=./.venv --exclude=__pycache__ -cf - . \
        | tar -C "$SNAPSHOT" -xf -
    CONTEXT=$SNAPSHOT
    local templates=("$@")
    [[ ${#templates[@]} -gt 0 ]] || read -r -a templates <<<"$(registry_templates)"
    ensure_beam_standin
    ensure_launcher_standin
    BUILT=()
    local t
    for t in "${templates[@]}"; do build_template "$t"; done
    # buildah 1.28 keeps the working container of a stage that is only FROM (the launcher).
    local ctr
    while read -r ctr; do
        img rm "$ctr" >/dev/null
    done < <(img containers --quiet --filter "ancestor=$LAUNCHER_STANDIN")
    prune_stale_cache
    local changes first
    first=$(template_image "${templates[0]}")
    changes=$(lock_changes "$BEAM_STANDIN" "$first")
    log "what requirements.lock changed over the Beam base ($BEAM_STANDIN):"
    printf '%s\n' "$changes" | sed 's/^/    /' >&2
    printf '%s\n' "base beam $BEAM_STANDIN" "base launcher $LAUNCHER_STANDIN" "${BUILT[@]}" \
        "$changes"
}

ensure_tools
[[ ${1:-} == --tools ]] && exit 0
mkdir -p "$CACHE_DIR"
DRIVER=$(storage_driver)
echo "$DRIVER" >"$CACHE_DIR/storage-driver"
main "$@"
