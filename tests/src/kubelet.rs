//! A fake of the kubelet's `/pods` endpoint on loopback: answers every `GET` with the
//! `PodList` it is given (the first `withhold` answers without the container statuses,
//! as the kubelet does until a container started) and records the requests.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::Duration;

use crate::{Context, Result};

/// A request the fake received: its request line and `Authorization` header.
#[derive(Clone, Debug)]
pub struct Seen {
    pub line: String,
    pub authorization: Option<String>,
}

pub struct FakeKubelet {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<AtomicBool>,
}

/// One pod of the fake's list.
pub struct Pod<'a> {
    pub name: &'a str,
    pub namespace: &'a str,
    pub uid: &'a str,
    pub node: &'a str,
    pub labels: &'a [(&'a str, &'a str)],
    /// Container name and id (64 hex digits).
    pub containers: &'a [(&'a str, &'a str)],
}

impl FakeKubelet {
    /// Serves `pods`; the first `withhold` answers have no container statuses.
    pub fn start(pods: &[Pod], withhold: usize) -> Result<Self> {
        let full = pod_list(pods, true);
        let early = pod_list(pods, false);
        let listener = TcpListener::bind("127.0.0.1:0").context("bind the fake kubelet")?;
        listener
            .set_nonblocking(true)
            .context("make the listener non-blocking")?;
        let addr = listener.local_addr().context("its address")?;
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (seen_by_thread, stop_thread) = (Arc::clone(&seen), Arc::clone(&stop));
        thread::spawn(move || {
            while !stop_thread.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let mut seen = seen_by_thread
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner);
                        let body = if seen.len() < withhold { &early } else { &full };
                        if let Some(request) = answer(stream, body) {
                            seen.push(request);
                        }
                    }
                    Err(_) => thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Ok(Self { addr, seen, stop })
    }

    /// The URL of its pod list.
    pub fn url(&self) -> String {
        format!("http://{}/pods", self.addr)
    }

    /// The requests so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Drop for FakeKubelet {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Reads one request from `stream` and answers it with `body`.
fn answer(stream: TcpStream, body: &str) -> Option<Seen> {
    stream.set_nonblocking(false).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut authorization = None;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).ok()? == 0 || header.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':')
            && name.eq_ignore_ascii_case("authorization")
        {
            authorization = Some(value.trim().to_owned());
        }
    }
    let mut stream = stream;
    write!(
        stream,
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .ok()?;
    Some(Seen {
        line: line.trim().to_owned(),
        authorization,
    })
}

/// The `PodList` JSON of `pods`, with or without their container statuses.
fn pod_list(pods: &[Pod], statuses: bool) -> String {
    let items: Vec<serde_json::Value> = pods
        .iter()
        .map(|pod| {
            let labels: serde_json::Map<String, serde_json::Value> = pod
                .labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).into()))
                .collect();
            let specs: Vec<serde_json::Value> = pod
                .containers
                .iter()
                .map(|(name, _)| serde_json::json!({ "name": name, "image": "example/app:1" }))
                .collect();
            let container_statuses: Vec<serde_json::Value> = pod
                .containers
                .iter()
                .map(|(name, id)| {
                    if statuses {
                        serde_json::json!({ "name": name, "containerID": format!("containerd://{id}"), "ready": true })
                    } else {
                        serde_json::json!({ "name": name, "ready": false })
                    }
                })
                .collect();
            serde_json::json!({
                "metadata": {
                    "name": pod.name,
                    "namespace": pod.namespace,
                    "uid": pod.uid,
                    "labels": labels,
                    "ownerReferences": [{ "kind": "ReplicaSet", "name": "ignored-1234" }],
                },
                "spec": { "nodeName": pod.node, "containers": specs },
                "status": { "phase": "Running", "containerStatuses": container_statuses },
            })
        })
        .collect();
    serde_json::json!({ "kind": "PodList", "apiVersion": "v1", "items": items }).to_string()
}
