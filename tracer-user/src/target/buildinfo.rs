//! The Go build information every Go binary carries since Go 1.13, in the section
//! `.go.buildinfo` (or, in a binary whose section headers are gone, found by its magic).
//! Since Go 1.18 the version and module strings are stored inline after a 32-byte header,
//! each prefixed with its length as a uvarint.
//! See <https://go.dev/src/debug/buildinfo/buildinfo.go>.

/// The 14 bytes the build information starts with.
const MAGIC: &[u8] = b"\xff Go buildinf:";
/// Header flag: strings are inline (Go >= 1.18) rather than pointers.
const FLAG_INLINE: u8 = 0x2;
const HEADER_LEN: usize = 32;

/// Errors reading the build information.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BuildInfoError {
    #[error("no Go build information")]
    Missing,
    #[error(
        "Go build information in the pre-1.18 format: Go versions before 1.18 are not supported"
    )]
    OldFormat,
    #[error("Go build information is truncated or corrupt")]
    Corrupt,
}

/// What the build information says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuildInfo {
    /// The toolchain version, e.g. `go1.24.11`.
    pub go_version: String,
    /// The main module path, when the binary was built in module mode.
    pub main_module: Option<String>,
    /// The modules it depends on: `(path, version)`, from the `dep` lines.
    pub dependencies: Vec<(String, String)>,
    /// The build settings: `(key, value)` from the `build` lines, e.g.
    /// `("CGO_ENABLED", "1")`, `("-buildmode", "pie")`, `("-ldflags", "-s -w")`.
    pub settings: Vec<(String, String)>,
}

impl BuildInfo {
    /// The value of build setting `key`, if recorded.
    pub fn setting(&self, key: &str) -> Option<&str> {
        self.settings
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Parses build information from the `.go.buildinfo` section, or from the whole file
/// when `section` is `None`.
pub fn parse(section: Option<&[u8]>, file: &[u8]) -> Result<BuildInfo, BuildInfoError> {
    let data = match section {
        Some(section) => section,
        None => {
            let at = find(file, MAGIC).ok_or(BuildInfoError::Missing)?;
            &file[at..]
        }
    };
    let at = find(data, MAGIC).ok_or(BuildInfoError::Missing)?;
    let header = data
        .get(at..at + HEADER_LEN)
        .ok_or(BuildInfoError::Corrupt)?;
    if header[15] & FLAG_INLINE == 0 {
        return Err(BuildInfoError::OldFormat);
    }
    let mut rest = &data[at + HEADER_LEN..];
    let version =
        String::from_utf8(read_bytes(&mut rest)?.to_vec()).map_err(|_| BuildInfoError::Corrupt)?;
    let modinfo = read_bytes(&mut rest).map(strip_markers).unwrap_or_default();
    let modinfo = String::from_utf8_lossy(modinfo);
    if !version.starts_with("go") {
        return Err(BuildInfoError::Corrupt);
    }
    Ok(BuildInfo {
        go_version: version,
        main_module: main_module(&modinfo),
        dependencies: dependencies(&modinfo),
        settings: settings(&modinfo),
    })
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn read_uvarint(data: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for (i, &byte) in data.iter().enumerate().take(10) {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            *data = &data[i + 1..];
            return Some(value);
        }
    }
    None
}

fn read_bytes<'a>(data: &mut &'a [u8]) -> Result<&'a [u8], BuildInfoError> {
    let len = read_uvarint(data).ok_or(BuildInfoError::Corrupt)? as usize;
    let bytes = data.get(..len).ok_or(BuildInfoError::Corrupt)?;
    *data = &data[len..];
    Ok(bytes)
}

/// The module information is framed by 16 marker bytes on each side (not UTF-8), which
/// `debug/buildinfo` strips the same way.
fn strip_markers(modinfo: &[u8]) -> &[u8] {
    let len = modinfo.len();
    if len >= 33 && modinfo[len - 17] == b'\n' {
        &modinfo[16..len - 16]
    } else {
        modinfo
    }
}

/// The `mod` line of the module information (`path\tmod\tPATH\tVERSION...`).
fn main_module(modinfo: &str) -> Option<String> {
    modinfo.lines().find_map(|line| {
        let mut fields = line.split('\t');
        match (fields.next(), fields.next()) {
            (Some("mod"), Some(path)) => Some(path.to_owned()),
            _ => None,
        }
    })
}

/// The `dep` lines of the module information (`dep\tPATH\tVERSION\tSUM`).
fn dependencies(modinfo: &str) -> Vec<(String, String)> {
    modinfo
        .lines()
        .filter_map(|line| {
            let mut fields = line.split('\t');
            match (fields.next(), fields.next(), fields.next()) {
                (Some("dep"), Some(path), Some(version)) => {
                    Some((path.to_owned(), version.to_owned()))
                }
                _ => None,
            }
        })
        .collect()
}

