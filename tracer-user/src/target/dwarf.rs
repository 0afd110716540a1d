//! Struct member offsets from DWARF (gimli). Go emits its types as top-level DIEs named by
//! their full package path (`runtime.g`, `net/http.Request`) with constant
//! `DW_AT_data_member_location`s; its debug sections are usually zlib-compressed, which
//! [`super::elf::Elf::section`] undoes.
use std::{borrow::Cow, collections::HashMap};

use gimli::{EndianSlice, RunTimeEndian};

use super::elf::Elf;

/// Errors reading DWARF.
#[derive(Debug, thiserror::Error)]
pub enum DwarfError {
    #[error("no DWARF debug information (the binary was stripped or built with -ldflags=-w)")]
    Missing,
    #[error("the DWARF debug information is cut short or cannot be decompressed")]
    Unreadable,
    #[error("corrupt DWARF debug information")]
    Corrupt(#[source] gimli::Error),
}

/// Offsets found, keyed by `(struct, member)`; `(struct, SIZE)` is the struct's size.
pub type Offsets = HashMap<(String, String), u64>;

/// Pseudo-member naming a struct's byte size in requests and results.
pub const SIZE: &str = "(size)";

/// Reads the offsets of the `members` of each struct in `wanted`. Structs or members that
/// are not in the DWARF are absent from the result.
pub fn member_offsets(elf: &Elf<'_>, wanted: &[(&str, &[&str])]) -> Result<Offsets, DwarfError> {
    if elf.section(".debug_info").is_none() {
        return Err(if elf.section_address(".debug_info").is_some() {
            DwarfError::Unreadable
        } else {
            DwarfError::Missing
        });
    }
    // A section the headers name but whose bytes are cut short or do not decompress is
    // an error, not an absent section.
    let sections = gimli::DwarfSections::load(|id| -> Result<Cow<'_, [u8]>, DwarfError> {
        // Where variables live and which addresses units cover are not needed for types:
        // not decompressed (megabytes, for a moment, in a large binary).
        if matches!(
            id,
            gimli::SectionId::DebugLoc
                | gimli::SectionId::DebugLocLists
                | gimli::SectionId::DebugRanges
                | gimli::SectionId::DebugRngLists
                | gimli::SectionId::DebugAranges
        ) {
            return Ok(Cow::Borrowed(&[]));
        }
        match (elf.section(id.name()), elf.section_address(id.name())) {
            (Some(data), _) => Ok(data),
            (None, Some(_)) => Err(DwarfError::Unreadable),
            (None, None) => Ok(Cow::Borrowed(&[])),
        }
    })?;
    let dwarf = sections.borrow(|section| EndianSlice::new(section, RunTimeEndian::Little));
    scan(&dwarf, wanted).map_err(DwarfError::Corrupt)
}

type Reader<'a> = EndianSlice<'a, RunTimeEndian>;

fn scan(dwarf: &gimli::Dwarf<Reader<'_>>, wanted: &[(&str, &[&str])]) -> gimli::Result<Offsets> {
    let mut offsets = Offsets::new();
    // A struct may be wanted by several probes: each is looked for once, for the members
    // of all of them.
    let mut remaining: Vec<&str> = wanted.iter().map(|(name, _)| *name).collect();
    remaining.sort_unstable();
    remaining.dedup();
    let mut units = dwarf.units();
    while let Some(header) = units.next()? {
        if remaining.is_empty() {
            break;
        }
        let unit = dwarf.unit(header)?;
        let mut tree = unit.entries_tree(None)?;
        let root = tree.root()?;
        let mut children = root.children();
        while let Some(child) = children.next()? {
            let entry = child.entry();
            if entry.tag() != gimli::DW_TAG_structure_type {
                continue;
            }
            let Some(name) = entry.attr_value(gimli::DW_AT_name)? else {
                continue;
            };
            let name = dwarf.attr_string(&unit, name)?;
            let Some(index) = remaining.iter().position(|w| w.as_bytes() == name.slice()) else {
                continue;
            };
            let struct_name = remaining.swap_remove(index);
            let members: Vec<&str> = wanted
                .iter()
                .filter(|(n, _)| *n == struct_name)
                .flat_map(|(_, m)| m.iter().copied())
                .collect();
            let size = entry
                .attr(gimli::DW_AT_byte_size)?
                .and_then(|a| a.udata_value());
            if let (true, Some(size)) = (members.contains(&SIZE), size) {
                offsets.insert((struct_name.to_owned(), SIZE.to_owned()), size);
            }
            let mut fields = child.children();
            while let Some(field) = fields.next()? {
                let field = field.entry();
                if field.tag() != gimli::DW_TAG_member {
                    continue;
                }
                let Some(fname) = field.attr_value(gimli::DW_AT_name)? else {
                    continue;
                };
                let fname = dwarf.attr_string(&unit, fname)?;
                let Ok(fname) = std::str::from_utf8(fname.slice()) else {
                    continue;
                };
                if !members.contains(&fname) {
                    continue;
                }
                let location = field.attr(gimli::DW_AT_data_member_location)?;
                if let Some(offset) = location.and_then(|a| a.udata_value()) {
                    offsets.insert((struct_name.to_owned(), fname.to_owned()), offset);
                }
            }
        }
    }
    Ok(offsets)
}
