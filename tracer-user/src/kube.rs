//! Kubernetes metadata: which pod and container a process runs in, from the list of the
//! node's pods (the API server's `/api/v1/pods?fieldSelector=spec.nodeName=NODE`, or the
//! kubelet's `/pods`: both answer with a `PodList`).
//!
//! The list is fetched by a thread of its own, never on the span path: every
//! [`REFRESH`], and sooner (at most every [`MIN_INTERVAL`]) when a container id is asked
//! for that the last list does not have (a pod that just started). Lookups read the last
//! list, indexed by container id.
use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicU64, Ordering},
        mpsc::{Receiver, RecvTimeoutError, SyncSender, sync_channel},
    },
    time::{Duration, Instant},
};

use serde::Deserialize;

use crate::cli::Kubernetes;

/// How often the pod list is fetched when nothing asks sooner.
pub const REFRESH: Duration = Duration::from_secs(30);
/// The shortest time between two fetches.
pub const MIN_INTERVAL: Duration = Duration::from_secs(2);
/// How long one fetch may take.
const TIMEOUT: Duration = Duration::from_secs(10);
/// The largest pod list read.
const MAX_BODY: u64 = 64 << 20;

/// Where a service account's credentials are mounted in a pod.
pub const SERVICE_ACCOUNT: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// Where the pod list comes from, and how to authenticate.
#[derive(Clone, Debug, PartialEq)]
pub struct Source {
    pub url: String,
    /// A bearer token, read afresh for each fetch (service account tokens rotate).
    pub token_file: Option<PathBuf>,
    /// The certificate authorities an `https` server's certificate must chain to.
    pub ca_file: Option<PathBuf>,
}

impl Source {
    /// Where the command line says, or in a pod (`KUBERNETES_SERVICE_HOST` set) the API
    /// server's pods of the node; none outside Kubernetes. The service account's token
    /// and certificate authorities are used unless others are named.
    pub fn of(config: &Kubernetes) -> Option<Self> {
        let in_cluster = std::env::var("KUBERNETES_SERVICE_HOST").ok();
        let url = match (&config.pods_url, &config.node_name, in_cluster) {
            (Some(url), _, _) => url.clone(),
            (None, Some(node), Some(host)) => {
                let port =
                    std::env::var("KUBERNETES_SERVICE_PORT").unwrap_or_else(|_| "443".into());
                api_url(&host, &port, node)
            }
            (None, None, Some(_)) => {
                log::warn!(
                    "running in Kubernetes without NODE_NAME (set it from spec.nodeName): no k8s.* attributes"
                );
                return None;
            }
            (None, _, None) => return None,
        };
        let account = Path::new(SERVICE_ACCOUNT);
        let token_file = config
            .token_file
            .clone()
            .or_else(|| Some(account.join("token")).filter(|p| p.is_file()));
        let ca_file = config.ca_file.clone().or_else(|| {
            Some(account.join("ca.crt")).filter(|p| url.starts_with("https:") && p.is_file())
        });
        Some(Self {
            url,
            token_file,
            ca_file,
        })
    }
}

/// The API server's list of the pods of `node`.
fn api_url(host: &str, port: &str, node: &str) -> String {
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_owned()
    };
    format!("https://{host}:{port}/api/v1/pods?fieldSelector=spec.nodeName%3D{node}")
}

/// A pod, as much of it as spans need.
#[derive(Debug, PartialEq)]
pub struct Pod {
    pub name: String,
    pub namespace: String,
    pub uid: String,
    pub node: String,
    /// The service name its annotations, labels or owner give, if any.
    pub service_name: Option<String>,
}

/// A container of a pod.
#[derive(Clone, Debug, PartialEq)]
pub struct Container {
    pub pod: Arc<Pod>,
    pub name: String,
}

