//! Which exporters run and how, from the command line and the OpenTelemetry environment
//! variables (<https://opentelemetry.io/docs/specs/otel/protocol/exporter/>,
//! <https://opentelemetry.io/docs/specs/otel/configuration/sdk-environment-variables/>):
//! a flag wins over the traces-specific variable (`OTEL_EXPORTER_OTLP_TRACES_*`), which
//! wins over the general one (`OTEL_EXPORTER_OTLP_*`).
use std::{net::SocketAddr, path::PathBuf, time::Duration};

use clap::ValueEnum as _;

use super::{
    Policy,
    otlp::{self, Protocol},
    zipkin,
};
use crate::cli::{ExporterKind, OtlpCompression, OtlpProtocol, UsageError};

/// Defaults of the batching of network exporters (`OTEL_BSP_*` change them).
pub const DEFAULT_QUEUE: usize = 16_384;
pub const DEFAULT_BATCH: usize = 1024;
pub const DEFAULT_DELAY: Duration = Duration::from_secs(1);
/// How long a batch a back end cannot take is retried.
pub const GIVE_UP_AFTER: Duration = Duration::from_secs(300);
/// Where OTLP goes unless told, by protocol.
const DEFAULT_GRPC_ENDPOINT: &str = "http://localhost:4317";
const DEFAULT_HTTP_ENDPOINT: &str = "http://localhost:4318/v1/traces";
/// Each export's deadline unless told (`OTEL_EXPORTER_OTLP_TIMEOUT`).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// How spans leave the tracer.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    /// Each exporter once, in the order given.
    pub exporters: Vec<ExporterKind>,
    pub otlp: otlp::Config,
    pub zipkin_endpoint: String,
    /// Batching and queueing of the network exporters.
    pub policy: Policy,
    /// Where the Prometheus metrics are served, if anywhere.
    pub metrics_addr: Option<SocketAddr>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            exporters: vec![ExporterKind::Stdout],
            otlp: otlp::Config {
                protocol: Protocol::Grpc,
                endpoint: DEFAULT_GRPC_ENDPOINT.into(),
                headers: Vec::new(),
                gzip: false,
                timeout: DEFAULT_TIMEOUT,
                certificate: None,
            },
            zipkin_endpoint: zipkin::DEFAULT_ENDPOINT.into(),
            policy: Policy {
                max_queue: DEFAULT_QUEUE,
                max_batch: DEFAULT_BATCH,
                delay: DEFAULT_DELAY,
                give_up_after: GIVE_UP_AFTER,
            },
            metrics_addr: None,
        }
    }
}

/// The exporter flags of the command line.
#[derive(Debug, Default)]
pub struct Flags {
    pub exporters: Vec<ExporterKind>,
    pub otlp_endpoint: Option<String>,
    pub otlp_protocol: Option<OtlpProtocol>,
    pub otlp_headers: Vec<String>,
    pub otlp_compression: Option<OtlpCompression>,
    pub otlp_timeout_ms: Option<u64>,
    pub otlp_certificate: Option<PathBuf>,
    pub zipkin_endpoint: Option<String>,
    pub metrics_addr: Option<SocketAddr>,
}

/// Reads `OTEL_EXPORTER_OTLP_TRACES_{name}`, else `OTEL_EXPORTER_OTLP_{name}`.
fn otlp_env(env: &impl Fn(&str) -> Option<String>, name: &str) -> Option<(String, String)> {
    [
        format!("OTEL_EXPORTER_OTLP_TRACES_{name}"),
        format!("OTEL_EXPORTER_OTLP_{name}"),
    ]
    .into_iter()
    .find_map(|var| env(&var).filter(|v| !v.trim().is_empty()).map(|v| (var, v)))
}

fn bad(variable: &str, value: &str, expected: &'static str) -> UsageError {
    UsageError::BadValue {
        name: variable.to_owned(),
        value: value.to_owned(),
        expected,
    }
}

