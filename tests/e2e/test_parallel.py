"""Parallel migration: six workloads, three at a time, through one conversion host pair."""

import re
from datetime import datetime

from lib.scenario import boot_from_volume, export, import_, make_fs_image, upload_image, volume_from_image, wait_volume

N = 6


def window(log_text):
    """First and last timestamps of a workload log."""
    stamps = [datetime.strptime(m, "%Y-%m-%dT%H:%M:%SZ") for m in re.findall(r"^(\S+Z) ", log_text, re.M)]
    return min(stamps), max(stamps)


def test_six_workloads_three_at_a_time(world, tmp_path):
    src = world.src.conn
    img = world.root / "par.raw"
    if not img.exists():
        make_fs_image(img, "ext4", size=48 << 20, files=3, seed=21)
    image = upload_image(src, "par-ext4", img)
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
    turns = sum(len(m.split(", ")) for m in re.findall(r"^included: \S+/lane_turn\.yml for (.+) => \(item=turn \d+\)$",
                                                          run.output, re.M))
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
