//! The command line (see CONTRACT.md), parsed by clap and turned into a validated
//! [`Config`]. Flags win over the environment variables named in `--help`.
use clap::{Parser, ValueEnum};

use crate::export::settings::{Flags, Settings, parse_pairs};
use crate::probes::Placement;

/// Default `--nice`: below the default priority (0) of the programs around the tracer.
pub const DEFAULT_NICE: i32 = 10;

/// Traces the HTTP requests inside running Go programs, with no change to them.
#[derive(Debug, Parser)]
#[command(name = "tracer", version, about, long_about = None)]
pub struct Cli {
    /// Trace this running process (repeatable).
    #[arg(long = "pid", value_name = "PID")]
    pub pids: Vec<u32>,

    /// Trace every process running this executable, now and later (repeatable).
    #[arg(long = "binary", value_name = "PATH")]
    pub binaries: Vec<std::path::PathBuf>,

    /// Trace every supported process on the node.
    #[arg(long)]
    pub all: bool,

    /// With --all: trace only processes whose executable path matches this glob (`*` and
    /// `?` within a path component, `**` across them), or with a prefix their
    /// `container:`, `pod:` or `namespace:` (repeatable).
    #[arg(long, value_name = "GLOB", requires = "all")]
    pub include: Vec<String>,

    /// With --all: never trace processes this glob matches (as --include; repeatable;
    /// wins over --include).
    #[arg(long, value_name = "GLOB", requires = "all")]
    pub exclude: Vec<String>,

    /// Where the node's pod list comes from [default in a pod: the API server's pods of
    /// --node-name]; e.g. the kubelet's https://NODE_IP:10250/pods.
    #[arg(long, env = "TRACER_KUBE_PODS_URL", value_name = "URL")]
    pub kube_pods_url: Option<String>,

    /// The Kubernetes node the tracer runs on (set it from spec.nodeName).
    #[arg(long, env = "NODE_NAME", value_name = "NAME")]
    pub node_name: Option<String>,

    /// Bearer token for the pod list [default: the pod's service account token].
    #[arg(long, env = "TRACER_KUBE_TOKEN_FILE", value_name = "PATH")]
    pub kube_token_file: Option<std::path::PathBuf>,

    /// Certificate authorities for an https pod list [default: the service account's].
    #[arg(long, env = "TRACER_KUBE_CA_FILE", value_name = "PATH")]
    pub kube_ca_file: Option<std::path::PathBuf>,