/// The `build` lines of the module information (`build\tKEY=VALUE`; a value with spaces
/// is quoted).
fn settings(modinfo: &str) -> Vec<(String, String)> {
    modinfo
        .lines()
        .filter_map(|line| {
            let (key, value) = line.strip_prefix("build\t")?.split_once('=')?;
            let value = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(value);
            Some((key.to_owned(), value.to_owned()))
        })
        .collect()
}

/// A Go version as (major, minor, patch), parsed from `go1.24.11`, `go1.19`, `go1.27rc1`.
pub fn parse_version(version: &str) -> Option<(u32, u32, u32)> {
    let rest = version.strip_prefix("go")?;
    let mut parts = rest.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor_text = parts.next()?;
    let digits: String = minor_text
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    let minor = digits.parse().ok()?;
    let patch = parts
        .next()
        .and_then(|p| {
            p.chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>()
                .parse()
                .ok()
        })
        .unwrap_or(0);
    Some((major, minor, patch))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inline_info(version: &str, modinfo: &str) -> Vec<u8> {
        let mut data = b"junk".to_vec();
        data.extend_from_slice(MAGIC);
        data.push(8);
        data.push(FLAG_INLINE);
        data.resize(data.len() + 16, 0);
        for s in [version, modinfo] {
            data.push(s.len() as u8);
            data.extend_from_slice(s.as_bytes());
        }
        data
    }

    #[test]
    fn parses_inline_strings() {
        let data = inline_info("go1.24.11", "path\tfixture/x\nmod\tfixture/x\t(devel)\t\n");
        let info = parse(Some(&data), &[]).expect("parse");
        assert_eq!(info.go_version, "go1.24.11");
        assert_eq!(info.main_module.as_deref(), Some("fixture/x"));
    }

    #[test]
    fn reads_dependencies_and_build_settings() {
        let modinfo = "path\tx\nmod\tx\t(devel)\t\ndep\tgolang.org/x/net\tv0.1.0\th1:abc=\n\
                       build\t-buildmode=pie\nbuild\t-ldflags=\"-s -w\"\nbuild\tCGO_ENABLED=1\n";
        let info = parse(Some(&inline_info("go1.24.11", modinfo)), &[]).expect("parse");
        assert_eq!(
            info.dependencies,
            vec![("golang.org/x/net".to_owned(), "v0.1.0".to_owned())]
        );
        assert_eq!(info.setting("-buildmode"), Some("pie"));
        assert_eq!(info.setting("-ldflags"), Some("-s -w"));
        assert_eq!(info.setting("CGO_ENABLED"), Some("1"));
        assert_eq!(info.setting("GOOS"), None);
    }

    #[test]
    fn strips_module_markers() {
        let marker = [
            0x30u8, 0x77, 0xaf, 0x0c, 0x92, 0x74, 0x08, 0x02, 0x41, 0xe1, 0xc1, 0x07, 0xe6, 0xd6,
            0x18, 0xe6,
        ];
        let mut modinfo = marker.to_vec();
        modinfo.extend_from_slice(b"path\tfixture/x\nmod\tfixture/x\t(devel)\t\n");
        modinfo.extend_from_slice(&marker);
        let mut data = b"junk".to_vec();
        data.extend_from_slice(MAGIC);
        data.push(8);
        data.push(FLAG_INLINE);
        data.resize(data.len() + 16, 0);
        data.push(9);
        data.extend_from_slice(b"go1.24.11");
        data.push(modinfo.len() as u8);
        data.extend_from_slice(&modinfo);
        let info = parse(Some(&data), &[]).expect("parse");
        assert_eq!(info.main_module.as_deref(), Some("fixture/x"));
    }

    #[test]
    fn finds_magic_without_section() {
        let data = inline_info("go1.19.8", "");
        assert_eq!(parse(None, &data).expect("parse").go_version, "go1.19.8");
    }

    #[test]
    fn rejects_non_go_and_corrupt_data() {
        assert_eq!(
            parse(None, b"\x7fELF plain C program"),
            Err(BuildInfoError::Missing)
        );
        let mut data = inline_info("go1.24.11", "");
        data.truncate(data.len() - 4);
        assert_eq!(parse(Some(&data), &[]), Err(BuildInfoError::Corrupt));
        let mut old = inline_info("go1.17", "");
        old[4 + 15] = 0;
        assert_eq!(parse(Some(&old), &[]), Err(BuildInfoError::OldFormat));
    }

    #[test]
    fn parses_versions() {
        assert_eq!(parse_version("go1.24.11"), Some((1, 24, 11)));
        assert_eq!(parse_version("go1.19"), Some((1, 19, 0)));
        assert_eq!(parse_version("go1.27rc1"), Some((1, 27, 0)));
        assert_eq!(parse_version("devel"), None);
    }
}
