//! Sockets: a stream over a Unix socket or TCP, and NBD URIs.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

use crate::error::{Error, Result};

/// The default NBD TCP port.
pub const DEFAULT_PORT: u16 = 10809;

/// A connected byte stream: a Unix socket or a TCP connection.
#[derive(Debug)]
pub enum Stream {
    /// A Unix domain socket.
    Unix(UnixStream),
    /// A TCP connection.
    Tcp(TcpStream),
}

impl Stream {
    /// Another handle to the same socket, for reading and writing from two threads.
    pub fn try_clone(&self) -> io::Result<Stream> {
        Ok(match self {
            Stream::Unix(s) => Stream::Unix(s.try_clone()?),
            Stream::Tcp(s) => Stream::Tcp(s.try_clone()?),
        })
    }

    /// Shuts down one or both directions.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        match self {
            Stream::Unix(s) => s.shutdown(how),
            Stream::Tcp(s) => s.shutdown(how),
        }
    }

    /// Sets a timeout on reads (`None`: block forever).
    pub fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        match self {
            Stream::Unix(s) => s.set_read_timeout(t),
            Stream::Tcp(s) => s.set_read_timeout(t),
        }
    }

    /// Sets a timeout on writes (`None`: block forever).
    pub fn set_write_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        match self {
            Stream::Unix(s) => s.set_write_timeout(t),
            Stream::Tcp(s) => s.set_write_timeout(t),
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Unix(s) => s.read(buf),
            Stream::Tcp(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Unix(s) => s.write(buf),
            Stream::Tcp(s) => s.write(buf),
        }
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        match self {
            Stream::Unix(s) => s.write_vectored(bufs),
            Stream::Tcp(s) => s.write_vectored(bufs),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Where a server listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    /// A Unix socket path.
    Unix(PathBuf),
    /// A TCP host and port.
    Tcp(String, u16),
}

impl Address {
    /// Opens a connection.
    pub fn connect(&self) -> Result<Stream> {
        Ok(match self {
            Address::Unix(p) => Stream::Unix(UnixStream::connect(p).map_err(|e| {
                Error::Io(io::Error::new(
                    e.kind(),
                    format!("connecting to {}: {e}", p.display()),
                ))
            })?),
            Address::Tcp(h, port) => {
                let s = TcpStream::connect((h.as_str(), *port)).map_err(|e| {
                    Error::Io(io::Error::new(
                        e.kind(),
                        format!("connecting to {h}:{port}: {e}"),
                    ))
                })?;
                // Requests are small and latency-bound; Nagle would hold them back.
                s.set_nodelay(true)?;
                Stream::Tcp(s)
            }
        })
    }
}

/// An NBD URI: `nbd://host[:port]/export` or `nbd+unix:///export?socket=PATH`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uri {
    /// Where to connect.
    pub address: Address,
    /// The export name.
    pub export: String,
}

impl Uri {
    /// Parses the subset of the NBD URI format without TLS.
    pub fn parse(s: &str) -> Result<Uri> {
        let bad = |why: &str| Error::Protocol(format!("bad NBD URI {s:?}: {why}"));
        let (scheme, rest) = s.split_once("://").ok_or_else(|| bad("missing scheme"))?;
        let (rest, query) = match rest.split_once('?') {
            Some((r, q)) => (r, Some(q)),
            None => (rest, None),
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, ""),
        };
        let export = percent_decode(path).ok_or_else(|| bad("bad percent-encoding in export"))?;
        match scheme {
            "nbd+unix" => {
                if !authority.is_empty() {
                    return Err(bad("nbd+unix takes no host"));
                }
                let socket = query
                    .into_iter()
                    .flat_map(|q| q.split('&'))
                    .find_map(|kv| kv.strip_prefix("socket="))
                    .ok_or_else(|| bad("missing ?socket=PATH"))?;
                let socket =
                    percent_decode(socket).ok_or_else(|| bad("bad percent-encoding in socket"))?;
                Ok(Uri {
                    address: Address::Unix(socket.into()),
                    export,
                })
            }
            "nbd" => {
                let (host, port) = match authority.rsplit_once(':') {
                    Some((h, p)) if !h.ends_with(']') || authority.starts_with('[') => {
                        (h, p.parse::<u16>().map_err(|_| bad("bad port"))?)
                    }
                    _ => (authority, DEFAULT_PORT),
                };
                let host = host.trim_start_matches('[').trim_end_matches(']');
                if host.is_empty() {
                    return Err(bad("missing host"));
                }
                Ok(Uri {
                    address: Address::Tcp(host.to_string(), port),
                    export,
                })
            }
            other => Err(bad(&format!(
                "unsupported scheme {other:?} (nbd or nbd+unix)"
            ))),
        }
    }
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_unix_and_tcp_uris() {
        let u = Uri::parse("nbd+unix:///disk%201?socket=/run/x%2Fy.sock").unwrap();
        assert_eq!(
            u,
            Uri {
                address: Address::Unix("/run/x/y.sock".into()),
                export: "disk 1".into()
            }
        );
        let u = Uri::parse("nbd+unix://?socket=/s").unwrap();
        assert_eq!(u.export, "");
        let u = Uri::parse("nbd://127.0.0.1:1234/vda").unwrap();
        assert_eq!(
            u,
            Uri {
                address: Address::Tcp("127.0.0.1".into(), 1234),
                export: "vda".into()
            }
        );
        let u = Uri::parse("nbd://host").unwrap();
        assert_eq!(u.address, Address::Tcp("host".into(), DEFAULT_PORT));
        let u = Uri::parse("nbd://[::1]:99/e").unwrap();
        assert_eq!(u.address, Address::Tcp("::1".into(), 99));
        for bad in [
            "nbd+unix:///x",
            "http://x/y",
            "nbd://:1/x",
            "nbd://h:port/x",
            "nbd+unix:///%zz?socket=/s",
        ] {
            assert!(Uri::parse(bad).is_err(), "{bad}");
        }
    }
}
