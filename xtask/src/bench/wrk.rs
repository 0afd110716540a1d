//! Runs Debian's `wrk` on CPU 1 against a loopback URL and reads its report.

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

use crate::process::Running;

/// How long past its own duration wrk may take before it is killed.
const GRACE: Duration = Duration::from_secs(15);

/// One wrk load: threads, connections, seconds.
#[derive(Clone, Copy)]
pub struct Load {
    pub threads: u32,
    pub connections: u32,
    pub seconds: u32,
}

impl Load {
    /// The wrk arguments for this load, with the latency distribution.
    pub fn args(&self) -> Vec<String> {
        vec![
            format!("-t{}", self.threads),
            format!("-c{}", self.connections),
            format!("-d{}s", self.seconds),
            "--latency".to_owned(),
        ]
    }
}

/// What wrk reported.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    pub requests: u64,
    pub rps: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    /// `Socket errors: ...` and `Non-2xx or 3xx responses: ...` lines, if any.
    pub errors: Vec<String>,
}

/// Runs wrk pinned to CPU 1 against `http://addr/` and parses its report.
pub fn run(addr: SocketAddr, load: Load) -> Result<Report> {
    let mut wrk = Running::spawn(
        "wrk",
        Command::new("taskset")
            .args(["-c", "1", "wrk"])
            .args(load.args())
            .arg(format!("http://{addr}/"))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    )?;
    let deadline = Instant::now() + Duration::from_secs(load.seconds.into()) + GRACE;
    let status = wrk.wait(deadline)?;
    let output = wrk.stdout()?.drain(deadline).join("\n");
    if !status.success() {
        bail!("wrk failed ({status}):\n{output}");
    }
    parse(&output).with_context(|| format!("unexpected wrk output:\n{output}"))
}

/// Reads wrk's report (printed with `--latency`).
pub fn parse(output: &str) -> Result<Report> {
    let mut requests = None;
    let mut rps = None;
    let mut p50_us = None;
    let mut p99_us = None;
    let mut errors = Vec::new();
    for line in output.lines().map(str::trim) {
        if let Some(value) = line.strip_prefix("Requests/sec:") {
            rps = Some(value.trim().parse::<f64>()?);
        } else if let Some(value) = line.strip_prefix("50%") {
            p50_us = Some(micros(value.trim())?);
        } else if let Some(value) = line.strip_prefix("99%") {
            p99_us = Some(micros(value.trim())?);
        } else if let Some((count, _)) = line.split_once(" requests in ") {
            requests = Some(count.trim().parse::<u64>()?);
        } else if line.starts_with("Socket errors:") || line.starts_with("Non-2xx") {
            errors.push(line.to_owned());
        }
    }
    Ok(Report {
        requests: requests.context("no `N requests in` line")?,
        rps: rps.context("no `Requests/sec:` line")?,
        p50_us: p50_us.context("no 50% latency line")?,
        p99_us: p99_us.context("no 99% latency line")?,
        errors,
    })
}

/// A wrk duration (`52.00us`, `1.10ms`, `2.00s`, `1.00m`) in microseconds.
fn micros(value: &str) -> Result<f64> {
    let split = value
        .find(|c: char| c.is_ascii_alphabetic())
        .with_context(|| format!("no unit in {value:?}"))?;
    let (number, unit) = value.split_at(split);
    let number: f64 = number
        .parse()
        .with_context(|| format!("bad number in {value:?}"))?;
    let scale = match unit {
        "us" => 1.0,
        "ms" => 1e3,
        "s" => 1e6,
        "m" => 60e6,
        "h" => 3600e6,
        _ => bail!("unknown unit in {value:?}"),
    };
    Ok(number * scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUTPUT: &str = "\
Running 5s test @ http://127.0.0.1:40000/
  2 threads and 50 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.23ms  456.00us  10.00ms   80.00%
    Req/Sec    20.00k     1.00k   22.00k    70.00%
  Latency Distribution
     50%    1.10ms
     75%    1.50ms
     90%    2.00ms
     99%   52.00us
  200123 requests in 5.00s, 24.00MB read
  Socket errors: connect 0, read 3, write 0, timeout 0
Requests/sec:  40024.60
Transfer/sec:      4.80MB
";

    #[test]
    fn parses_a_report() {
        let report = parse(OUTPUT).ok();
        assert_eq!(
            report,
            Some(Report {
                requests: 200_123,
                rps: 40024.60,
                p50_us: 1100.0,
                p99_us: 52.0,
                errors: vec!["Socket errors: connect 0, read 3, write 0, timeout 0".to_owned()],
            })
        );
    }

    #[test]
    fn rejects_a_truncated_report() {
        assert!(parse("Running 5s test @ http://127.0.0.1:1/\n").is_err());
    }

    #[test]
    fn converts_units() {
        assert_eq!(micros("2.00s").ok(), Some(2e6));
        assert_eq!(micros("750.00us").ok(), Some(750.0));
        assert!(micros("3.0parsecs").is_err());
        assert!(micros("12").is_err());
    }
}