impl Container {
    /// Its resource attributes, in output order.
    pub fn attributes(&self) -> impl Iterator<Item = (&'static str, String)> + '_ {
        [
            ("k8s.namespace.name", &self.pod.namespace),
            ("k8s.pod.name", &self.pod.name),
            ("k8s.pod.uid", &self.pod.uid),
            ("k8s.container.name", &self.name),
            ("k8s.node.name", &self.pod.node),
        ]
        .into_iter()
        .filter(|(_, value)| !value.is_empty())
        .map(|(name, value)| (name, value.clone()))
    }
}

/// The node's pods, by container id.
type Index = HashMap<String, Container>;

/// The pod metadata of the node, kept fresh by a thread.
pub struct Kube {
    index: Arc<Mutex<Arc<Index>>>,
    /// Incremented by each successful fetch.
    generation: Arc<AtomicU64>,
    /// Asks for an early fetch (capacity 1: one pending request is enough).
    refresh: SyncSender<()>,
}

impl Kube {
    /// Starts the thread that fetches the pod list from `source`.
    pub fn start(source: Source) -> std::io::Result<Self> {
        let index = Arc::new(Mutex::new(Arc::new(Index::new())));
        let generation = Arc::new(AtomicU64::new(0));
        let (refresh, requests) = sync_channel(1);
        let shared = (Arc::clone(&index), Arc::clone(&generation));
        std::thread::Builder::new()
            .name("tracer-kube".into())
            .spawn(move || follow(&source, &requests, &shared.0, &shared.1))?;
        Ok(Self {
            index,
            generation,
            refresh,
        })
    }

    /// The container `container_id` (64 hex digits) is, if the last list has it; if not,
    /// asks for a new list.
    pub fn container(&self, container_id: &str) -> Option<Container> {
        let found = self.cached(container_id);
        if found.is_none() {
            let _ = self.refresh.try_send(());
        }
        found
    }

    /// The container `container_id` is, if the last list has it (asks for nothing).
    pub fn cached(&self, container_id: &str) -> Option<Container> {
        let index = Arc::clone(&self.index.lock().unwrap_or_else(PoisonError::into_inner));
        index.get(container_id).cloned()
    }

