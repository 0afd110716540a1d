//! The resource of a traced process: who emitted its spans.
use crate::{kube, process::Process};

/// Resource attributes of one traced process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resource {
    pub service_name: String,
    pub pid: u32,
    pub executable_path: String,
    pub runtime_version: String,
    pub host_name: String,
    /// Attributes known for some processes only (`container.id`, `k8s.*`), in output
    /// order.
    pub attributes: Vec<(&'static str, String)>,
}

impl Resource {
    /// The resource of `process`, which runs in container `container_id` of
    /// Kubernetes container `pod` when known. The service name is `override_name` if
    /// given, else the process's own `OTEL_SERVICE_NAME`, else the one its pod's
    /// annotations, labels or owner give, else its executable's file name.
    pub fn of(
        process: &Process,
        go_version: &str,
        override_name: Option<&str>,
        container_id: Option<&str>,
        pod: Option<&kube::Container>,
    ) -> Self {
        let executable_path = process.exe.display().to_string();
        let file_name = process.exe.file_name().map_or_else(
            || executable_path.clone(),
            |n| n.to_string_lossy().into_owned(),
        );
        let service_name = override_name
            .map(str::to_owned)
            .or_else(|| process.env("OTEL_SERVICE_NAME").filter(|s| !s.is_empty()))
            .or_else(|| pod.and_then(|c| c.pod.service_name.clone()))
            .unwrap_or(file_name);
        let mut attributes = Vec::new();
        if let Some(id) = container_id {
            attributes.push(("container.id", id.to_owned()));
        }
        if let Some(container) = pod {
            attributes.extend(container.attributes());
        }
        Self {
            service_name,
            pid: process.pid,
            executable_path,
            runtime_version: go_version.to_owned(),
            host_name: host_name(),
            attributes,
        }
    }

    /// The value of the optional attribute `name`.
    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The node's host name.
pub fn host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer and its length are valid; gethostname NUL-terminates on success.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return String::new();
    }
    let len = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..len]).into_owned()
}
