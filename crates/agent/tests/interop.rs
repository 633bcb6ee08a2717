//! Standard tools read from `osm-agent serve`, and `osm-agent sync` reads from standard servers.

use std::io::Read;
use std::os::unix::net::UnixStream;
use std::process::Command;

use crate::require;
use crate::util::*;

/// 16 MiB, sparse: data at 0..1 MiB, 4 KiB at 8 MiB, and the last 512 bytes.
fn sparse_image(dir: &Dir) -> std::path::PathBuf {
    let img = dir.path("disk.img");
    write_at(&img, 16 << 20, 0, &random_bytes(1 << 20, 1));
    write_at(&img, 16 << 20, 8 << 20, &random_bytes(4096, 2));
    write_at(&img, 16 << 20, (16 << 20) - 512, &random_bytes(512, 3));
    img
}

#[test]
fn nbdinfo_map_shows_holes_and_data() {
    require!("nbdinfo");
    let dir = Dir::new();
    let img = sparse_image(&dir);
    let srv = Served::start(&dir, &img);
    let out = run_ok(Command::new("nbdinfo").arg("--map").arg(srv.uri()));
    let map = String::from_utf8_lossy(&out.stdout);
    let rows: Vec<(u64, u64, String)> = map
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (
                f[0].parse().unwrap(),
                f[1].parse().unwrap(),
                f[3..].join(" "),
            )
        })
        .collect();
    assert_eq!(rows.iter().map(|r| r.1).sum::<u64>(), 16 << 20, "{map}");
    let at = |off: u64| {
        rows.iter()
            .find(|r| r.0 <= off && off < r.0 + r.1)
            .map(|r| r.2.clone())
            .unwrap()
    };
    assert_eq!(at(0), "data", "{map}");
    assert_eq!(at(4 << 20), "hole,zero", "{map}");
    assert_eq!(at(8 << 20), "data", "{map}");
    assert_eq!(at((16 << 20) - 1), "data", "{map}");

    let out = run_ok(Command::new("nbdinfo").arg(srv.uri()));
    let info = String::from_utf8_lossy(&out.stdout);
    for want in [
        "base:allocation",
        "is_read_only: true",
        "can_multi_conn: true",
        "export-size: 16777216",
    ] {
        assert!(info.contains(want), "nbdinfo lacks {want:?}:\n{info}");
    }
    let out = run_ok(
        Command::new("nbdinfo")
            .arg("--list")
            .arg(format!("nbd+unix:///?socket={}", srv.socket.display())),
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("export=\"disk\""));
}

#[test]
fn nbdcopy_and_qemu_img_read_from_serve() {
    require!("nbdcopy", "qemu-img");
    let dir = Dir::new();
    let img = sparse_image(&dir);
    let srv = Served::start(&dir, &img);
    let dst = dir.path("nbdcopy.img");
    run_ok(Command::new("nbdcopy").arg(srv.uri()).arg(&dst));
    assert_eq!(sha256(&dst), sha256(&img));
    let out = run_ok(
        Command::new("qemu-img")
            .args(["compare", "-f", "raw"])
            .arg(&img)
            .arg(srv.uri()),
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("identical"));
    let conv = dir.path("qemu.img");
    run_ok(
        Command::new("qemu-img")
            .args(["convert", "-O", "raw"])
            .arg(srv.uri())
            .arg(&conv),
    );
    assert_eq!(sha256(&conv), sha256(&img));
}

/// The crates.io `nbd` client negotiates with EXPORT_NAME and simple replies only: the fallback
/// paths of the server.
#[test]
fn nbd_crate_client_reads_from_serve() {
    let dir = Dir::new();
    let img = dir.path("odd.img");
    let data = random_bytes(3 * 1048576 + 777, 9);
    write_at(&img, data.len() as u64, 0, &data);
    let srv = Served::start(&dir, &img);
    let mut s = UnixStream::connect(&srv.socket).unwrap();
    let export = nbd::client::handshake(&mut s, b"disk").unwrap();
    assert_eq!(export.size, data.len() as u64);
    assert!(export.readonly);
    let mut client = nbd::client::NbdClient::new(&mut s, &export);
    let mut back = Vec::new();
    client.read_to_end(&mut back).unwrap();
    assert_eq!(back.len(), data.len());
    assert!(back == data, "the nbd crate read different bytes");
}

#[test]
fn sync_from_qemu_nbd() {
    require!("qemu-nbd");
    let dir = Dir::new();
    let img = sparse_image(&dir);
    let sock = dir.path("q.sock");
    let _q = spawn_server(
        Command::new("qemu-nbd")
            .arg("-k")
            .arg(&sock)
            .args(["-r", "-f", "raw"])
            .arg(&img),
        &sock,
    );
    let dst = dir.path("out.img");
    garbage_file(&dst, 16 << 20, 8);
    let ev = sync(
        &[&format!("nbd+unix:///?socket={}", sock.display())],
        &dst,
        &[],
    );
    assert_eq!(ev[0]["source"], "nbd", "qemu-nbd refuses the upgrade");
    assert_eq!(
        ev[0]["connections"], 1,
        "qemu-nbd without --shared does not offer multi-conn"
    );
    assert_eq!(ev.last().unwrap()["verified"], true);
    assert_eq!(sha256(&dst), sha256(&img));
}

#[test]
fn sync_from_nbdkit_over_unix_and_tcp() {
    require!("nbdkit");
    let dir = Dir::new();
    let img = sparse_image(&dir);
    let sock = dir.path("k.sock");
    let _k = spawn_server(
        Command::new("nbdkit")
            .args(["-f", "-U"])
            .arg(&sock)
            .arg("file")
            .arg(&img),
        &sock,
    );
    let dst = dir.path("out.img");
    let ev = sync(
        &[&format!("nbd+unix:///?socket={}", sock.display())],
        &dst,
        &["--connections", "2"],
    );
    assert_eq!(ev[0]["connections"], 2);
    assert_eq!(sha256(&dst), sha256(&img));
    let done = ev.last().unwrap();
    assert!(
        num(done, "bytes_on_wire") < 2 << 20,
        "holes must not cross: {done}"
    );

    let port = free_port();
    let pidf = dir.path("k.pid");
    let _t = spawn_server(
        Command::new("nbdkit")
            .args(["-f", "-i", "127.0.0.1", "-p", &port.to_string(), "-P"])
            .arg(&pidf)
            .arg("file")
            .arg(&img),
        &pidf,
    );
    let dst = dir.path("tcp.img");
    sync(&[&format!("nbd://127.0.0.1:{port}/")], &dst, &[]);
    assert_eq!(sha256(&dst), sha256(&img));
}
