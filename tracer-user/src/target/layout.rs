//! Struct member offsets from wherever the binary lets us find them, each with its source:
//! DWARF when present (it always wins), else the Go type descriptors the binary carries for
//! its own runtime ([`super::derive`]), else a table generated from the DWARF of reference
//! programs built by each Go release ([`table`], written by `cargo xtask offsets`).
use std::collections::HashMap;

use super::dwarf::Offsets;

mod table;

/// Where an offset came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Source {
    /// The binary's own DWARF.
    Dwarf,
    /// The binary's Go type descriptors.
    Derived,
    /// The table of known Go releases.
    Table,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Source::Dwarf => "DWARF",
            Source::Derived => "type descriptors",
            Source::Table => "table",
        })
    }
}

/// The layouts of one Go release in the table.
pub struct Release {
    /// The exact Go version of the toolchain that built the reference program.
    pub go: &'static str,
    /// `(struct, member, offset)`; [`super::dwarf::SIZE`] as a member is the struct's size.
    pub members: &'static [(&'static str, &'static str, u64)],
}

/// Every release in the table, oldest first.
pub fn releases() -> &'static [Release] {
    table::RELEASES
}

/// The command that generated the table.
pub const TABLE_COMMAND: &str = table::GENERATED_BY;

/// The table's entry for Go `version` (as in the build information, `go1.24.11`): the same
/// release, else the newest of the same minor version (patch releases keep struct layouts
/// of the standard library), else none.
pub fn release(version: &str) -> Option<&'static Release> {
    let wanted = super::buildinfo::parse_version(version)?;
    if let Some(exact) = releases()
        .iter()
        .find(|r| super::buildinfo::parse_version(r.go) == Some(wanted))
    {
        return Some(exact);
    }
    releases().iter().rev().find(|r| {
        super::buildinfo::parse_version(r.go)
            .is_some_and(|(major, minor, _)| (major, minor) == (wanted.0, wanted.1))
    })
}

/// Offsets with the source of each.
#[derive(Debug, Default, Clone)]
pub struct Layouts {
    pub offsets: Offsets,
    pub sources: HashMap<(String, String), Source>,
    /// The table entry used, if any.
    pub release: Option<&'static str>,
}

impl Layouts {
    /// Adds the offsets of `found` not known yet, marked `source`.
    pub fn fill(&mut self, found: Offsets, source: Source) {
        for (key, offset) in found {
            if !self.offsets.contains_key(&key) {
                self.sources.insert(key.clone(), source);
                self.offsets.insert(key, offset);
            }
        }
    }

    /// Adds the members of `wanted` that the table has for `release` and that are not
    /// known yet; notes the release if any was.
    pub fn fill_from_table(&mut self, release: &'static Release, wanted: &[(&str, &[&str])]) {
        let found = release
            .members
            .iter()
            .filter(|(strukt, member, _)| {
                wanted
                    .iter()
                    .any(|(s, members)| s == strukt && members.contains(member))
            })
            .map(|&(strukt, member, offset)| ((strukt.to_owned(), member.to_owned()), offset))
            .collect();
        let before = self.offsets.len();
        self.fill(found, Source::Table);
        if self.offsets.len() > before {
            self.release = Some(release.go);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_release_is_found_by_version_then_by_minor() {
        let newest = releases().last().expect("a table");
        assert_eq!(release(newest.go).map(|r| r.go), Some(newest.go));
        let (major, minor, _) = super::super::buildinfo::parse_version(newest.go).expect("version");
        let other_patch = format!("go{major}.{minor}.99");
        assert_eq!(release(&other_patch).map(|r| r.go), Some(newest.go));
        assert!(release(&format!("go{major}.{}.0", minor + 1)).is_none());
        assert!(release("not a version").is_none());
    }

    #[test]
    fn dwarf_wins_over_later_sources() {
        let key = ("runtime.g".to_owned(), "goid".to_owned());
        let mut layouts = Layouts::default();
        layouts.fill([(key.clone(), 160)].into(), Source::Dwarf);
        layouts.fill([(key.clone(), 152)].into(), Source::Table);
        assert_eq!(layouts.offsets[&key], 160);
        assert_eq!(layouts.sources[&key], Source::Dwarf);
    }
}
