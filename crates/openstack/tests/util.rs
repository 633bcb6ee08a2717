//! Test fixtures: a tiny scripted HTTP/1.1 server (plain or TLS) on 127.0.0.1, and a fake
//! Keystone whose catalog points every service at that server.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use serde_json::{json, Value};

/// A request as the server saw it.
#[derive(Clone, Debug)]
pub struct Request {
    pub method: String,
    /// Path and query.
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }
    pub fn query(&self) -> Vec<(String, String)> {
        let u = url::Url::parse(&format!("http://x{}", self.target)).unwrap();
        u.query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    }
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
    pub fn is(&self, method: &str, path: &str) -> bool {
        self.method == method && self.path() == path
    }
}

/// What the server does with a request.
pub enum Response {
    Reply {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
    /// Close the connection without answering (a reset, as a uwsgi server does to a kept-alive
    /// connection).
    Drop,
}

impl Response {
    pub fn json(status: u16, body: Value) -> Response {
        Response::Reply {
            status,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: body.to_string().into_bytes(),
        }
    }
    pub fn text(status: u16, body: &str) -> Response {
        Response::Reply {
            status,
            headers: vec![("Content-Type".into(), "text/plain".into())],
            body: body.as_bytes().to_vec(),
        }
    }
    pub fn bytes(status: u16, body: Vec<u8>) -> Response {
        Response::Reply {
            status,
            headers: vec![("Content-Type".into(), "application/octet-stream".into())],
            body,
        }
    }
    pub fn empty(status: u16) -> Response {
        Response::Reply {
            status,
            headers: vec![],
            body: vec![],
        }
    }
    pub fn with_header(mut self, k: &str, v: &str) -> Response {
        if let Response::Reply { headers, .. } = &mut self {
            headers.push((k.into(), v.into()));
        }
        self
    }
}

type Handler = Arc<dyn Fn(&Request) -> Response + Send + Sync>;

/// A running test server. Its threads live until the test process ends.
pub struct Server {
    pub addr: SocketAddr,
    pub log: Arc<Mutex<Vec<Request>>>,
    tls: bool,
}

impl Server {
    /// Plain HTTP. `make` gets the server's base URL (`http://127.0.0.1:PORT`).
    pub fn start(
        make: impl FnOnce(String) -> Box<dyn Fn(&Request) -> Response + Send + Sync>,
    ) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        Server::start_on(listener, make)
    }

    /// Plain HTTP on an existing listener.
    pub fn start_on(
        listener: TcpListener,
        make: impl FnOnce(String) -> Box<dyn Fn(&Request) -> Response + Send + Sync>,
    ) -> Server {
        let addr = listener.local_addr().unwrap();
        let handler: Handler = Arc::from(make(format!("http://{addr}")));
        let log = Arc::new(Mutex::new(Vec::new()));
        let log2 = log.clone();
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let (h, l) = (handler.clone(), log2.clone());
                thread::spawn(move || serve_connection(stream, h, l));
            }
        });
        Server {
            addr,
            log,
            tls: false,
        }
    }

    /// HTTPS with the given rustls server configuration.
    pub fn start_tls(
        config: Arc<rustls::ServerConfig>,
        make: impl FnOnce(String) -> Box<dyn Fn(&Request) -> Response + Send + Sync>,
    ) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let handler: Handler = Arc::from(make(format!("https://localhost:{}", addr.port())));
        let log = Arc::new(Mutex::new(Vec::new()));
        let log2 = log.clone();
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let (h, l, c) = (handler.clone(), log2.clone(), config.clone());
                thread::spawn(move || {
                    let Ok(conn) = rustls::ServerConnection::new(c) else {
                        return;
                    };
                    let tls = rustls::StreamOwned::new(conn, stream);
                    serve_connection(tls, h, l);
                });
            }
        });
        Server {
            addr,
            log,
            tls: true,
        }
    }

    pub fn url(&self) -> String {
        if self.tls {
            format!("https://localhost:{}", self.addr.port())
        } else {
            format!("http://{}", self.addr)
        }
    }

    pub fn requests(&self) -> Vec<Request> {
        self.log.lock().unwrap().clone()
    }

    pub fn count(&self, method: &str, path: &str) -> usize {
        self.requests()
            .iter()
            .filter(|r| r.is(method, path))
            .count()
    }
}

fn read_request<S: Read>(r: &mut BufReader<S>) -> Option<Request> {
    let mut line = String::new();
    if r.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let target = parts.next()?.to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        r.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':')?;
        headers.push((k.trim().to_string(), v.trim().to_string()));
    }
    let get = |n: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(n))
            .map(|(_, v)| v.clone())
    };
    let mut body = Vec::new();
    if let Some(len) = get("content-length") {
        body.resize(len.parse().ok()?, 0);
        r.read_exact(&mut body).ok()?;
    } else if get("transfer-encoding").is_some_and(|t| t.eq_ignore_ascii_case("chunked")) {
        loop {
            let mut size = String::new();
            r.read_line(&mut size).ok()?;
            let n = usize::from_str_radix(size.trim().split(';').next()?, 16).ok()?;
            let mut chunk = vec![0; n];
            r.read_exact(&mut chunk).ok()?;
            body.extend(chunk);
            let mut crlf = String::new();
            r.read_line(&mut crlf).ok()?;
            if n == 0 {
                break;
            }
        }
    }
    Some(Request {
        method,
        target,
        headers,
        body,
    })
}

