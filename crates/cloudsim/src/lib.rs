/*!
`osm-cloudsim` simulates two OpenStack clouds (`src` and `dst`) in one process, closely enough
that python-openstackclient, openstacksdk and osm's own `openstack` crate work against it. It
exists for osm's tests and demo: migrations run end to end on one machine, with real bytes in
sparse volume files and real sshd-backed conversion hosts.

The services, one module each: [`identity`] (Keystone v3), [`compute`] (Nova v2.1),
[`volume`] (Cinder v3), [`image`] (Glance v2) and [`network`] (Neutron v2.0). They share the
HTTP layer in [`http`] (URL layout, microversions, request ids, error bodies, fault injection,
request counting) and the state in [`state`] (one [`state::State`] behind one lock, persisted
to `DIR/state.json`). Transitions that take time (BUILD → ACTIVE, attaching → in-use, ...) are
completed by background tasks in [`jobs`]; [`faults`] can make them slow, stuck or failing, and
can fail HTTP requests. [`hosts`] runs one OpenSSH server per simulated conversion host, and
[`files`] copies volume data sparsely. [`admin`] is the `/_sim` endpoint.

Start it in-process (the binary's `serve` does the same and waits for SIGTERM):

```no_run
# async fn demo() -> anyhow::Result<()> {
let cfg = osm_cloudsim::Config {
    state_dir: "/tmp/sim".into(),
    listen: "127.0.0.1:0".parse()?,
    ssh_port: 2222,
    transition: std::time::Duration::from_millis(50),
    verbose: false,
    hosts_dir: None,
    dirty_volumes: vec![],
};
let running = osm_cloudsim::start(cfg).await?;
println!("clouds.yaml for {}", running.sim.base_url);
running.shutdown().await?;
# Ok(()) }
```
*/
#![deny(missing_docs)]

pub use crate::sim::{run, start, Config, Running, Sim};

pub mod admin;
pub mod compute;
pub mod error;
pub mod faults;
pub mod files;
pub mod hosts;
pub mod http;
pub mod identity;
pub mod image;
pub mod jobs;
pub mod network;
pub mod sim;
pub mod state;
pub mod util;
pub mod volume;
