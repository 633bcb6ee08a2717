//! A workload's state belongs to the source server id it records, not to the name it is filed under.

use std::path::Path;
use std::time::Duration;

use osm_workload::import::{ImportError, Job, Settings};
use osm_workload::state::{Paths, State, Status};
use osm_workload::{Phase, WorkloadsFile};

const SAMPLE: &str = include_str!("data/workloads-1.0.1.yml");

fn settings(dir: &Path) -> Settings {
    Settings {
        data_dir: dir.to_path_buf(),
        timeout: Duration::from_secs(1),
        resume: true,
        phase: Phase::Cold,
    }
}

#[test]
fn the_steps_refuse_and_cleanup_leaves_alone_a_state_of_another_server_of_that_name() {
    let dir = tempfile::tempdir().expect("tmp");
    let server = WorkloadsFile::parse(Path::new("workloads.yml"), SAMPLE)
        .expect("upstream file")
        .resources
        .remove(0);
    let paths = Paths::new(dir.path(), server.name(), &server.info.id);
    paths.create_dir().expect("dir");
    let mut failed = State {
        workload: server.name().to_string(),
        source_id: "an-older-server-of-that-name".into(),
        transfer_id: "0badf00d".into(),
        status: Status::Failed,
        ..State::default()
    };
    failed.save(&paths.state).expect("save");

    let e = Job::open(server.clone(), settings(dir.path()), "transfer_volumes")
        .expect_err("another server's state");
    assert!(matches!(e, ImportError::OtherServer { .. }), "{e:?}");
    assert!(
        e.to_string().contains("an-older-server-of-that-name"),
        "{e}"
    );
    assert!(
        Job::open_for_cleanup(server.clone(), settings(dir.path()), "src_cleanup")
            .expect("no error")
            .is_none(),
        "cleanup must not work from another server's record"
    );
    let log = std::fs::read_to_string(&paths.log).expect("log");
    assert!(log.contains("leaves alone"), "{log}");
    let kept = State::load(&paths.state).expect("load").expect("kept");
    assert_eq!(kept, failed, "the other server's record is untouched");

    failed.source_id = server.info.id.clone();
    failed.save(&paths.state).expect("save");
    let job = Job::open(server, settings(dir.path()), "transfer_volumes").expect("its own state");
    assert_eq!(job.state.transfer_id, "0badf00d");
}