    /// Where spans go: stdout, otlp, zipkin; several at once with commas or repeats
    /// [default: stdout; env OTEL_TRACES_EXPORTER (otlp, zipkin, console)].
    #[arg(
        long = "exporter",
        value_enum,
        value_delimiter = ',',
        value_name = "EXPORTER"
    )]
    pub exporters: Vec<ExporterKind>,

    /// Output format on stdout [default: text on a terminal, json otherwise].
    #[arg(long, value_enum)]
    pub format: Option<Format>,

    /// OTLP endpoint URL: for http/protobuf, `/v1/traces` is added [env
    /// OTEL_EXPORTER_OTLP_ENDPOINT; OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is taken whole;
    /// default http://localhost:4317, or :4318 for http/protobuf].
    #[arg(long, value_name = "URL")]
    pub otlp_endpoint: Option<String>,

    /// OTLP protocol [env OTEL_EXPORTER_OTLP_(TRACES_)PROTOCOL; default grpc].
    #[arg(long, value_enum)]
    pub otlp_protocol: Option<OtlpProtocol>,

    /// A header sent with every OTLP export, e.g. `authorization=Bearer T` (repeatable;
    /// added to env OTEL_EXPORTER_OTLP_(TRACES_)HEADERS).
    #[arg(long = "otlp-header", value_name = "NAME=VALUE")]
    pub otlp_headers: Vec<String>,

    /// Compression of OTLP exports [env OTEL_EXPORTER_OTLP_(TRACES_)COMPRESSION; default
    /// none].
    #[arg(long, value_enum)]
    pub otlp_compression: Option<OtlpCompression>,

    /// Deadline of each OTLP export in milliseconds [env
    /// OTEL_EXPORTER_OTLP_(TRACES_)TIMEOUT; default 10000].
    #[arg(long, value_name = "MS", value_parser = clap::value_parser!(u64).range(1..))]
    pub otlp_timeout: Option<u64>,

    /// Certificate authorities (PEM) to trust for an https OTLP endpoint, instead of the
    /// public ones [env OTEL_EXPORTER_OTLP_(TRACES_)CERTIFICATE].
    #[arg(long, value_name = "PATH")]
    pub otlp_certificate: Option<std::path::PathBuf>,

    /// Zipkin v2 spans endpoint.
    #[arg(long, env = "OTEL_EXPORTER_ZIPKIN_ENDPOINT", value_name = "URL",
          default_value = crate::export::zipkin::DEFAULT_ENDPOINT)]
    pub zipkin_endpoint: String,

    /// Serve the tracer's own counters for Prometheus at http://ADDR/metrics.
    #[arg(long, env = "TRACER_METRICS_ADDR", value_name = "ADDR")]
    pub metrics_addr: Option<std::net::SocketAddr>,

    /// Service name [default: the target's OTEL_SERVICE_NAME, else its executable's name].
    #[arg(long, env = "OTEL_SERVICE_NAME", value_name = "NAME")]
    pub service_name: Option<String>,

    /// Never write into a target's memory (no traceparent injection).
    #[arg(long)]
    pub read_only: bool,

    /// Fraction of traces kept (parent-based, by trace id).
    #[arg(long, value_name = "R")]
    pub sample_ratio: Option<f64>,

    /// Keep query strings (url.query); off by default since they often carry secrets.
    #[arg(long)]
    pub capture_query: bool,

    /// Log level or RUST_LOG-style filter (error, warn, info, debug).
    #[arg(long, value_name = "LEVEL")]
    pub log_level: Option<String>,

    /// Scheduling niceness of the tracer's threads (0-19): under CPU contention the traced
    /// programs and their clients run first; spans that then cannot be read in time are
    /// dropped and counted. While it keeps up, the span path waits in the idle scheduling
    /// class instead, and takes this niceness back when it falls behind.
    #[arg(long, env = "TRACER_NICE", value_name = "N", default_value_t = DEFAULT_NICE,
          value_parser = clap::value_parser!(i32).range(0..=19))]
    pub nice: i32,

    /// Follow every goroutine creation, so that HTTP calls anywhere down a handler's
    /// goroutine tree are children of its span (costs one probe hit per `go` statement).
    #[arg(long)]
    pub track_goroutines: bool,

    /// Where probes go: `cheapest` (the default), or `entry-and-returns`, as other eBPF
    /// tracers place them (slow; for comparison by `cargo xtask bench`).
    #[arg(long, value_enum, default_value_t = Placement::Cheapest, hide = true)]
    pub placement: Placement,

    /// Start this command and trace it.
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ExporterKind {
    Stdout,
    Otlp,
    Zipkin,
}

