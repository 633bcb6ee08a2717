# osm: the two commands of the README are `make demo` and `make test`; both set up what they need.
SHELL := /bin/bash
.DEFAULT_GOAL := build

.PHONY: build collection ee test test-rust test-e2e test-openstack demo bench clean setup-build setup-test

setup-build:
	@scripts/bootstrap.sh build

setup-test:
	@scripts/bootstrap.sh test

## Release build: every module binary into plugins/modules/, osm-agent into files/, osm-cloudsim and
## osm-agent into target/release/, and ansible_collections/osm/workloads -> the checkout.
build: setup-build
	@scripts/build.sh

## The collection tarball (build/osm-workloads-<version>.tar.gz), with the binaries in it.
collection: build setup-test
	@scripts/collection.sh

## The execution environment image localhost/osm-ee:<version>, built with podman from
## execution-environment.yml (on a local Debian base where the UBI 9 registry is out of reach).
ee: setup-test build
	@scripts/ee.sh

test: setup-test build
	@scripts/test.sh

test-rust: setup-test
	cargo test --workspace

test-e2e: setup-test build
	.venv/bin/pytest -q tests

## The end-to-end suite against real Keystone, Nova, Cinder, Glance, Neutron and Placement
## (installed from PyPI into build/openstack-aio; needs root).
test-openstack: setup-test build
	@tests/openstack-aio/run-tests.sh

demo: setup-test build
	@.venv/bin/python tests/demo.py

bench: setup-test build
	@scripts/bench.sh

clean:
	cargo clean
	rm -rf build ansible_collections files/osm-agent
	find plugins/modules -type l -delete