impl Settings {
    pub fn resolve(
        flags: Flags,
        env: &impl Fn(&str) -> Option<String>,
    ) -> Result<Self, UsageError> {
        let defaults = Self::default();
        let mut exporters = flags.exporters;
        if exporters.is_empty()
            && let Some(value) = env("OTEL_TRACES_EXPORTER").filter(|v| !v.trim().is_empty())
        {
            for name in value.split(',').map(str::trim) {
                let kind = match name {
                    "console" | "stdout" => ExporterKind::Stdout,
                    "otlp" => ExporterKind::Otlp,
                    "zipkin" => ExporterKind::Zipkin,
                    _ => return Err(bad("OTEL_TRACES_EXPORTER", name, "otlp, zipkin or console")),
                };
                exporters.push(kind);
            }
        }
        if exporters.is_empty() {
            exporters = defaults.exporters.clone();
        }
        let mut unique = Vec::new();
        for kind in exporters {
            if !unique.contains(&kind) {
                unique.push(kind);
            }
        }

        let protocol = match flags.otlp_protocol {
            Some(protocol) => protocol,
            None => match otlp_env(env, "PROTOCOL") {
                Some((var, value)) => OtlpProtocol::from_str(value.trim(), false)
                    .map_err(|_| bad(&var, &value, "grpc or http/protobuf"))?,
                None => OtlpProtocol::Grpc,
            },
        };
        let protocol = match protocol {
            OtlpProtocol::Grpc => Protocol::Grpc,
            OtlpProtocol::HttpProtobuf => Protocol::HttpProtobuf,
        };
        // A general endpoint gets the signal's path for HTTP; a traces endpoint is whole.
        let general = |base: &str| match protocol {
            Protocol::Grpc => base.to_owned(),
            Protocol::HttpProtobuf => format!("{}/v1/traces", base.trim_end_matches('/')),
        };
        let endpoint = match (
            &flags.otlp_endpoint,
            env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
        ) {
            (Some(flag), _) => general(flag),
            (None, Some(traces)) if !traces.trim().is_empty() => traces.trim().to_owned(),
            _ => match env("OTEL_EXPORTER_OTLP_ENDPOINT").filter(|v| !v.trim().is_empty()) {
                Some(base) => general(base.trim()),
                None => match protocol {
                    Protocol::Grpc => DEFAULT_GRPC_ENDPOINT.to_owned(),
                    Protocol::HttpProtobuf => DEFAULT_HTTP_ENDPOINT.to_owned(),
                },
            },
        };

        let mut headers = Vec::new();
        if let Some((var, value)) = otlp_env(env, "HEADERS") {
            headers = parse_pairs(&value).ok_or_else(|| bad(&var, &value, "key=value,..."))?;
        }
        for header in &flags.otlp_headers {
            let (name, value) = header
                .split_once('=')
                .filter(|(name, _)| !name.trim().is_empty())
                .ok_or_else(|| bad("--otlp-header", header, "NAME=VALUE"))?;
            let name = name.trim();
            headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
            headers.push((name.to_owned(), value.trim().to_owned()));
        }

        let gzip = match flags.otlp_compression {
            Some(compression) => compression == OtlpCompression::Gzip,
            None => match otlp_env(env, "COMPRESSION") {
                Some((var, value)) => match value.trim() {
                    "gzip" => true,
                    "none" => false,
                    _ => return Err(bad(&var, &value, "gzip or none")),
                },
                None => false,
            },
        };
        let timeout = match flags.otlp_timeout_ms {
            Some(ms) => Duration::from_millis(ms),
            None => match otlp_env(env, "TIMEOUT") {
                Some((var, value)) => value
                    .trim()
                    .parse()
                    .ok()
                    .filter(|&ms| ms > 0)
                    .map(Duration::from_millis)
                    .ok_or_else(|| bad(&var, &value, "milliseconds"))?,
                None => DEFAULT_TIMEOUT,
            },
        };
        let certificate = flags
            .otlp_certificate
            .or_else(|| otlp_env(env, "CERTIFICATE").map(|(_, path)| PathBuf::from(path.trim())));

        let number = |var: &str, default: usize| -> Result<usize, UsageError> {
            match env(var).filter(|v| !v.trim().is_empty()) {
                Some(value) => value
                    .trim()
                    .parse()
                    .ok()
                    .filter(|&n: &usize| n > 0)
                    .ok_or_else(|| bad(var, &value, "a positive number")),
                None => Ok(default),
            }
        };
        let max_queue = number("OTEL_BSP_MAX_QUEUE_SIZE", DEFAULT_QUEUE)?;
        let max_batch = number("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", DEFAULT_BATCH)?.min(max_queue);
        let delay_ms = number(
            "OTEL_BSP_SCHEDULE_DELAY",
            DEFAULT_DELAY.as_millis() as usize,
        )?;

        Ok(Self {
            exporters: unique,
            otlp: otlp::Config {
                protocol,
                endpoint,
                headers,
                gzip,
                timeout,
                certificate,
            },
            zipkin_endpoint: flags
                .zipkin_endpoint
                .filter(|e| !e.trim().is_empty())
                .unwrap_or(defaults.zipkin_endpoint),
            policy: Policy {
                max_queue,
                max_batch,
                delay: Duration::from_millis(delay_ms as u64),
                give_up_after: GIVE_UP_AFTER,
            },
            metrics_addr: flags.metrics_addr,
        })
    }
}

