//! `--dirty-volumes`: new empty volumes of the named clouds read as garbage, as on a Cinder
//! backend that does not clear them; volumes with a source keep its content.

use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::PathBuf;

use reqwest::Method;
use serde_json::json;

use crate::util::{Session, Sim};

const GIB: u64 = 1 << 30;
const MIB: usize = 1 << 20;

/// Creates a volume and waits until it is available; returns its data file.
fn volume(s: &Session, spec: serde_json::Value) -> PathBuf {
    let id = s.post("volume", "/volumes", json!({"volume": spec}))["volume"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    s.wait_status("volume", &format!("/volumes/{id}"), "volume", "available");
    s.sim
        .state_dir()
        .join("clouds")
        .join(&s.cloud)
        .join("volumes")
        .join(id)
}

fn read(f: &File, off: u64, len: usize) -> Vec<u8> {
    let mut buf = vec![0u8; len];
    f.read_exact_at(&mut buf, off).unwrap();
    buf
}

/// Every byte written and none zero: checks the allocation, then reads the first, a middle and
/// the last MiB rather than the whole GiB.
fn assert_garbage(path: &PathBuf, len: u64) {
    let f = File::open(path).unwrap();
    let meta = f.metadata().unwrap();
    assert_eq!(meta.len(), len);
    assert!(meta.blocks() * 512 >= len, "{} is sparse", path.display());
    let first = read(&f, 0, MIB);
    let middle = read(&f, len / 2 + 4096, MIB);
    let last = read(&f, len - MIB as u64, MIB);
    for block in [&first, &middle, &last] {
        assert!(
            block.iter().all(|b| *b != 0),
            "a zero byte in {}",
            path.display()
        );
    }
    assert_ne!(first, middle, "blocks repeat");
}

fn assert_zeros(path: &PathBuf, len: u64) {
    let f = File::open(path).unwrap();
    assert_eq!(f.metadata().unwrap().len(), len);
    assert_eq!(
        f.metadata().unwrap().blocks(),
        0,
        "{} is not empty",
        path.display()
    );
}

#[test]
fn new_empty_volumes_of_a_dirty_cloud_read_as_garbage() {
    let sim = Sim::start_args(20, &["--dirty-volumes", "dst"]);
    assert_eq!(
        sim.admin(Method::GET, "", None).1["dirty_volumes"],
        json!(["dst"])
    );
    let dst = sim.login("dst");
    assert_garbage(&volume(&dst, json!({"size": 1, "name": "empty"})), GIB);

    // A volume with a source keeps its content: the image's bytes, then zeros.
    let data = b"bytes of the image".repeat(1000);
    let b = dst.basics(json!({}), &data);
    let from_image = volume(&dst, json!({"size": 1, "imageRef": b.image}));
    let f = File::open(&from_image).unwrap();
    assert_eq!(read(&f, 0, data.len()), data);
    assert!(read(&f, data.len() as u64, MIB).iter().all(|b| *b == 0));

    // The other cloud is not dirty.
    let src = sim.login("src");
    assert_zeros(&volume(&src, json!({"size": 1})), GIB);
}

#[test]
fn dirty_volumes_switch_at_runtime() {
    let sim = Sim::start();
    let s = sim.login("src");
    assert_zeros(&volume(&s, json!({"size": 1})), GIB);

    let (st, v) = sim.admin(
        Method::PUT,
        "/dirty-volumes",
        Some(json!({"clouds": ["src"]})),
    );
    assert_eq!((st, &v["clouds"]), (200, &json!(["src"])));
    assert_garbage(&volume(&s, json!({"size": 1})), GIB);

    let (st, v) = sim.admin(
        Method::PUT,
        "/dirty-volumes",
        Some(json!({"clouds": ["nope"]})),
    );
    assert_eq!(st, 400, "{v}");
    assert_eq!(
        sim.admin(Method::GET, "/dirty-volumes", None).1["clouds"],
        json!(["src"])
    );

    sim.admin(Method::PUT, "/dirty-volumes", Some(json!({"clouds": []})));
    assert_zeros(&volume(&s, json!({"size": 1})), GIB);
}