impl ExporterKind {
    pub fn name(self) -> &'static str {
        match self {
            Self::Stdout => "stdout",
            Self::Otlp => "otlp",
            Self::Zipkin => "zipkin",
        }
    }

    /// Its count in the summary when several exporters run.
    pub fn exported_counter(self) -> &'static str {
        match self {
            Self::Stdout => "exported_stdout",
            Self::Otlp => "exported_otlp",
            Self::Zipkin => "exported_zipkin",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OtlpCompression {
    Gzip,
    None,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OtlpProtocol {
    Grpc,
    #[value(name = "http/protobuf")]
    HttpProtobuf,
}

/// A command line that parses but cannot be carried out (exit code 2).
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum UsageError {
    #[error("nothing to trace: give --pid, --binary, --all or -- COMMAND")]
    NoTarget,
    #[error("give only one of --pid, --binary, --all and -- COMMAND")]
    SeveralModes,
    #[error("{name} must be {expected}, got {value:?}")]
    BadValue {
        name: String,
        value: String,
        expected: &'static str,
    },
    #[error("--sample-ratio must be between 0 and 1, got {0}")]
    SampleRatio(f64),
    #[error("OTEL_TRACES_SAMPLER_ARG must be a number between 0 and 1, got {0:?}")]
    SamplerArg(String),
}

/// A validated configuration.
/// What to trace.
#[derive(Clone, Debug, PartialEq)]
pub enum Mode {
    /// These running processes (sorted, without repeats).
    Pids(Vec<u32>),
    /// Every process running these executables, now and later.
    Binaries(Vec<std::path::PathBuf>),
    /// Every supported process the filter lets through, now and later.
    All(Filter),
    /// A command the tracer starts: program and arguments.
    Command(Vec<String>),
}

/// Which processes `--all` traces: globs on the executable path, or with a prefix on the
/// container (`container:`: its Kubernetes name or its id), the pod (`pod:`) or the
/// namespace (`namespace:`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Filter {
    pub include: Vec<String>,
    pub exclude: Vec<String>,
}

/// The prefixes of the globs on Kubernetes metadata.
const POD_FIELDS: [&str; 3] = ["container:", "pod:", "namespace:"];

/// What is known of a process when the filter looks at it.
#[derive(Clone, Copy, Debug, Default)]
pub struct Facts<'a> {
    pub exe: &'a str,
    pub container_id: Option<&'a str>,
    pub container_name: Option<&'a str>,
    pub pod: Option<&'a str>,
    pub namespace: Option<&'a str>,
    /// False while its pod may still become known (a container whose pod metadata has
    /// not arrived yet): a glob on what is missing then says neither yes nor no.
    pub complete: bool,
}

impl Filter {
    /// Whether a process is traced; `None` when it depends on what is not known yet.
    pub fn admits(&self, facts: &Facts) -> Option<bool> {
        let included = if self.include.is_empty() {
            Some(true)
        } else {
            any(&self.include, facts)
        };
        let excluded = any(&self.exclude, facts);
        match (included, excluded) {
            (Some(false), _) | (_, Some(true)) => Some(false),
            (Some(true), Some(false)) => Some(true),
            _ => None,
        }
    }

    /// Whether some pattern looks at Kubernetes metadata.
    pub fn needs_pods(&self) -> bool {
        self.include
            .iter()
            .chain(&self.exclude)
            .any(|p| POD_FIELDS.iter().any(|k| p.starts_with(k)))
    }
}

/// Whether any of `patterns` matches (three-valued: `None` when none does for sure and
/// one might).
fn any(patterns: &[String], facts: &Facts) -> Option<bool> {
    let mut unknown = false;
    for pattern in patterns {
        match matches(pattern, facts) {
            Some(true) => return Some(true),
            Some(false) => {}
            None => unknown = true,
        }
    }
    (!unknown).then_some(false)
}

/// Whether `pattern` matches the process `facts` describes, if that is known.
fn matches(pattern: &str, facts: &Facts) -> Option<bool> {
    let known = |value: Option<&str>, glob: &str| match value {
        Some(value) => Some(glob_match(glob, value)),
        None => facts.complete.then_some(false),
    };
    if let Some(glob) = pattern.strip_prefix("container:") {
        if facts.container_id.is_some_and(|id| glob_match(glob, id)) {
            return Some(true);
        }
        known(facts.container_name, glob)
    } else if let Some(glob) = pattern.strip_prefix("pod:") {
        known(facts.pod, glob)
    } else if let Some(glob) = pattern.strip_prefix("namespace:") {
        known(facts.namespace, glob)
    } else {
        Some(glob_match(pattern, facts.exe))
    }
}

/// Whether `text` matches the glob `pattern`: `?` is one character and `*` any run of
/// characters other than `/`; `**` any run at all.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    // Positions in `p` reachable after consuming a prefix of `t`, one text char at a time.
    let mut states = vec![false; p.len() + 1];
    states[0] = true;
    let close = |states: &mut Vec<bool>| {
        // A star matches the empty run.
        for i in 0..p.len() {
            if states[i] && p[i] == '*' {
                states[i + 1] = true;
            }
        }
    };
    close(&mut states);
    for &c in &t {
        let mut next = vec![false; p.len() + 1];
        for i in 0..p.len() {
            if !states[i] {
                continue;
            }
            match p[i] {
                '*' => {
                    let double = p.get(i + 1) == Some(&'*') || (i > 0 && p[i - 1] == '*');
                    if c != '/' || double {
                        next[i] = true;
                    }
                }
                '?' if c != '/' => next[i + 1] = true,
                literal if literal == c => next[i + 1] = true,
                _ => {}
            }
        }
        close(&mut next);
        states = next;
    }
    states[p.len()]
}

