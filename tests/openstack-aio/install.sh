#!/usr/bin/env bash
# Installs what the real-cloud test bed needs, idempotently: Debian packages (MariaDB, RabbitMQ, build
# tools for uwsgi; none of them started by the package scripts), and the services' virtualenv
# build/openstack-aio/venv from PyPI pinned by constraints.txt, plus our plugin package (fake virt
# driver, ML2 mechanism driver). Prints what it installs; does nothing the second time.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
venv=${OSM_AIO_VENV:-$repo/build/openstack-aio/venv}
say() { printf '==> openstack-aio: %s\n' "$*" >&2; }

apt_packages=(mariadb-server rabbitmq-server python3-dev python3-venv libffi-dev libssl-dev gcc make
              qemu-utils openssh-server openssh-client e2fsprogs xfsprogs util-linux procps)
missing=()
for p in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # policy-rc.d keeps the package scripts from starting system-wide MariaDB, RabbitMQ or sshd: the
  # test bed starts its own, on 127.0.0.1, with private data directories.
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d
  trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  rm -f /usr/sbin/policy-rc.d
  trap - EXIT
fi

# The services' virtualenv, rebuilt when requirements or constraints change.
stamp=$venv/.osm-aio.sha256
want=$(cat "$here/requirements.txt" "$here/constraints.txt" 2>/dev/null | sha256sum | cut -d' ' -f1)
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  say "creating the services' virtualenv $venv (keystone, nova, cinder, neutron, glance, placement, uwsgi; a few minutes)"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --upgrade pip >&2
  cons=()
  [ -s "$here/constraints.txt" ] && cons=(-c "$here/constraints.txt")
  "$venv/bin/pip" install -q "${cons[@]}" -r "$here/requirements.txt" >&2
  echo "$want" > "$stamp"
fi

# Our plugins (fake virt driver, ML2 mechanism driver, sshd-backed conversion hosts): reinstalled
# whenever their source changes, without dependencies (all come from the services above).
pstamp=$venv/.osm-aio-plugins.sha256
pwant=$(cd "$here/plugins" && find . -type f -name '*.py' -o -type f -name '*.toml' | sort | xargs cat | sha256sum | cut -d' ' -f1)
if [ "$(cat "$pstamp" 2>/dev/null)" != "$pwant" ]; then
  say "installing the test bed's plugins (osm-aio-plugins)"
  # Built from a copy, so that no build/ or *.egg-info lands in the checkout.
  tmp=$(mktemp -d); cp -r "$here/plugins" "$tmp/"
  "$venv/bin/pip" install -q --no-deps --force-reinstall "$tmp/plugins" >&2
  rm -rf "$tmp"
  echo "$pwant" > "$pstamp"
fi
# Nova loads virt drivers only from its own package (compute_driver = X means nova.virt.X).
shim=$("$venv/bin/python" -c 'import nova.virt, os; print(os.path.dirname(nova.virt.__file__))' 2>/dev/null)/osm_aio.py
if [ ! -f "$shim" ]; then
  say "linking the fake virt driver into nova.virt (compute_driver = osm_aio.OsmAioDriver)"
  printf '# Installed by tests/openstack-aio/install.sh: nova imports virt drivers from nova.virt only.\nfrom osm_aio.virt import OsmAioDriver  # noqa: F401\n' > "$shim"
fi
