#!/usr/bin/env bash
# Installs what building, testing and the demo need on a Debian 12 machine: apt packages, the Rust
# musl target, and a Python virtualenv (.venv) with ansible-core and the test tools. Idempotent: each
# step checks first and says what it does. Usage: scripts/bootstrap.sh [build|test]
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-test}

say() { printf '==> %s\n' "$*" >&2; }

apt_packages=(make gcc pkg-config musl-tools perl libssl-dev)
if [ "$what" = test ]; then
  apt_packages+=(openssh-server openssh-client qemu-utils nbdkit libnbd-bin e2fsprogs xfsprogs
                 fdisk gdisk lvm2 util-linux coreutils procps)
  # The execution environment image (make ee, tests/test_execution_environment.py): podman, with runc
  # for hosts whose cgroup layout crun refuses, and debootstrap for a base image made from Debian's
  # packages where the UBI 9 registry cannot be reached.
  apt_packages+=(podman runc debootstrap)
  # ensurepip in virtualenvs: .venv, and ansible-test's sanity virtualenvs (tests/lib/get_pip_offline.py).
  apt_packages+=(python3-venv)
fi
missing=()
for p in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    say "missing Debian packages: ${missing[*]} (run as root, or install them yourself)"; exit 1
  fi
  say "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # policy-rc.d keeps the package scripts from starting a system-wide sshd: the tests start their own.
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  rm -f /usr/sbin/policy-rc.d
fi

if command -v rustup >/dev/null && ! rustup target list --installed | grep -q x86_64-unknown-linux-musl; then
  say "adding the Rust target x86_64-unknown-linux-musl (static binaries for conversion hosts and UBI 9)"
  rustup target add x86_64-unknown-linux-musl >&2 || say "could not add the musl target; building against glibc instead"
fi

if [ "$what" = test ]; then
  req=tests/requirements.txt
  stamp=.venv/.requirements.sha256
  want=$(sha256sum "$req" | cut -d' ' -f1)
  if [ ! -x .venv/bin/python ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    say "creating the Python virtualenv .venv (ansible-core, pytest, openstackclient)"
    python3 -m venv .venv
    .venv/bin/pip install -q --upgrade pip >&2
    .venv/bin/pip install -q -r "$req" >&2
    echo "$want" > "$stamp"
  fi
fi
