#!/usr/bin/env bash
# The execution environment image, localhost/osm-ee:<version>, with podman.
#   scripts/ee.sh [build]             builds it and prints its name: the collection tarball
#                                     (scripts/collection.sh), the build context ansible-builder renders
#                                     from execution-environment.yml, then `podman build`
#   scripts/ee.sh run OPTS -- CMD...  runs CMD in it (`podman run --rm OPTS IMAGE CMD...`)
#
# The definition's base image is UBI 9 (registry.access.redhat.com). Where that registry cannot be
# reached (machines that reach only package registries, such as CI here), the base is a Debian 12
# image made on the spot by debootstrap from Debian's packages (python3, python3-venv, the OpenSSH
# client), imported as localhost/osm-ee-base:bookworm and kept for the next build; ansible-builder's
# scripts then install with apt-get instead of dnf.
#
# Containers use the host's network (the simulator and the package index are reached as from the
# host), the machine's own file limits (podman's defaults for root exceed what a sandboxed machine
# allows), and runc where crun cannot run (crun refuses hybrid cgroup v1/v2 hierarchies).
# Exits 3, saying so, when no container engine can run here.
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf '==> %s\n' "$*" >&2; }
no_engine() { say "no usable container engine: $*"; exit 3; }

command -v podman >/dev/null || no_engine "podman is not installed (scripts/bootstrap.sh ee installs it)"
podman info >/dev/null 2>&1 || no_engine "podman is installed but 'podman info' fails: $(podman info 2>&1 | tail -1)"

version=$(sed -n 's/^version: *//p' galaxy.yml)
image=localhost/osm-ee:$version
limits=(--network host --ulimit "nofile=$(ulimit -Hn):$(ulimit -Hn)" --ulimit nproc=4096:4096)

# The OCI runtime that can start a container from $1 here: podman's default, else runc.
runtime_for() {
  local err
  if err=$(podman run --rm "${limits[@]}" "$1" true 2>&1); then
    echo "${CONTAINERS_RUNTIME:-}"
  elif command -v runc >/dev/null && podman --runtime runc run --rm "${limits[@]}" "$1" true >/dev/null 2>&1; then
    echo runc
  else
    no_engine "podman cannot start a container here: $err"
  fi
}
global_opts() {
  local rt
  rt=$(runtime_for "$1")
  [ -n "$rt" ] && printf '%s\n' --runtime "$rt"
  return 0
}

if [ "${1:-build}" = run ]; then
  shift
  podman image exists "$image" || { say "no image $image: run scripts/ee.sh first"; exit 1; }
  mapfile -t opts < <(global_opts "$image")
  run_opts=()
  while [ $# -gt 0 ] && [ "$1" != -- ]; do run_opts+=("$1"); shift; done
  shift
  exec podman "${opts[@]}" run --rm "${limits[@]}" "${run_opts[@]}" "$image" "$@"
fi

scripts/collection.sh >/dev/null
ctx=build/ee-context
rm -rf "$ctx"
.venv/bin/ansible-builder create -f execution-environment.yml -c "$ctx" --output-filename Containerfile >&2
base=$(sed -n 's/^ARG EE_BASE_IMAGE="\(.*\)"$/\1/p' "$ctx/Containerfile")

build_args=()
if ! podman image exists "$base" && ! timeout 120 podman pull -q "$base" >/dev/null 2>&1; then
  local_base=localhost/osm-ee-base:bookworm
  say "cannot pull $base: building on $local_base, made from Debian's packages"
  if ! podman image exists "$local_base"; then
    root=$(mktemp -d /var/tmp/osm-ee-base.XXXXXX)
    trap 'rm -rf "$root"' EXIT
    say "debootstrap of Debian 12 (python3, python3-venv, openssh-client) into $root"
    debootstrap --variant=minbase --include=python3,python3-venv,openssh-client,ca-certificates \
      bookworm "$root" http://deb.debian.org/debian >/dev/null
    # The machine's trust store (it may hold the CA of a proxy in front of the package index), so
    # that pip in the image reaches the index as the machine does.
    cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
    printf '[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n' > "$root/etc/pip.conf"
    # Debian's system Python refuses ensurepip, which ansible-builder runs: Ansible gets a virtualenv.
    chroot "$root" python3 -m venv --without-pip /opt/ee-python
    rm -rf "$root"/var/cache/apt/archives/*.deb
    tar -C "$root" -c . | podman import -q --change 'CMD ["bash"]' \
      --change 'ENV PATH=/opt/ee-python/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
      - "$local_base" >/dev/null
  fi
  base=$local_base
  # PKGMGR_PRESERVE_CACHE: ansible-builder's scripts would run `$PKGMGR clean all`, a dnf command.
  build_args=(--build-arg "EE_BASE_IMAGE=$base" --build-arg PYCMD=/opt/ee-python/bin/python3
              --build-arg PKGMGR=/usr/bin/apt-get --build-arg PKGMGR_PRESERVE_CACHE=always)
fi
mapfile -t opts < <(global_opts "$base")
say "building $image with podman ${opts[*]}"
podman "${opts[@]}" build -q "${limits[@]}" -f "$ctx/Containerfile" -t "$image" "${build_args[@]}" "$ctx" >&2
# Each build (a new tarball) leaves the previous image and its build stages untagged: drop them, or
# repeated test runs fill the disk. The base images and the layers the new image uses stay cached.
podman image prune -f >/dev/null
echo "$image"
