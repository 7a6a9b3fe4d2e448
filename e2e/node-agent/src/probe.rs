//! Readiness probes: tcpSocket and httpGet against the pod's address; exec and grpc probes pass
//! once the process runs (running a command inside a "container" would only run it on the host).

use std::net::Ipv4Addr;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// A probe's timing, with the API's defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    pub initial_delay: Duration,
    pub period: Duration,
    pub timeout: Duration,
    pub success_threshold: u32,
    pub failure_threshold: u32,
}

impl Timing {
    pub fn of(probe: &Probe) -> Self {
        let secs = |v: Option<i32>, default: u64| {
            Duration::from_secs(v.map_or(default, |v| v.max(0) as u64))
        };
        Self {
            initial_delay: secs(probe.initial_delay_seconds, 0),
            period: secs(probe.period_seconds, 10).max(Duration::from_secs(1)),
            timeout: secs(probe.timeout_seconds, 1).max(Duration::from_secs(1)),
            success_threshold: probe.success_threshold.unwrap_or(1).max(1) as u32,
            failure_threshold: probe.failure_threshold.unwrap_or(3).max(1) as u32,
        }
    }
}

/// Readiness from consecutive probe results.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Readiness {
    pub ready: bool,
    successes: u32,
    failures: u32,
}

impl Readiness {
    pub fn record(&mut self, ok: bool, timing: &Timing) {
        if ok {
            self.successes += 1;
            self.failures = 0;
            if self.successes >= timing.success_threshold {
                self.ready = true;
            }
        } else {
            self.failures += 1;
            self.successes = 0;
            if self.failures >= timing.failure_threshold {
                self.ready = false;
            }
        }
    }
}

/// What to connect to, resolved from the container spec once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    Tcp {
        host: String,
        port: u16,
    },
    Http {
        host: String,
        port: u16,
        path: String,
    },
    /// exec and grpc: ready while running.
    Pass,
    /// A probe whose port names no port of the container never passes.
    Fail,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("probe port {0:?} is not a port number or a named port of the container")]
pub struct PortError(String);

impl Check {
    pub fn of(probe: &Probe, container: &Container, pod_ip: Ipv4Addr) -> Result<Self, PortError> {
        let host = |h: &Option<String>| {
            h.clone()
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| pod_ip.to_string())
        };
        if let Some(tcp) = &probe.tcp_socket {
            return Ok(Check::Tcp {
                host: host(&tcp.host),
                port: port(&tcp.port, container)?,
            });
        }
        if let Some(http) = &probe.http_get {
            // An HTTPS endpoint is checked by its TCP port only: no TLS client here.
            let port = port(&http.port, container)?;
            return Ok(if http.scheme.as_deref() == Some("HTTPS") {
                Check::Tcp {
                    host: host(&http.host),
                    port,
                }
            } else {
                Check::Http {
                    host: host(&http.host),
                    port,
                    path: http.path.clone().unwrap_or_else(|| "/".into()),
                }
            });
        }
        Ok(Check::Pass)
    }

    pub async fn run(&self, timeout: Duration) -> bool {
        let attempt = async {
            match self {
                Check::Pass => true,
                Check::Fail => false,
                Check::Tcp { host, port } => {
                    TcpStream::connect((host.as_str(), *port)).await.is_ok()
                }
                Check::Http { host, port, path } => {
                    http_get(host, *port, path).await.unwrap_or(false)
                }
            }
        };
        tokio::time::timeout(timeout, attempt)
            .await
            .unwrap_or(false)
    }
}

fn port(port: &IntOrString, container: &Container) -> Result<u16, PortError> {
    let err = || {
        PortError(match port {
            IntOrString::Int(i) => i.to_string(),
            IntOrString::String(s) => s.clone(),
        })
    };
    match port {
        IntOrString::Int(i) => u16::try_from(*i).map_err(|_| err()),
        IntOrString::String(name) => match name.parse::<u16>() {
            Ok(n) => Ok(n),
            Err(_) => container
                .ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some(name.as_str()))
                .and_then(|p| u16::try_from(p.container_port).ok())
                .ok_or_else(err),
        },
    }
}