/// `key=value` pairs separated by commas, values percent-decoded (the format of
/// `OTEL_EXPORTER_OTLP_HEADERS` and `OTEL_RESOURCE_ATTRIBUTES`); `None` if malformed.
pub fn parse_pairs(text: &str) -> Option<Vec<(String, String)>> {
    let mut pairs = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (key, value) = part.split_once('=')?;
        let key = percent_decode(key.trim())?;
        if key.is_empty() {
            return None;
        }
        pairs.push((key, percent_decode(value.trim())?));
    }
    Some(pairs)
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn resolve(flags: Flags, vars: &[(&str, &str)]) -> Result<Settings, UsageError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Settings::resolve(flags, &|name: &str| vars.get(name).cloned())
    }

    #[test]
    fn defaults() {
        let settings = resolve(Flags::default(), &[]).expect("valid");
        assert_eq!(settings, Settings::default());
    }

    #[test]
    fn endpoints_follow_the_specification() {
        let http = |vars: &[(&str, &str)]| {
            let flags = Flags {
                otlp_protocol: Some(OtlpProtocol::HttpProtobuf),
                ..Flags::default()
            };
            resolve(flags, vars).expect("valid").otlp.endpoint
        };
        assert_eq!(http(&[]), "http://localhost:4318/v1/traces");
        assert_eq!(
            http(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "https://c:4318/")]),
            "https://c:4318/v1/traces"
        );
        assert_eq!(
            http(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://c:4318"),
                ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "https://t:1/custom"),
            ]),
            "https://t:1/custom"
        );
        let grpc = resolve(
            Flags::default(),
            &[("OTEL_EXPORTER_OTLP_ENDPOINT", "https://c:4317")],
        )
        .expect("valid");
        assert_eq!(grpc.otlp.endpoint, "https://c:4317");
        // The protocol from the environment, the traces one first.
        let settings = resolve(
            Flags::default(),
            &[
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
                ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf"),
            ],
        )
        .expect("valid");
        assert_eq!(settings.otlp.protocol, Protocol::HttpProtobuf);
    }

    #[test]
    fn headers_compression_timeout_certificate() {
        let flags = Flags {
            otlp_headers: vec!["X-Team=shop".into()],
            ..Flags::default()
        };
        let settings = resolve(
            flags,
            &[
                (
                    "OTEL_EXPORTER_OTLP_HEADERS",
                    "authorization=Bearer%20abc, x-team = web",
                ),
                ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"),
                ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "2500"),
                ("OTEL_EXPORTER_OTLP_CERTIFICATE", "/etc/ca.pem"),
            ],
        )
        .expect("valid");
        assert_eq!(
            settings.otlp.headers,
            vec![
                ("authorization".to_owned(), "Bearer abc".to_owned()),
                ("X-Team".to_owned(), "shop".to_owned()),
            ]
        );
        assert!(settings.otlp.gzip);
        assert_eq!(settings.otlp.timeout, Duration::from_millis(2500));
        assert_eq!(
            settings.otlp.certificate,
            Some(PathBuf::from("/etc/ca.pem"))
        );
        for (var, value) in [
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "br"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "soon"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "novalue"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
            ("OTEL_TRACES_EXPORTER", "jaeger"),
            ("OTEL_BSP_MAX_QUEUE_SIZE", "0"),
        ] {
            let error = resolve(Flags::default(), &[(var, value)]).expect_err(var);
            assert!(error.to_string().contains(var), "{error}");
        }
    }

    #[test]
    fn exporters_from_the_environment_and_flags() {
        let settings = resolve(
            Flags::default(),
            &[("OTEL_TRACES_EXPORTER", "otlp,console,otlp")],
        )
        .expect("valid");
        assert_eq!(
            settings.exporters,
            vec![ExporterKind::Otlp, ExporterKind::Stdout]
        );
        let flags = Flags {
            exporters: vec![ExporterKind::Zipkin],
            ..Flags::default()
        };
        let settings = resolve(flags, &[("OTEL_TRACES_EXPORTER", "otlp")]).expect("valid");
        assert_eq!(settings.exporters, vec![ExporterKind::Zipkin]);
    }

    #[test]
    fn pairs() {
        assert_eq!(
            parse_pairs("a=1,b=x%2Cy,,c="),
            Some(vec![
                ("a".into(), "1".into()),
                ("b".into(), "x,y".into()),
                ("c".into(), String::new()),
            ])
        );
        assert_eq!(parse_pairs("=1"), None);
        assert_eq!(parse_pairs("a=%zz"), None);
    }
}
