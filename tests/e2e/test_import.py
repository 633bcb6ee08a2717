"""Import end to end: real ansible-playbook, the simulator, real sshd conversion hosts, real data."""

import yaml

from lib.scenario import boot_from_volume, export, import_, make_fs_image, upload_image, volume_from_image, wait_volume


def test_volume_boot_with_two_extra_volumes(world, tmp_path):
    src = world.src.conn
    boot_img = upload_image(src, "debian-ext4", _image(world, "boot.raw", "ext4", 1))
    data_img = upload_image(src, "data-xfs", _image(world, "data.raw", "xfs", 2))
    boot = volume_from_image(src, "vb-boot", boot_img)
    d1 = volume_from_image(src, "vb-data1", data_img)
    d2 = wait_volume(src, src.block_storage.create_volume(name="vb-data2", size=1).id, "available")
    server = boot_from_volume(src, "vb-server", world.src, boot, [{"uuid": world.src.app_net.id}], extra_volumes=[d1, d2])
    sums = {v.id: world.sim.volume_sha256("src", v.id) for v in (boot, d1, d2)}

    run = export(tmp_path, world.sim, world.data_dir, os_migrate_workloads_filter=["vb-server"])
    assert run.rc == 0, run
    wl = yaml.safe_load((world.data_dir / "workloads.yml").read_text())
    entry = next(r for r in wl["resources"] if r["params"]["name"] == "vb-server")
    assert entry["_migration_params"]["boot_disk_copy"] is True
    assert entry["params"]["image_ref"] is None

    run = import_(tmp_path, world.sim, world.data_dir, os_migrate_workloads_filter=["vb-server"])
    assert run.rc == 0, run

    dst = world.dst.conn
    new = dst.compute.find_server("vb-server")
    assert new is not None and new.status == "ACTIVE"
    attached = [a["id"] for a in new.attached_volumes]
    assert len(attached) == 3
    names = {dst.block_storage.get_volume(v).name: v for v in attached}
    assert set(names) == {"vb-boot", "vb-data1", "vb-data2"}
    for name, vid in names.items():
        src_vol = {"vb-boot": boot, "vb-data1": d1, "vb-data2": d2}[name]
        assert world.sim.volume_sha256("dst", vid) == sums[src_vol.id], name
    assert world.leftovers() == []
    # the source server keeps its volumes
    after = src.compute.get_server(server.id)
    assert sorted(a["id"] for a in after.attached_volumes) == sorted(sums)


def _image(world, name, fs, seed):
    path = world.root / name
    if not path.exists():
        make_fs_image(path, fs, size=96 << 20, files=6, seed=seed)
    return path