#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub mode: Mode,
    pub format: Format,
    pub service_name: Option<String>,
    pub read_only: bool,
    /// Fraction of traces kept, by trace id.
    pub sample_ratio: f64,
    /// Whether a caller's sampling decision wins over the ratio.
    pub parent_based: bool,
    pub capture_query: bool,
    pub nice: i32,
    pub track_goroutines: bool,
    pub placement: Placement,
    pub kubernetes: Kubernetes,
    pub export: Settings,
    /// `OTEL_RESOURCE_ATTRIBUTES`: on every resource.
    pub resource_attributes: Vec<(String, String)>,
}

/// Where Kubernetes metadata comes from (see [`crate::kube`]).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Kubernetes {
    pub pods_url: Option<String>,
    pub node_name: Option<String>,
    pub token_file: Option<std::path::PathBuf>,
    pub ca_file: Option<std::path::PathBuf>,
}

impl Default for Config {
    /// What an empty command line would mean, with no target.
    fn default() -> Self {
        Self {
            mode: Mode::Pids(Vec::new()),
            format: Format::Json,
            service_name: None,
            read_only: false,
            sample_ratio: 1.0,
            parent_based: true,
            capture_query: false,
            nice: DEFAULT_NICE,
            track_goroutines: false,
            placement: Placement::Cheapest,
            kubernetes: Kubernetes::default(),
            export: Settings::default(),
            resource_attributes: Vec::new(),
        }
    }
}