/// HTTP/1.0 GET; success is a 2xx or 3xx status, as for the kubelet.
async fn http_get(host: &str, port: u16, path: &str) -> std::io::Result<bool> {
    let mut stream = TcpStream::connect((host, port)).await?;
    let request = format!(
        "GET {path} HTTP/1.0\r\nHost: {host}:{port}\r\nUser-Agent: spate-node-agent\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await?;
    let mut head = [0u8; 32];
    let mut read = 0;
    while read < 12 {
        let n = stream.read(&mut head[read..]).await?;
        if n == 0 {
            break;
        }
        read += n;
    }
    let line = String::from_utf8_lossy(&head[..read]);
    let code = line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse::<u16>().ok());
    Ok(code.is_some_and(|c| (200..400).contains(&c)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container() -> Container {
        serde_json::from_value(serde_json::json!({
            "name": "main", "ports": [{"name": "rpc", "containerPort": 6123}]
        }))
        .unwrap()
    }

    fn probe(json: serde_json::Value) -> Probe {
        serde_json::from_value(json).unwrap()
    }

    const IP: Ipv4Addr = Ipv4Addr::new(127, 1, 0, 4);

    #[test]
    fn checks_resolve_named_ports_and_default_to_the_pod_ip() {
        let c = container();
        let tcp = probe(serde_json::json!({"tcpSocket": {"port": "rpc"}}));
        assert_eq!(
            Check::of(&tcp, &c, IP),
            Ok(Check::Tcp {
                host: "127.1.0.4".into(),
                port: 6123
            })
        );
        let http = probe(
            serde_json::json!({"httpGet": {"port": 8080, "path": "/healthz", "host": "127.0.0.1"}}),
        );
        assert_eq!(
            Check::of(&http, &c, IP),
            Ok(Check::Http {
                host: "127.0.0.1".into(),
                port: 8080,
                path: "/healthz".into()
            })
        );
        let exec = probe(serde_json::json!({"exec": {"command": ["true"]}}));
        assert_eq!(Check::of(&exec, &c, IP), Ok(Check::Pass));
        let bad = probe(serde_json::json!({"tcpSocket": {"port": "metrics"}}));
        assert_eq!(Check::of(&bad, &c, IP), Err(PortError("metrics".into())));
    }

    #[test]
    fn readiness_follows_thresholds() {
        let timing = Timing::of(&probe(
            serde_json::json!({"successThreshold": 2, "failureThreshold": 2}),
        ));
        assert_eq!(timing.period, Duration::from_secs(10));
        let mut r = Readiness::default();
        r.record(true, &timing);
        assert!(!r.ready);
        r.record(true, &timing);
        assert!(r.ready);
        r.record(false, &timing);
        assert!(r.ready);
        r.record(false, &timing);
        assert!(!r.ready);
    }

    #[tokio::test]
    async fn tcp_and_http_checks_against_a_listener() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            for status in ["200 OK", "503 Service Unavailable"] {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await.unwrap();
                s.write_all(format!("HTTP/1.0 {status}\r\n\r\n").as_bytes())
                    .await
                    .unwrap();
            }
        });
        let http = Check::Http {
            host: "127.0.0.1".into(),
            port,
            path: "/".into(),
        };
        assert!(http.run(Duration::from_secs(2)).await);
        assert!(!http.run(Duration::from_secs(2)).await);
        server.await.unwrap();
        // Nothing listens on a port bound without listening: it refuses connections, and, bound,
        // it is neither taken by another test's listener nor picked as the check's own source
        // port (a connection to a free port of the ephemeral range can connect to itself).
        let closed = tokio::net::TcpSocket::new_v4().unwrap();
        closed.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        assert!(
            !Check::Tcp {
                host: "127.0.0.1".into(),
                port: closed.local_addr().unwrap().port(),
            }
            .run(Duration::from_secs(1))
            .await
        );
    }
}