fn serve_connection<S: Read + Write>(stream: S, handler: Handler, log: Arc<Mutex<Vec<Request>>>) {
    let mut reader = BufReader::new(stream);
    while let Some(req) = read_request(&mut reader) {
        log.lock().unwrap().push(req.clone());
        match handler(&req) {
            Response::Drop => return,
            Response::Reply {
                status,
                headers,
                body,
            } => {
                let mut out = format!("HTTP/1.1 {status} X\r\nContent-Length: {}\r\n", body.len());
                for (k, v) in headers {
                    out.push_str(&format!("{k}: {v}\r\n"));
                }
                out.push_str("\r\n");
                let s = reader.get_mut();
                if s.write_all(out.as_bytes()).is_err()
                    || s.write_all(&body).is_err()
                    || s.flush().is_err()
                {
                    return;
                }
            }
        }
    }
}

/// A free loopback port (bound and released; the caller binds it again).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Keeps trying to connect; for tests that start a server late.
#[allow(dead_code)]
pub fn wait_listening(addr: SocketAddr) {
    for _ in 0..100 {
        if TcpStream::connect(addr).is_ok() {
            return;
        }
        thread::sleep(Duration::from_millis(10));
    }
}

pub const PROJECT: &str = "p1";

/// The Keystone token body whose catalog points at `base`.
pub fn token_body(base: &str) -> Value {
    let ep = |t: &str, url: String| {
        json!({"type": t, "name": t, "endpoints": [
        {"interface": "public", "region": "RegionOne", "region_id": "RegionOne", "url": url},
        {"interface": "internal", "region": "RegionOne", "region_id": "RegionOne", "url": format!("{base}/internal")}]})
    };
    json!({"token": {
        "expires_at": "2099-01-01T00:00:00.000000Z",
        "methods": ["password"],
        "user": {"id": "u1", "name": "alice", "domain": {"id": "default", "name": "Default"}},
        "project": {"id": PROJECT, "name": "demo", "domain": {"id": "default", "name": "Default"}},
        "roles": [{"id": "r1", "name": "member"}],
        "catalog": [
            ep("identity", format!("{base}/identity")),
            ep("compute", format!("{base}/compute/v2.1")),
            ep("volumev3", format!("{base}/volume/v3/{PROJECT}")),
            ep("image", format!("{base}/image")),
            ep("network", format!("{base}/network")),
        ]
    }})
}

/// A fake cloud: answers Keystone auth (tokens `tok-1`, `tok-2`, ...) and the compute and volume
/// version documents (compute max `compute_max`), and passes everything else to `routes`
/// (`None` -> 404 with a Nova-style fault).
pub fn fake_cloud(
    compute_max: &'static str,
    routes: impl Fn(&Request) -> Option<Response> + Send + Sync + 'static,
) -> impl FnOnce(String) -> Box<dyn Fn(&Request) -> Response + Send + Sync> {
    move |base: String| {
        let tokens = AtomicUsize::new(0);
        Box::new(move |req: &Request| {
            if req.is("POST", "/identity/v3/auth/tokens") || req.is("POST", "/v3/auth/tokens") {
                let n = tokens.fetch_add(1, Ordering::SeqCst) + 1;
                return Response::json(201, token_body(&base))
                    .with_header("X-Subject-Token", &format!("tok-{n}"));
            }
            if req.is("GET", "/compute/v2.1/") {
                return Response::json(
                    200,
                    json!({"version": {"id": "v2.1", "status": "CURRENT", "version": compute_max, "min_version": "2.1"}}),
                );
            }
            if req.is("GET", "/volume/v3/") {
                return Response::json(
                    200,
                    json!({"versions": [{"id": "v3.0", "status": "CURRENT", "version": "3.71", "min_version": "3.0"}]}),
                );
            }
            routes(req).unwrap_or_else(|| Response::json(404, json!({"itemNotFound": {"message": format!("no route for {} {}", req.method, req.target), "code": 404}})))
        })
    }
}

/// A password config for a fake cloud at `url`, with fast retries.
pub fn config(url: &str) -> osm_openstack::CloudConfig {
    let mut c = osm_openstack::CloudConfig::password(
        &format!("{url}/identity"),
        "alice",
        "s3cr3t-pw",
        "demo",
    );
    c.retry = osm_openstack::RetryPolicy {
        max_retries: 3,
        base_delay: Duration::from_millis(10),
    };
    c
}

/// A Nova server as the fixtures return it.
pub fn server_json(id: &str, name: &str, status: &str) -> serde_json::Value {
    serde_json::json!({"id": id, "name": name, "status": status, "flavor": {"original_name": "m1.small"}, "image": ""})
}
