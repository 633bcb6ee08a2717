//! Test fixture: a running `osm-cloudsim` process in a temporary state directory, and a small
//! blocking HTTP client that authenticates against its clouds.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::blocking::{Client, Response};
use reqwest::Method;
use serde_json::{json, Value};

/// A simulator process owned by a test; killed (SIGTERM) on drop.
pub struct Sim {
    pub dir: tempfile::TempDir,
    pub child: Option<Child>,
    pub base: String,
    pub ssh_port: u16,
    pub transition_ms: u64,
    /// More `serve` options.
    pub args: Vec<String>,
    pub client: Client,
}

/// An authenticated session on one cloud.
pub struct Session<'a> {
    pub sim: &'a Sim,
    pub cloud: String,
    pub token: String,
    pub project_id: String,
    pub user_id: String,
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Sim {
    /// Starts a simulator with fast transitions.
    pub fn start() -> Sim {
        Sim::start_with(20)
    }

    pub fn start_with(transition_ms: u64) -> Sim {
        Sim::start_args(transition_ms, &[])
    }

    /// Starts a simulator with more `serve` options.
    pub fn start_args(transition_ms: u64, args: &[&str]) -> Sim {
        let dir = tempfile::tempdir().unwrap();
        let mut sim = Sim {
            dir,
            child: None,
            base: String::new(),
            ssh_port: free_port(),
            transition_ms,
            args: args.iter().map(|a| a.to_string()).collect(),
            client: Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
        };
        sim.spawn();
        sim
    }

    pub fn state_dir(&self) -> &Path {
        self.dir.path()
    }

    /// Starts the process on the state dir and waits for clouds.yaml.
    pub fn spawn(&mut self) {
        let yaml = self.dir.path().join("clouds.yaml");
        let _ = std::fs::remove_file(&yaml);
        let child = Command::new(env!("CARGO_BIN_EXE_osm-cloudsim"))
            .args(["serve", "--state-dir"])
            .arg(self.dir.path())
            .args([
                "--ssh-port",
                &self.ssh_port.to_string(),
                "--transition-ms",
                &self.transition_ms.to_string(),
            ])
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while !yaml.exists() {
            assert!(Instant::now() < deadline, "clouds.yaml did not appear");
            std::thread::sleep(Duration::from_millis(20));
        }
        let text = std::fs::read_to_string(&yaml).unwrap();
        let v: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
        let url = v["clouds"]["src"]["auth"]["auth_url"].as_str().unwrap();
        self.base = url.trim_end_matches("/src/identity/v3").to_string();
    }

    /// SIGTERM and wait; returns the exit status code.
    pub fn stop(&mut self) -> Option<i32> {
        let mut child = self.child.take()?;
        unsafe {
            libc::kill(child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(st) = child.try_wait().unwrap() {
                return st.code();
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("simulator did not exit on SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn restart(&mut self) {
        assert_eq!(self.stop(), Some(0));
        self.spawn();
    }

    pub fn clouds_yaml(&self) -> serde_yaml::Value {
        serde_yaml::from_str(&std::fs::read_to_string(self.dir.path().join("clouds.yaml")).unwrap())
            .unwrap()
    }

    pub fn password(&self, cloud: &str) -> String {
        self.clouds_yaml()["clouds"][cloud]["auth"]["password"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// Raw request without token.
    pub fn raw(&self, method: Method, path: &str, body: Option<Value>) -> Response {
        let mut r = self.client.request(method, format!("{}{path}", self.base));
        if let Some(b) = body {
            r = r.json(&b);
        }
        r.send().unwrap()
    }

    pub fn admin(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let r = self.raw(method, &format!("/_sim{path}"), body);
        let status = r.status().as_u16();
        (status, r.json().unwrap_or(Value::Null))
    }

    /// Logs in to a cloud with the password from clouds.yaml.
    pub fn login(&self, cloud: &str) -> Session<'_> {
        let body = json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {"name": format!("{cloud}-user"), "domain": {"name": "Default"}, "password": self.password(cloud)}}}, "scope": {"project": {"name": format!("{cloud}-project"), "domain": {"id": "default"}}}}});
        let r = self.raw(
            Method::POST,
            &format!("/{cloud}/identity/v3/auth/tokens"),
            Some(body),
        );
        assert_eq!(r.status().as_u16(), 201);
        let token = r.headers()["x-subject-token"].to_str().unwrap().to_string();
        let v: Value = r.json().unwrap();
        Session {
            sim: self,
            cloud: cloud.to_string(),
            token,
            project_id: v["token"]["project"]["id"].as_str().unwrap().to_string(),
            user_id: v["token"]["user"]["id"].as_str().unwrap().to_string(),
        }
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            unsafe {
                libc::kill(c.id() as i32, libc::SIGTERM);
            }
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Session<'_> {
    /// `svc` is `compute`, `volume`, `image`, `network`, `identity`; `path` follows the version.
    pub fn url(&self, svc: &str, path: &str) -> String {
        let prefix = match svc {
            "compute" => "/compute/v2.1".to_string(),
            "volume" => format!("/volume/v3/{}", self.project_id),
            "image" => "/image/v2".to_string(),
            "network" => "/network/v2.0".to_string(),
            "identity" => "/identity/v3".to_string(),
            other => panic!("unknown service {other}"),
        };
        format!("{}/{}{prefix}{path}", self.sim.base, self.cloud)
    }

    pub fn req(&self, method: Method, svc: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let (s, v, _) = self.req_h(method, svc, path, body, &[]);
        (s, v)
    }

    pub fn req_h(
        &self,
        method: Method,
        svc: &str,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> (u16, Value, reqwest::header::HeaderMap) {
        let mut r = self
            .sim
            .client
            .request(method, self.url(svc, path))
            .header("X-Auth-Token", &self.token);
        if svc == "compute"
            && !headers
                .iter()
                .any(|(k, _)| k.to_ascii_lowercase().contains("version"))
        {
            r = r.header("OpenStack-API-Version", "compute 2.96");
        }
        if svc == "volume"
            && !headers
                .iter()
                .any(|(k, _)| k.to_ascii_lowercase().contains("version"))
        {
            r = r.header("OpenStack-API-Version", "volume 3.70");
        }
        for (k, v) in headers {
            r = r.header(*k, *v);
        }
        if let Some(b) = body {
            r = r.json(&b);
        }
        let resp = r.send().unwrap();
        let status = resp.status().as_u16();
        let h = resp.headers().clone();
        let text = resp.text().unwrap();
        let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, v, h)
    }

    /// A GET's body as text, for what a parsed `Value` loses (the order of an object's keys).
    pub fn get_text(&self, svc: &str, path: &str) -> String {
        let r = self
            .sim
            .client
            .get(self.url(svc, path))
            .header("X-Auth-Token", &self.token)
            .header("OpenStack-API-Version", "compute 2.96")
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 200, "GET {svc}{path}");
        r.text().unwrap()
    }

    pub fn get(&self, svc: &str, path: &str) -> Value {
        let (s, v) = self.req(Method::GET, svc, path, None);
        assert_eq!(s, 200, "GET {svc}{path}: {v}");
        v
    }

    pub fn post(&self, svc: &str, path: &str, body: Value) -> Value {
        let (s, v) = self.req(Method::POST, svc, path, Some(body));
        assert!((200..300).contains(&s), "POST {svc}{path}: {s} {v}");
        v
    }

    /// Polls `f` until it returns Some, up to 20 s.
    pub fn wait<T>(&self, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(v) = f() {
                return v;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn wait_status(&self, svc: &str, path: &str, key: &str, want: &str) -> Value {
        self.wait(&format!("{path} to become {want}"), || {
            let (s, v) = self.req(Method::GET, svc, path, None);
            if s != 200 {
                return None;
            }
            let status = v[key]["status"]
                .as_str()
                .or(v["status"].as_str())
                .unwrap_or("");
            assert!(
                !status.eq_ignore_ascii_case("error") || want.eq_ignore_ascii_case("error"),
                "{path} went to error: {v}"
            );
            (status == want).then_some(v)
        })
    }

    pub fn wait_gone(&self, svc: &str, path: &str) {
        self.wait(&format!("{path} to disappear"), || {
            (self.req(Method::GET, svc, path, None).0 == 404).then_some(())
        })
    }

    /// A flavor, a raw image with `data`, a network with a subnet: what most tests need.
    pub fn basics(&self, image_props: Value, data: &[u8]) -> Basics {
        let flavor = self.post(
            "compute",
            "/flavors",
            json!({"flavor": {"name": "m1.small", "ram": 512, "vcpus": 1, "disk": 1}}),
        )["flavor"]["id"]
            .as_str()
            .unwrap()
            .to_string();
        let mut img = json!({"name": "base", "disk_format": "raw", "container_format": "bare", "visibility": "public"});
        if let (Some(m), Some(p)) = (img.as_object_mut(), image_props.as_object()) {
            for (k, v) in p {
                m.insert(k.clone(), v.clone());
            }
        }
        let (s, v) = self.req(Method::POST, "image", "/images", Some(img));
        assert_eq!(s, 201, "{v}");
        let image = v["id"].as_str().unwrap().to_string();
        let r = self
            .sim
            .client
            .put(self.url("image", &format!("/images/{image}/file")))
            .header("X-Auth-Token", &self.token)
            .header("Content-Type", "application/octet-stream")
            .body(data.to_vec())
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 204);
        let net = self.post("network", "/networks", json!({"network": {"name": "net1"}}))
            ["network"]["id"]
            .as_str()
            .unwrap()
            .to_string();
        let subnet = self.post("network", "/subnets", json!({"subnet": {"name": "sub1", "network_id": net, "cidr": "10.0.0.0/24", "ip_version": 4}}))["subnet"]["id"].as_str().unwrap().to_string();
        Basics {
            flavor,
            image,
            net,
            subnet,
        }
    }

    pub fn boot(&self, b: &Basics, name: &str, extra: Value) -> String {
        let mut server = json!({"name": name, "flavorRef": b.flavor, "imageRef": b.image, "networks": [{"uuid": b.net}]});
        if let (Some(m), Some(p)) = (server.as_object_mut(), extra.as_object()) {
            for (k, v) in p {
                m.insert(k.clone(), v.clone());
            }
        }
        let v = self.post("compute", "/servers", json!({"server": server}));
        v["server"]["id"].as_str().unwrap().to_string()
    }
}

pub struct Basics {
    pub flavor: String,
    pub image: String,
    pub net: String,
    pub subnet: String,
}