impl Cli {
    /// Validates the command line. `stdout_is_terminal` picks the default format and
    /// `env` reads the environment (OTEL_TRACES_SAMPLER / _ARG).
    pub fn into_config(
        self,
        stdout_is_terminal: bool,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, UsageError> {
        let modes = [
            !self.pids.is_empty(),
            !self.binaries.is_empty(),
            self.all,
            !self.command.is_empty(),
        ];
        match modes.iter().filter(|&&m| m).count() {
            0 => return Err(UsageError::NoTarget),
            1 => {}
            _ => return Err(UsageError::SeveralModes),
        }
        let export = Settings::resolve(
            Flags {
                exporters: self.exporters,
                otlp_endpoint: self.otlp_endpoint.filter(|e| !e.trim().is_empty()),
                otlp_protocol: self.otlp_protocol,
                otlp_headers: self.otlp_headers,
                otlp_compression: self.otlp_compression,
                otlp_timeout_ms: self.otlp_timeout,
                otlp_certificate: self.otlp_certificate,
                zipkin_endpoint: Some(self.zipkin_endpoint),
                metrics_addr: self.metrics_addr,
            },
            &env,
        )?;
        let resource_attributes = match env("OTEL_RESOURCE_ATTRIBUTES") {
            Some(text) => parse_pairs(&text).ok_or_else(|| UsageError::BadValue {
                name: "OTEL_RESOURCE_ATTRIBUTES".into(),
                value: text.clone(),
                expected: "key=value,...",
            })?,
            None => Vec::new(),
        };
        let (sample_ratio, parent_based) = sampler(self.sample_ratio, &env)?;
        let mode = if self.all {
            Mode::All(Filter {
                include: self.include,
                exclude: self.exclude,
            })
        } else if !self.binaries.is_empty() {
            Mode::Binaries(self.binaries)
        } else if !self.command.is_empty() {
            Mode::Command(self.command)
        } else {
            let mut pids = self.pids;
            pids.sort_unstable();
            pids.dedup();
            Mode::Pids(pids)
        };
        Ok(Config {
            mode,
            format: self.format.unwrap_or(if stdout_is_terminal {
                Format::Text
            } else {
                Format::Json
            }),
            service_name: self.service_name.filter(|s| !s.is_empty()),
            read_only: self.read_only,
            sample_ratio,
            parent_based,
            capture_query: self.capture_query,
            nice: self.nice,
            track_goroutines: self.track_goroutines,
            placement: self.placement,
            kubernetes: Kubernetes {
                pods_url: self.kube_pods_url.filter(|s| !s.is_empty()),
                node_name: self.node_name.filter(|s| !s.is_empty()),
                token_file: self.kube_token_file,
                ca_file: self.kube_ca_file,
            },
            export,
            resource_attributes,
        })
    }
}

/// The sampler: `--sample-ratio` (parent-based), else `OTEL_TRACES_SAMPLER` and
/// `OTEL_TRACES_SAMPLER_ARG`, else every trace (parent-based); `(ratio, parent_based)`.
fn sampler(
    flag: Option<f64>,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<(f64, bool), UsageError> {
    if let Some(r) = flag {
        return if (0.0..=1.0).contains(&r) {
            Ok((r, true))
        } else {
            Err(UsageError::SampleRatio(r))
        };
    }
    let ratio = || match env("OTEL_TRACES_SAMPLER_ARG") {
        None => Ok(1.0),
        Some(arg) => match arg.trim().parse::<f64>() {
            Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
            _ => Err(UsageError::SamplerArg(arg)),
        },
    };
    let name = env("OTEL_TRACES_SAMPLER").unwrap_or_default();
    Ok(match name.trim() {
        "" | "parentbased_always_on" => (1.0, true),
        "parentbased_always_off" => (0.0, true),
        "parentbased_traceidratio" => (ratio()?, true),
        "always_on" => (1.0, false),
        "always_off" => (0.0, false),
        "traceidratio" => (ratio()?, false),
        _ => {
            return Err(UsageError::BadValue {
                name: "OTEL_TRACES_SAMPLER".into(),
                value: name,
                expected: "always_on, always_off, traceidratio or parentbased_*",
            });
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Config, UsageError> {
        let cli = Cli::try_parse_from(std::iter::once("tracer").chain(args.iter().copied()))
            .expect("parses");
        cli.into_config(false, |_| None)
    }

    #[test]
    fn pid_mode_defaults() {
        let config = parse(&["--pid", "42", "--pid", "42"]).expect("valid");
        assert_eq!(config.mode, Mode::Pids(vec![42]));
        assert_eq!(config.format, Format::Json);
        assert_eq!(config.sample_ratio, 1.0);
        assert!(!config.capture_query);
        assert_eq!(config.nice, DEFAULT_NICE);
        assert_eq!(parse(&["--pid", "1", "--nice", "0"]).map(|c| c.nice), Ok(0));
    }

    #[test]
    fn usage_errors() {
        assert_eq!(parse(&[]), Err(UsageError::NoTarget));
        assert_eq!(
            parse(&["--pid", "1", "--all"]),
            Err(UsageError::SeveralModes)
        );
        assert_eq!(
            parse(&["--pid", "1", "--sample-ratio", "2"]),
            Err(UsageError::SampleRatio(2.0))
        );
        assert!(Cli::try_parse_from(["tracer", "--pid", "abc"]).is_err());
        assert!(Cli::try_parse_from(["tracer", "--pid", "1", "--nice", "20"]).is_err());
        assert!(Cli::try_parse_from(["tracer", "--pid", "1", "--nice", "-5"]).is_err());
    }

    #[test]
    fn modes() {
        let mode = |args: &[&str]| parse(args).map(|c| c.mode);
        assert_eq!(
            mode(&["--binary", "/srv/a", "--binary", "/srv/b"]),
            Ok(Mode::Binaries(vec!["/srv/a".into(), "/srv/b".into()]))
        );
        assert_eq!(
            mode(&["--all", "--include", "/srv/**", "--exclude", "*/debug"]),
            Ok(Mode::All(Filter {
                include: vec!["/srv/**".into()],
                exclude: vec!["*/debug".into()],
            }))
        );
        assert_eq!(
            mode(&["--", "/srv/a", "-addr", ":80"]),
            Ok(Mode::Command(vec![
                "/srv/a".into(),
                "-addr".into(),
                ":80".into()
            ]))
        );
        assert!(Cli::try_parse_from(["tracer", "--pid", "1", "--include", "x"]).is_err());
    }

    #[test]
    fn filters_by_executable_path() {
        assert!(glob_match("/srv/*", "/srv/shop"));
        assert!(!glob_match("/srv/*", "/srv/shop/bin"));
        assert!(glob_match("/srv/**", "/srv/shop/bin"));
        assert!(glob_match("**/shop", "/srv/x/shop"));
        assert!(glob_match("/srv/sho?", "/srv/shop"));
        assert!(!glob_match("/srv/sho?", "/srv/sho"));
        assert!(glob_match("*", ""));
        assert!(!glob_match("/a", "/b"));
        let filter = Filter {
            include: vec!["/srv/**".into()],
            exclude: vec!["**/debug-*".into()],
        };
        let exe = |exe| Facts {
            exe,
            complete: true,
            ..Facts::default()
        };
        assert_eq!(filter.admits(&exe("/srv/shop")), Some(true));
        assert_eq!(filter.admits(&exe("/srv/x/debug-shop")), Some(false));
        assert_eq!(filter.admits(&exe("/usr/bin/caddy")), Some(false));
        assert_eq!(Filter::default().admits(&exe("/anything")), Some(true));
        assert!(!filter.needs_pods());
    }

    #[test]
    fn filters_by_container_pod_and_namespace() {
        let filter = Filter {
            include: vec!["namespace:shop-*".into(), "container:3f4a*".into()],
            exclude: vec!["pod:*-canary-*".into(), "container:istio-proxy".into()],
        };
        assert!(filter.needs_pods());
        let pod = Facts {
            exe: "/app/server",
            container_id: Some("0123"),
            container_name: Some("app"),
            pod: Some("web-7d9f-x1"),
            namespace: Some("shop-prod"),
            complete: true,
        };
        assert_eq!(filter.admits(&pod), Some(true));
        let canary = Facts {
            pod: Some("web-canary-x2"),
            ..pod
        };
        assert_eq!(filter.admits(&canary), Some(false));
        let sidecar = Facts {
            container_name: Some("istio-proxy"),
            ..pod
        };
        assert_eq!(filter.admits(&sidecar), Some(false));
        let other_namespace = Facts {
            namespace: Some("kube-system"),
            ..pod
        };
        assert_eq!(filter.admits(&other_namespace), Some(false));
        // A container whose pod is not known yet: undecided, unless its id decides.
        let pending = Facts {
            exe: "/app/server",
            container_id: Some("0123"),
            complete: false,
            ..Facts::default()
        };
        assert_eq!(filter.admits(&pending), None);
        let by_id = Facts {
            container_id: Some("3f4a8c"),
            ..pending
        };
        assert_eq!(
            filter.admits(&Facts {
                complete: true,
                ..by_id
            }),
            Some(true)
        );
        assert_eq!(filter.admits(&by_id), None, "an exclusion may still apply");
        // Not in a container, or no metadata to wait for: decided.
        let host = Facts {
            exe: "/usr/bin/x",
            complete: true,
            ..Facts::default()
        };
        assert_eq!(filter.admits(&host), Some(false));
    }

    #[test]
    fn sampler_from_environment() {
        let cli = Cli::try_parse_from(["tracer", "--pid", "1"]).expect("parses");
        let env = |k: &str| match k {
            "OTEL_TRACES_SAMPLER" => Some("parentbased_traceidratio".to_owned()),
            "OTEL_TRACES_SAMPLER_ARG" => Some("0.25".to_owned()),
            _ => None,
        };
        let config = cli.into_config(true, env).expect("valid");
        assert_eq!((config.sample_ratio, config.parent_based), (0.25, true));
        let sampler = |name: &str| {
            let cli = Cli::try_parse_from(["tracer", "--pid", "1"]).expect("parses");
            let name = name.to_owned();
            cli.into_config(true, move |k: &str| {
                (k == "OTEL_TRACES_SAMPLER").then(|| name.clone())
            })
            .map(|c| (c.sample_ratio, c.parent_based))
        };
        assert_eq!(sampler("always_off"), Ok((0.0, false)));
        assert_eq!(sampler("traceidratio"), Ok((1.0, false)));
        assert_eq!(sampler("parentbased_always_off"), Ok((0.0, true)));
        assert!(sampler("jaeger_remote").is_err());
    }
}
