use reqwest::Method;
use serde_json::json;

use crate::util::Sim;

#[test]
fn state_and_tokens_survive_restart_and_transitions_resume() {
    let mut sim = Sim::start_with(30);
    let (token, project, server, net, password) = {
        let s = sim.login("src");
        let b = s.basics(json!({"osm_sim_conversion_host": "true"}), b"data");
        let id = s.boot(&b, "vm", json!({}));
        s.wait_status("compute", &format!("/servers/{id}"), "server", "ACTIVE");
        (
            s.token.clone(),
            s.project_id.clone(),
            id,
            b.net,
            sim.password("src"),
        )
    };
    let yaml_before = sim.clouds_yaml();
    let addr = {
        let s = sim.login("src");
        s.get("compute", &format!("/servers/{server}"))["server"]["accessIPv4"]
            .as_str()
            .unwrap()
            .to_string()
    };
    sim.restart();
    assert_eq!(
        sim.password("src"),
        password,
        "passwords are kept per state dir"
    );
    assert_eq!(
        yaml_before["clouds"]["dst"]["auth"]["username"],
        sim.clouds_yaml()["clouds"]["dst"]["auth"]["username"]
    );
    let s = sim.login("src");
    assert_eq!(s.project_id, project);
    // The old token still works.
    let r = sim
        .client
        .get(format!("{}/src/compute/v2.1/servers/{server}", sim.base))
        .header("X-Auth-Token", &token)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let v: serde_json::Value = r.json().unwrap();
    assert_eq!(v["server"]["status"], "ACTIVE");
    assert_eq!(
        s.get("network", &format!("/networks/{net}"))["network"]["name"],
        "net1"
    );
    // The conversion host's sshd came back on the same address.
    std::net::TcpStream::connect((addr.as_str(), sim.ssh_port)).expect("sshd restarted");

    // A transition cut by a restart completes after it.
    sim.admin(
        Method::POST,
        "/faults",
        Some(json!({"kind": "stuck", "resource": "volume"})),
    );
    let vol = s.post("volume", "/volumes", json!({"volume": {"size": 1}}))["volume"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    std::thread::sleep(std::time::Duration::from_millis(200));
    drop(s);
    sim.restart(); // faults are not persisted
    let s = sim.login("src");
    s.wait_status("volume", &format!("/volumes/{vol}"), "volume", "available");
    assert_eq!(sim.stop(), Some(0));
    assert!(
        std::net::TcpStream::connect((addr.as_str(), sim.ssh_port)).is_err(),
        "sshd stopped with the simulator"
    );
}
