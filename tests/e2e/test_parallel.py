"""Parallel migration: six workloads, three at a time, through one conversion host pair."""

import re
from datetime import datetime

from lib.ansible import run_playbook
from lib.scenario import (REPO, boot_from_volume, export, import_, make_fs_image, migration_vars, upload_image,
                          volume_from_image, wait_volume)

N = 6


def window(log_text):
    """First and last timestamps of a workload log."""
    stamps = [datetime.strptime(m, "%Y-%m-%dT%H:%M:%SZ") for m in re.findall(r"^(\S+Z) ", log_text, re.M)]
    return min(stamps), max(stamps)


def par_image(world):
    """The ext4 image these tests' workloads boot from, made once per world."""
    img = world.root / "par.raw"
    if not img.exists():
        make_fs_image(img, "ext4", size=48 << 20, files=3, seed=21)
    return img


def test_six_workloads_three_at_a_time(world, tmp_path):
    src = world.src.conn
    image = upload_image(src, "par-ext4", par_image(world))
    sums = {}
    for i in range(N):
        name = f"par-{i}"
        boot = volume_from_image(src, f"{name}-boot", image)
        data = wait_volume(src, src.block_storage.create_volume(name=f"{name}-data", size=1).id, "available")
        boot_from_volume(src, name, world.src, boot, [{"uuid": world.src.app_net.id}], extra_volumes=[data])
        sums[f"{name}-boot"] = world.sim.volume_sha256("src", boot.id)
        sums[f"{name}-data"] = world.sim.volume_sha256("src", data.id)

    run = export(tmp_path, world.sim, world.data_dir, os_migrate_workloads_filter=[{"regex": "^par-"}])
    assert run.rc == 0, run
    run = import_(tmp_path, world.sim, world.data_dir, os_migrate_workloads_filter=[{"regex": "^par-"}],
                  os_migrate_workload_parallelism=3)
    assert run.rc == 0, run
    # Each of the 3 lanes has a turn per workload, in stretches of ceil(sqrt(6)) = 3: a lane that found
    # the queue empty within its first stretch skips the second whole, so 9 turns ran at most, not 18.
    # Counted from the includes of lane_turn.yml, each naming the lanes it was included for: task
    # banners are no count, as the output callback prints one again whenever lanes interleave.
    includes = re.findall(r"^included: \S+/lane_turn\.yml for (.+) => \(item=turn \d+\)$", run.output, re.M)
    turns = sum(len(m.split(", ")) for m in includes)
    assert N <= turns <= 9, f"{turns} turns for {N} workloads over 3 lanes"

    dst = world.dst.conn
    for i in range(N):
        new = dst.compute.find_server(f"par-{i}")
        assert new is not None and new.status == "ACTIVE"
        for a in dst.compute.get_server(new.id).attached_volumes:
            v = dst.block_storage.get_volume(a["id"])
            assert world.sim.volume_sha256("dst", v.id) == sums[v.name], v.name
    assert world.leftovers() == []

    windows = [window((world.data_dir / "workload_logs" / f"par-{i}.log").read_text()) for i in range(N)]
    overlapping = sum(1 for i, (a0, a1) in enumerate(windows) for (b0, b1) in windows[i + 1:] if a0 < b1 and b0 < a1)
    assert overlapping >= 3, f"workloads ran one after another: {windows}"


def test_a_second_import_in_one_playbook_run_is_refused_and_changes_nothing(world, tmp_path):
    """In-memory hosts and their facts outlive their play: a second import_workloads.yml in the same
    ansible-playbook run found the first one's workloads in the group and queued them again, and never
    the ones it selected. It is refused, with the reason, before anything is done; the first import
    stands."""
    src = world.src.conn
    image = upload_image(src, "twice-ext4", par_image(world))
    boot = {}
    for i in range(2):
        boot[i] = volume_from_image(src, f"twice-{i}-boot", image)
        boot_from_volume(src, f"twice-{i}", world.src, boot[i], [{"uuid": world.src.app_net.id}])
    run = export(tmp_path, world.sim, world.data_dir, os_migrate_workloads_filter=[{"regex": "^twice-"}])
    assert run.rc == 0, run

    playbook = tmp_path / "twice.yml"
    playbook.write_text("".join(
        f"- ansible.builtin.import_playbook: {REPO / 'playbooks' / 'import_workloads.yml'}\n"
        f"  vars:\n    os_migrate_workloads_filter: [twice-{i}]\n" for i in range(2)))
    run = run_playbook(tmp_path, playbook, extra_vars=migration_vars(world.sim, world.data_dir), env=world.sim.env)
    assert run.rc != 0
    assert "import_workloads.yml already ran in this ansible-playbook run" in run.output, run.output[-3000:]

    dst = world.dst.conn
    new = dst.compute.find_server("twice-0")
    assert new is not None and new.status == "ACTIVE", "the first import did not migrate twice-0"
    for a in dst.compute.get_server(new.id).attached_volumes:
        assert world.sim.volume_sha256("dst", a["id"]) == world.sim.volume_sha256("src", boot[0].id)
    assert dst.compute.find_server("twice-1") is None, "the refused import migrated twice-1"
    assert not [v for v in dst.block_storage.volumes() if v.name.startswith("twice-1")]
    assert world.leftovers() == []