    /// How many lists were fetched so far: what was not found may be found once it
    /// changes.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }
}

/// The thread: fetch, publish, wait for the next refresh or an early request; returns
/// when the [`Kube`] is dropped.
fn follow(
    source: &Source,
    requests: &Receiver<()>,
    index: &Mutex<Arc<Index>>,
    generation: &AtomicU64,
) {
    let agent = match crate::http::agent(source.ca_file.as_deref(), TIMEOUT) {
        Ok(agent) => agent,
        Err(error) => {
            log::warn!("Kubernetes metadata off: {error:#}");
            return;
        }
    };
    let mut failing = false;
    loop {
        let fetched = Instant::now();
        match fetch(&agent, source) {
            Ok(new) => {
                if failing || generation.load(Ordering::Relaxed) == 0 {
                    log::info!(
                        "Kubernetes metadata: {} containers from {}",
                        new.len(),
                        source.url
                    );
                }
                failing = false;
                *index.lock().unwrap_or_else(PoisonError::into_inner) = Arc::new(new);
                generation.fetch_add(1, Ordering::Release);
            }
            Err(error) => {
                if !failing {
                    log::warn!(
                        "Kubernetes metadata: cannot list pods from {}: {error:#} (retrying)",
                        source.url
                    );
                }
                failing = true;
            }
        }
        match requests.recv_timeout(REFRESH) {
            Ok(()) => std::thread::sleep(MIN_INTERVAL.saturating_sub(fetched.elapsed())),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}

/// One fetch of the pod list.
fn fetch(agent: &ureq::Agent, source: &Source) -> anyhow::Result<Index> {
    let mut request = agent.get(&source.url).header("Accept", "application/json");
    if let Some(token_file) = &source.token_file {
        let token = std::fs::read_to_string(token_file)
            .map_err(|e| anyhow::anyhow!("read the token {}: {e}", token_file.display()))?;
        request = request.header("Authorization", format!("Bearer {}", token.trim()));
    }
    let mut response = request.call()?;
    anyhow::ensure!(response.status().is_success(), "HTTP {}", response.status());
    let body = response
        .body_mut()
        .with_config()
        .limit(MAX_BODY)
        .read_to_vec()?;
    Ok(index(serde_json::from_slice(&body)?))
}

// ---- the PodList, as much of it as is read -------------------------------------------

#[derive(Deserialize)]
struct PodList {
    #[serde(default)]
    items: Vec<PodItem>,
}

#[derive(Deserialize)]
struct PodItem {
    #[serde(default)]
    metadata: Metadata,
    #[serde(default)]
    spec: Spec,
    #[serde(default)]
    status: Status,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Metadata {
    #[serde(default)]
    name: String,
    #[serde(default)]
    namespace: String,
    #[serde(default)]
    uid: String,
    #[serde(default)]
    labels: HashMap<String, String>,
    #[serde(default)]
    annotations: HashMap<String, String>,
    #[serde(default)]
    owner_references: Vec<Owner>,
}

#[derive(Deserialize)]
struct Owner {
    #[serde(default)]
    kind: String,
    #[serde(default)]
    name: String,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Spec {
    #[serde(default)]
    node_name: String,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Status {
    #[serde(default)]
    container_statuses: Vec<ContainerStatus>,
    #[serde(default)]
    init_container_statuses: Vec<ContainerStatus>,
    #[serde(default)]
    ephemeral_container_statuses: Vec<ContainerStatus>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ContainerStatus {
    #[serde(default)]
    name: String,
    /// `<runtime>://<id>`, once the container was created.
    #[serde(rename = "containerID", default)]
    container_id: Option<String>,
}

/// The containers of `list`, by id.
fn index(list: PodList) -> Index {
    let mut index = Index::new();
    for item in list.items {
        let pod = Arc::new(Pod {
            service_name: service_name(&item.metadata),
            name: item.metadata.name,
            namespace: item.metadata.namespace,
            uid: item.metadata.uid,
            node: item.spec.node_name,
        });
        let statuses = item
            .status
            .container_statuses
            .into_iter()
            .chain(item.status.init_container_statuses)
            .chain(item.status.ephemeral_container_statuses);
        for status in statuses {
            let Some(id) = status.container_id.as_deref() else {
                continue;
            };
            let id = id.split_once("://").map_or(id, |(_, id)| id);
            index.insert(
                id.to_ascii_lowercase(),
                Container {
                    pod: Arc::clone(&pod),
                    name: status.name,
                },
            );
        }
    }
    index
}

/// A pod's service name, in the order of the OpenTelemetry semantic conventions
/// (non-normative "Kubernetes attributes"): the `resource.opentelemetry.io/service.name`
/// annotation, the `app.kubernetes.io/instance` then `app.kubernetes.io/name` label, then
/// the workload that owns it (a ReplicaSet's Deployment, a StatefulSet, DaemonSet, Job).
fn service_name(metadata: &Metadata) -> Option<String> {
    let nonempty = |v: Option<&String>| v.filter(|v| !v.is_empty()).cloned();
    nonempty(
        metadata
            .annotations
            .get("resource.opentelemetry.io/service.name"),
    )
    .or_else(|| nonempty(metadata.labels.get("app.kubernetes.io/instance")))
    .or_else(|| nonempty(metadata.labels.get("app.kubernetes.io/name")))
    .or_else(|| {
        let owner = metadata.owner_references.first()?;
        match owner.kind.as_str() {
            // A Deployment's ReplicaSet is `<deployment>-<pod template hash>`.
            "ReplicaSet" => Some(
                owner
                    .name
                    .rsplit_once('-')
                    .map_or(owner.name.as_str(), |(deployment, _)| deployment)
                    .to_owned(),
            ),
            "StatefulSet" | "DaemonSet" | "Job" | "CronJob" => Some(owner.name.clone()),
            _ => None,
        }
        .filter(|n| !n.is_empty())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "3f4a8c0d2b1e4f5a6b7c8d9e0f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c";

    fn parse(json: &str) -> Index {
        index(serde_json::from_str(json).expect("a pod list"))
    }

    #[test]
    fn containers_by_id_with_their_pods() {
        let json = format!(
            r#"{{"kind":"PodList","items":[{{
              "metadata":{{"name":"shop-7d9f-abcde","namespace":"prod","uid":"u-1",
                "labels":{{"app.kubernetes.io/name":"shop"}},
                "ownerReferences":[{{"kind":"ReplicaSet","name":"shop-7d9f"}}]}},
              "spec":{{"nodeName":"node-1","containers":[{{"name":"app"}}]}},
              "status":{{"phase":"Running","containerStatuses":[
                {{"name":"app","containerID":"containerd://{ID}"}},
                {{"name":"waiting"}}],
                "initContainerStatuses":[{{"name":"init","containerID":"cri-o://{}"}}]}}}},
              {{"metadata":{{"name":"pending"}}}}]}}"#,
            "A".repeat(64)
        );
        let index = parse(&json);
        assert_eq!(index.len(), 2);
        let app = &index[ID];
        assert_eq!(app.name, "app");
        assert_eq!(app.pod.name, "shop-7d9f-abcde");
        assert_eq!(app.pod.namespace, "prod");
        assert_eq!(app.pod.uid, "u-1");
        assert_eq!(app.pod.node, "node-1");
        assert_eq!(app.pod.service_name.as_deref(), Some("shop"));
        let init = &index[&"a".repeat(64)];
        assert_eq!(init.name, "init");
        assert!(Arc::ptr_eq(&init.pod, &app.pod));
    }

    fn metadata(json: &str) -> Metadata {
        serde_json::from_str(json).expect("metadata")
    }

    #[test]
    fn service_name_in_convention_order() {
        let all = r#"{"annotations":{"resource.opentelemetry.io/service.name":"a"},
            "labels":{"app.kubernetes.io/instance":"i","app.kubernetes.io/name":"n"},
            "ownerReferences":[{"kind":"StatefulSet","name":"db"}]}"#;
        assert_eq!(service_name(&metadata(all)).as_deref(), Some("a"));
        let labels =
            r#"{"labels":{"app.kubernetes.io/instance":"i","app.kubernetes.io/name":"n"}}"#;
        assert_eq!(service_name(&metadata(labels)).as_deref(), Some("i"));
        let name = r#"{"labels":{"app.kubernetes.io/name":"n","app":"x"}}"#;
        assert_eq!(service_name(&metadata(name)).as_deref(), Some("n"));
        let deployment = r#"{"ownerReferences":[{"kind":"ReplicaSet","name":"web-api-5c8d7f"}]}"#;
        assert_eq!(
            service_name(&metadata(deployment)).as_deref(),
            Some("web-api")
        );
        let daemonset = r#"{"ownerReferences":[{"kind":"DaemonSet","name":"agent"}]}"#;
        assert_eq!(service_name(&metadata(daemonset)).as_deref(), Some("agent"));
        let bare = r#"{"labels":{"app":"x"},"ownerReferences":[{"kind":"Node","name":"n1"}]}"#;
        assert_eq!(service_name(&metadata(bare)), None);
    }

    #[test]
    fn api_server_urls() {
        assert_eq!(
            api_url("10.96.0.1", "443", "node-1"),
            "https://10.96.0.1:443/api/v1/pods?fieldSelector=spec.nodeName%3Dnode-1"
        );
        assert_eq!(
            api_url("fd00::1", "6443", "n"),
            "https://[fd00::1]:6443/api/v1/pods?fieldSelector=spec.nodeName%3Dn"
        );
    }
}
