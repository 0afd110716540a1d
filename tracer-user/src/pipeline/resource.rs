//! The resource of a traced process: who emitted its spans.
use crate::{kube, pipeline::span::Value, process::Process};

/// Resource attributes of one traced process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resource {
    pub service_name: String,
    pub pid: u32,
    pub executable_path: String,
    pub runtime_version: String,
    pub host_name: String,
    /// Attributes known for some processes only (`container.id`, `k8s.*`, those of
    /// `OTEL_RESOURCE_ATTRIBUTES`), in output order.
    pub attributes: Vec<(String, String)>,
}

/// What the tracer's configuration says about resources.
#[derive(Clone, Copy, Debug, Default)]
pub struct Naming<'a> {
    /// `--service-name` / the tracer's `OTEL_SERVICE_NAME`.
    pub service_name: Option<&'a str>,
    /// The tracer's `OTEL_RESOURCE_ATTRIBUTES`.
    pub attributes: &'a [(String, String)],
}

/// Attributes the tracer finds itself: `OTEL_RESOURCE_ATTRIBUTES` does not replace them.
const DETECTED: [&str; 6] = [
    "service.name",
    "process.pid",
    "process.executable.path",
    "process.runtime.name",
    "process.runtime.version",
    "host.name",
];

impl Resource {
    /// The resource of `process`, which runs in container `container_id` of
    /// Kubernetes container `pod` when known. The service name is, first found:
    /// `naming`'s, `service.name` in the tracer's `OTEL_RESOURCE_ATTRIBUTES`, the
    /// process's own `OTEL_SERVICE_NAME`, `service.name` in its own
    /// `OTEL_RESOURCE_ATTRIBUTES`, the one its pod's annotations, labels or owner give,
    /// its executable's file name. The other attributes of both `OTEL_RESOURCE_ATTRIBUTES`
    /// are added (the tracer's first), below what the tracer finds itself.
    pub fn of(
        process: &Process,
        go_version: &str,
        naming: Naming<'_>,
        container_id: Option<&str>,
        pod: Option<&kube::Container>,
    ) -> Self {
        let executable_path = process.exe.display().to_string();
        let file_name = process.exe.file_name().map_or_else(
            || executable_path.clone(),
            |n| n.to_string_lossy().into_owned(),
        );
        let own = process
            .env("OTEL_RESOURCE_ATTRIBUTES")
            .and_then(|text| crate::export::settings::parse_pairs(&text))
            .unwrap_or_default();
        let named = |pairs: &[(String, String)]| {
            pairs
                .iter()
                .find(|(k, v)| k == "service.name" && !v.is_empty())
                .map(|(_, v)| v.clone())
        };
        let service_name = naming
            .service_name
            .map(str::to_owned)
            .or_else(|| named(naming.attributes))
            .or_else(|| process.env("OTEL_SERVICE_NAME").filter(|s| !s.is_empty()))
            .or_else(|| named(&own))
            .or_else(|| pod.and_then(|c| c.pod.service_name.clone()))
            .unwrap_or(file_name);
        let mut attributes: Vec<(String, String)> = Vec::new();
        if let Some(id) = container_id {
            attributes.push(("container.id".to_owned(), id.to_owned()));
        }
        if let Some(container) = pod {
            attributes.extend(container.attributes().map(|(k, v)| (k.to_owned(), v)));
        }
        for (key, value) in naming.attributes.iter().chain(&own) {
            if !DETECTED.contains(&key.as_str()) && !attributes.iter().any(|(k, _)| k == key) {
                attributes.push((key.clone(), value.clone()));
            }
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

    /// Every attribute, in output order, with its value type.
    pub fn fields(&self) -> Vec<(&str, Value)> {
        let mut fields = vec![
            ("service.name", Value::from(self.service_name.clone())),
            ("process.pid", Value::Int(i64::from(self.pid))),
            (
                "process.executable.path",
                Value::from(self.executable_path.clone()),
            ),
            ("process.runtime.name", Value::from("go")),
            (
                "process.runtime.version",
                Value::from(self.runtime_version.clone()),
            ),
            ("host.name", Value::from(self.host_name.clone())),
        ];
        fields.extend(
            self.attributes
                .iter()
                .map(|(name, value)| (name.as_str(), Value::from(value.clone()))),
        );
        fields
    }

    /// The value of the optional attribute `name`.
    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(n, _)| n == name)
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
