//! The traps alone: the kernel's own uprobe events (tracefs, no BPF program) on the two
//! instructions where the tracer starts and ends a server span, with recording off, so
//! that a request pays the two traps, the uprobe dispatch and an empty handler, and
//! nothing else: the floor any uprobe tracer with that placement stands on
//! (<https://docs.kernel.org/trace/uprobetracer.html>).
use std::fs;
use std::path::Path;
use std::process::Command;

use anyhow::{Context as _, Result, bail};
use object::{Object as _, ObjectSegment as _, ObjectSymbol as _};

use crate::tracer_bin;

const TRACEFS: &str = "/sys/kernel/tracing";
/// The event group of the bench's uprobe events.
const GROUP: &str = "tracer_bench";

/// What the tracer's `doctor` says each of the two probes does.
const START: &str = ": start of server spans";
const END: &str = ": end of server spans";

/// Where the tracer puts a server span's start and end in `binary`: `SYMBOL+0xOFFSET`
/// each, from `tracer doctor --binary`.
pub fn server_probes(binary: &Path) -> Result<[String; 2]> {
    let output = Command::new(tracer_bin())
        .args(["doctor", "--binary"])
        .arg(binary)
        .output()
        .context("run tracer doctor")?;
    let text = String::from_utf8_lossy(&output.stdout);
    let find = |what: &str| {
        text.lines()
            .find(|line| line.ends_with(what))
            .and_then(|line| line.trim().split(' ').next())
            .map(str::to_owned)
            .with_context(|| format!("tracer doctor names no probe for {what:?}:\n{text}"))
    };
    Ok([find(START)?, find(END)?])
}

/// The file offset of `probe` (`SYMBOL+0xOFFSET`) in `binary`.
fn file_offset(data: &[u8], probe: &str) -> Result<u64> {
    let (symbol, offset) = probe
        .rsplit_once("+0x")
        .with_context(|| format!("not SYMBOL+0xOFFSET: {probe}"))?;
    let offset = u64::from_str_radix(offset, 16).with_context(|| format!("offset of {probe}"))?;
    let file = object::File::parse(data).context("parse the binary")?;
    let address = file
        .symbols()
        .find(|s| s.name() == Ok(symbol))
        .with_context(|| format!("no symbol {symbol}"))?
        .address()
        + offset;
    for segment in file.segments() {
        let (start, size) = (segment.address(), segment.size());
        if (start..start + size).contains(&address) {
            let (file_start, _) = segment.file_range();
            return Ok(address - start + file_start);
        }
    }
    bail!("{probe} ({address:#x}) is in no segment")
}

/// Uprobe events on the two points, enabled while this lives; removed on drop, and the
/// trace buffer's switch put back.
pub struct Events {
    tracing_on: String,
}

impl Events {
    pub fn enable(binary: &Path, probes: &[String; 2]) -> Result<Self> {
        if !Path::new(TRACEFS).join("uprobe_events").exists() {
            let status = Command::new("mount")
                .args(["-t", "tracefs", "nodev", TRACEFS])
                .status()
                .context("mount tracefs")?;
            if !status.success() {
                bail!("mount -t tracefs nodev {TRACEFS}: {status}");
            }
        }
        let data = fs::read(binary).with_context(|| format!("read {}", binary.display()))?;
        let mut definitions = String::new();
        for (i, probe) in probes.iter().enumerate() {
            let offset = file_offset(&data, probe)?;
            definitions.push_str(&format!(
                "p:{GROUP}/p{i} {}:{offset:#x}\n",
                binary.display()
            ));
        }
        // Hits are not recorded: the trace buffer stays off.
        let tracing_on =
            fs::read_to_string(Path::new(TRACEFS).join("tracing_on")).context("read tracing_on")?;
        write("tracing_on", "0")?;
        let events = Self {
            tracing_on: tracing_on.trim().to_owned(),
        };
        append("uprobe_events", &definitions)?;
        write(&format!("events/{GROUP}/enable"), "1")?;
        Ok(events)
    }
}

impl Drop for Events {
    fn drop(&mut self) {
        let _ = write(&format!("events/{GROUP}/enable"), "0");
        for i in 0..2 {
            let _ = append("uprobe_events", &format!("-:{GROUP}/p{i}\n"));
        }
        let _ = write("tracing_on", &self.tracing_on);
    }
}

fn write(file: &str, value: &str) -> Result<()> {
    let path = Path::new(TRACEFS).join(file);
    fs::write(&path, value).with_context(|| format!("write {value:?} to {}", path.display()))
}

fn append(file: &str, text: &str) -> Result<()> {
    use std::io::Write as _;
    let path = Path::new(TRACEFS).join(file);
    fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .with_context(|| format!("write {text:?} to {}", path.display()))
}
