//! Cheap symbolization: function names from the ELF symbol tables of the mapped objects, no debug info.
//!
//! Resolving through DWARF (`backtrace::resolve`) parses the debug info of every compilation unit a stack
//! touches, and decompresses detached debug files (e.g. Debian's libc6-dbg): measured on the rill binary it
//! takes 0.4 to 1.4 s and 60 to 90 MB of heap per profile even for a handful of stacks. Reading the symbol
//! table instead costs a few milliseconds and a few MB for the duration of one profile. The price: inlined
//! functions are attributed to the function they were inlined into, and there are no file or line numbers.
//!
//! Addresses are mapped to objects through `/proc/self/maps` (the file offset of an address is its offset
//! in its mapping plus the mapping's file offset), and file offsets to the object's virtual addresses through
//! its program headers, so no load bias needs computing. The file is read piecemeal: the headers, the symbol
//! table streamed through a small buffer, and the names found.

use std::collections::HashMap;
use std::fs::File;

use std::os::unix::fs::FileExt;

use object::elf;
use object::read::elf::{FileHeader, ProgramHeader, SectionHeader, Sym};
use object::{Endianness, ReadCache};

/// An executable mapping of a file.
#[derive(Clone, Debug)]
pub(crate) struct Mapping {
    pub start: u64,
    pub end: u64,
    pub offset: u64,
    pub path: String,
}

/// The executable file mappings of this process, and the kernel's vDSO (where `clock_gettime` runs: a
/// sample may well land there).
pub(crate) fn mappings() -> Vec<Mapping> {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
    maps.lines().filter_map(parse_maps_line).collect()
}

fn parse_maps_line(line: &str) -> Option<Mapping> {
    let mut f = line.split_whitespace();
    let (start, end) = f.next()?.split_once('-')?;
    let perms = f.next()?;
    let offset = f.next()?;
    let _dev = f.next()?;
    let _inode = f.next()?;
    let path = f.collect::<Vec<_>>().join(" ");
    if !perms.contains('x') || !(path.starts_with('/') || path == "[vdso]") {
        return None;
    }
    Some(Mapping {
        start: u64::from_str_radix(start, 16).ok()?,
        end: u64::from_str_radix(end, 16).ok()?,
        offset: u64::from_str_radix(offset, 16).ok()?,
        path,
    })
}

/// A resolved address: the function's (demangled) name, or the object's name in brackets when the symbol
/// table has no function there.
pub(crate) fn resolve_all(addrs: &[usize], maps: &[Mapping]) -> HashMap<usize, String> {
    // Group the addresses by file, as (address, file offset).
    let mut by_path: HashMap<&str, Vec<(usize, u64)>> = HashMap::new();
    let mut out = HashMap::with_capacity(addrs.len());
    for &addr in addrs {
        let a = addr as u64;
        match maps.iter().find(|m| m.start <= a && a < m.end) {
            Some(m) => by_path
                .entry(&m.path)
                .or_default()
                .push((addr, a - m.start + m.offset)),
            None => {
                out.insert(addr, "[unknown]".to_string());
            }
        }
    }
    for (path, wanted) in by_path {
        // The vDSO has no file to read symbols from: its samples are named after it.
        if path.starts_with('[') {
            out.extend(wanted.iter().map(|&(addr, _)| (addr, path.to_string())));
            continue;
        }
        let fallback = format!(
            "[{}]",
            path.rsplit('/')
                .next()
                .filter(|s| !s.is_empty())
                .unwrap_or(path)
        );
        let names = File::open(path)
            .ok()
            .map(|f| names_in_file(&f, &wanted))
            .unwrap_or_default();
        for (addr, _) in wanted {
            let name = names
                .get(&addr)
                .cloned()
                .unwrap_or_else(|| fallback.clone());
            out.insert(addr, name);
        }
    }
    out
}

/// Names the functions of `profile`'s locations that have no lines yet, from the symbol tables of their
/// mappings' files (the file offset of a location is `address - memory_start + file_offset`, as pprof
/// defines it). Locations without a mapping, or whose file has no symbol there, stay unnamed.
pub(crate) fn add_function_names(profile: &mut crate::proto::Profile) {
    use crate::proto;
    // (location index, key for the lookup, file offset) grouped by the mapping's file name.
    let mapping_index: HashMap<u64, usize> = profile
        .mapping
        .iter()
        .enumerate()
        .map(|(i, m)| (m.id, i))
        .collect();
    let mut by_file: HashMap<String, Vec<(usize, u64)>> = HashMap::new();
    for (i, loc) in profile.location.iter().enumerate() {
        if !loc.line.is_empty() {
            continue;
        }
        let Some(m) = mapping_index
            .get(&loc.mapping_id)
            .and_then(|&m| profile.mapping.get(m))
        else {
            continue;
        };
        let Some(path) = profile.string_table.get(m.filename as usize) else {
            continue;
        };
        let Some(off) = loc
            .address
            .checked_sub(m.memory_start)
            .and_then(|o| o.checked_add(m.file_offset))
        else {
            continue;
        };
        by_file.entry(path.clone()).or_default().push((i, off));
    }
    let mut strings: HashMap<String, i64> = profile
        .string_table
        .iter()
        .enumerate()
        .map(|(i, s)| (s.clone(), i as i64))
        .collect();
    let mut functions: HashMap<i64, u64> =
        profile.function.iter().map(|f| (f.name, f.id)).collect();
    let mut named_mappings = Vec::new();
    for (path, wanted) in by_file {
        let Ok(file) = File::open(&path) else {
            continue;
        };
        let names = names_in_file(&file, &wanted);
        for (i, _) in wanted {
            let Some(name) = names.get(&i) else { continue };
            let name_id = *strings.entry(name.clone()).or_insert_with(|| {
                profile.string_table.push(name.clone());
                profile.string_table.len() as i64 - 1
            });
            let function_id = *functions.entry(name_id).or_insert_with(|| {
                let id = profile.function.iter().map(|f| f.id).max().unwrap_or(0) + 1;
                profile.function.push(proto::Function {
                    id,
                    name: name_id,
                    system_name: name_id,
                    ..Default::default()
                });
                id
            });
            let loc = &mut profile.location[i];
            loc.line.push(proto::Line {
                function_id,
                ..Default::default()
            });
            named_mappings.push(loc.mapping_id);
        }
    }
    for id in named_mappings {
        if let Some(&m) = mapping_index.get(&id) {
            profile.mapping[m].has_functions = true;
        }
    }
}

/// Symbols read from the file per `read_at` while scanning a symbol table (48 KiB for ELF64).
const SYMBOL_CHUNK: usize = 2048;
/// The longest symbol name read (longer ones are cut there).
const MAX_NAME: usize = 16 * 1024;

/// Names of the functions containing each (key, file offset), for those the symbol table knows.
///
/// The symbol table is streamed through a small buffer and only the names found are read, so naming a
/// profile takes tens of KB rather than a copy of the table (the rill binary's is 1 MB of symbols and 3 MB
/// of names, which jemalloc would keep resident for a while after each profile).
fn names_in_file(file: &File, wanted: &[(usize, u64)]) -> HashMap<usize, String> {
    let cache = ReadCache::new(file);
    match object::FileKind::parse(&cache) {
        Ok(object::FileKind::Elf64) => {
            names_in_elf::<elf::FileHeader64<Endianness>>(&cache, file, wanted)
        }
        Ok(object::FileKind::Elf32) => {
            names_in_elf::<elf::FileHeader32<Endianness>>(&cache, file, wanted)
        }
        _ => HashMap::new(),
    }
}

fn names_in_elf<Elf: FileHeader<Endian = Endianness>>(
    cache: &ReadCache<&File>,
    file: &File,
    wanted: &[(usize, u64)],
) -> HashMap<usize, String> {
    let mut out = HashMap::new();
    let Ok(header) = Elf::parse(cache) else {
        return out;
    };
    let Ok(endian) = header.endian() else {
        return out;
    };
    // File offset to the object's own (static) virtual address, through the loadable segments.
    let segments: Vec<(u64, u64, u64)> = header
        .program_headers(endian, cache)
        .unwrap_or(&[])
        .iter()
        .filter(|p| p.p_type(endian) == elf::PT_LOAD)
        .map(|p| {
            let (off, size) = p.file_range(endian);
            (off, size, p.p_vaddr(endian).into())
        })
        .collect();
    let svma = |off: u64| {
        segments
            .iter()
            .find(|(o, size, _)| *o <= off && off < o + size)
            .map(|(o, _, vaddr)| vaddr + (off - o))
    };
    // (static address, key), sorted by address.
    let mut targets: Vec<(u64, usize)> = wanted
        .iter()
        .filter_map(|&(key, off)| Some((svma(off)?, key)))
        .collect();
    targets.sort_unstable();
    let Ok(sections) = header.section_headers(endian, cache) else {
        return out;
    };
    // The static table if it has functions, else the dynamic one.
    for table in [elf::SHT_SYMTAB, elf::SHT_DYNSYM] {
        let Some(symtab) = sections.iter().find(|s| s.sh_type(endian) == table) else {
            continue;
        };
        let Some(strtab) = sections.get(symtab.sh_link(endian) as usize) else {
            continue;
        };
        let Some(best) = scan_symbols::<Elf>(file, endian, symtab, &targets) else {
            continue;
        };
        let (str_off, str_size) = strtab.file_range(endian).unwrap_or((0, 0));
        let mut names: HashMap<u32, Option<String>> = HashMap::new();
        for (&(_, key), found) in targets.iter().zip(best) {
            let Some((_, name)) = found else { continue };
            let name = names
                .entry(name)
                .or_insert_with(|| read_name(file, str_off, str_size, name).map(|n| demangle(&n)));
            if let Some(name) = name {
                out.insert(key, name.clone());
            }
        }
        break;
    }
    out
}

/// Scans the symbol table `symtab` for the function containing each target address: per target, the
/// (start, name offset) of the covering function symbol that starts last. `None` when the table has no
/// function symbols at all (or cannot be read).
fn scan_symbols<Elf: FileHeader<Endian = Endianness>>(
    file: &File,
    endian: Endianness,
    symtab: &Elf::SectionHeader,
    targets: &[(u64, usize)],
) -> Option<Vec<Option<(u64, u32)>>> {
    let (offset, size) = symtab.file_range(endian)?;
    let entry = std::mem::size_of::<Elf::Sym>();
    let count = usize::try_from(size).ok()? / entry;
    let mut best = vec![None; targets.len()];
    let mut functions = 0usize;
    // u64s, so the buffer is aligned for the symbol structs.
    let mut buf = vec![0u64; (SYMBOL_CHUNK * entry).div_ceil(8)];
    let mut done = 0;
    while done < count {
        let n = (count - done).min(SYMBOL_CHUNK);
        let bytes = &mut object::pod::bytes_of_slice_mut(&mut buf)[..n * entry];
        file.read_exact_at(bytes, offset + (done * entry) as u64)
            .ok()?;
        let (symbols, _) = object::pod::slice_from_bytes::<Elf::Sym>(bytes, n).ok()?;
        for sym in symbols {
            let kind = sym.st_type();
            let len: u64 = sym.st_size(endian).into();
            if (kind != elf::STT_FUNC && kind != elf::STT_GNU_IFUNC)
                || len == 0
                || sym.is_undefined(endian)
            {
                continue;
            }
            functions += 1;
            let start: u64 = sym.st_value(endian).into();
            let end = start.saturating_add(len);
            let first = targets.partition_point(|t| t.0 < start);
            for (t, slot) in targets[first..].iter().zip(&mut best[first..]) {
                if t.0 >= end {
                    break;
                }
                if slot.is_none_or(|(s, _)| s < start) {
                    *slot = Some((start, sym.st_name(endian)));
                }
            }
        }
        done += n;
    }
    (functions > 0).then_some(best)
}

/// The NUL-terminated name at `name` in the string table at file offset `table` of `size` bytes.
fn read_name(file: &File, table: u64, size: u64, name: u32) -> Option<String> {
    let mut at = u64::from(name);
    let mut out = Vec::new();
    let mut chunk = [0u8; 256];
    while at < size && out.len() < MAX_NAME {
        let want = (size - at).min(chunk.len() as u64) as usize;
        let got = file.read_at(&mut chunk[..want], table + at).ok()?;
        if got == 0 {
            break;
        }
        match chunk[..got].iter().position(|&b| b == 0) {
            Some(nul) => {
                out.extend_from_slice(&chunk[..nul]);
                return String::from_utf8(out).ok();
            }
            None => out.extend_from_slice(&chunk[..got]),
        }
        at += got as u64;
    }
    String::from_utf8(out).ok().filter(|s| !s.is_empty())
}

/// Rust symbols without their hash suffix; others as they are.
fn demangle(name: &str) -> String {
    match rustc_demangle::try_demangle(name) {
        Ok(d) => format!("{d:#}"),
        Err(_) => name.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_lines() {
        let m = parse_maps_line(
            "55d0c0a00000-55d0c0e00000 r-xp 00200000 fe:01 1234    /usr/bin/some prog",
        )
        .unwrap();
        assert_eq!(
            (m.start, m.end, m.offset),
            (0x55d0c0a00000, 0x55d0c0e00000, 0x200000)
        );
        assert_eq!(m.path, "/usr/bin/some prog");
        let vdso = parse_maps_line("7ffd1000-7ffd3000 r-xp 00000000 00:00 0  [vdso]").unwrap();
        assert_eq!(
            (vdso.start, vdso.end, vdso.path.as_str()),
            (0x7ffd1000, 0x7ffd3000, "[vdso]")
        );
        assert!(parse_maps_line("7ffd1000-7ffd3000 r--p 00000000 00:00 0  [vvar]").is_none());
        assert!(parse_maps_line("7ffd1000-7ffd3000 rwxp 00000000 00:00 0  [stack]").is_none());
        assert!(parse_maps_line("7f00-7f10 rw-p 00000000 fe:01 1 /lib/x.so").is_none());
        assert!(parse_maps_line("garbage").is_none());
    }

    #[inline(never)]
    fn a_function_with_a_symbol() -> usize {
        std::hint::black_box(42)
    }

    #[test]
    fn resolves_own_functions_and_libc() {
        let own = a_function_with_a_symbol as *const () as usize;
        let libc = libc::getpid as *const () as usize;
        let names = resolve_all(&[own + 1, libc, 8], &mappings());
        assert!(
            names[&(own + 1)].ends_with("a_function_with_a_symbol"),
            "{names:?}"
        );
        // getpid in libc, through the dynamic symbol table at least.
        assert!(names[&libc].contains("getpid"), "{names:?}");
        assert_eq!(names[&8], "[unknown]");
    }

    #[test]
    fn names_locations_of_a_foreign_profile() {
        use crate::proto;
        let own = a_function_with_a_symbol as *const () as u64;
        let maps = mappings();
        let m = maps.iter().find(|m| m.start <= own && own < m.end).unwrap();
        // As jemalloc_pprof writes them: the mapping spans everything, addresses are file offsets.
        let mut p = proto::Profile {
            string_table: vec!["".into(), m.path.clone(), "already".into()],
            mapping: vec![proto::Mapping {
                id: 7,
                memory_limit: u64::MAX,
                filename: 1,
                ..Default::default()
            }],
            location: vec![
                proto::Location {
                    id: 1,
                    mapping_id: 7,
                    address: own - m.start + m.offset,
                    ..Default::default()
                },
                proto::Location {
                    id: 2,
                    mapping_id: 0,
                    address: 0x10,
                    ..Default::default()
                },
                proto::Location {
                    id: 3,
                    mapping_id: 7,
                    address: own - m.start + m.offset,
                    line: vec![proto::Line {
                        function_id: 1,
                        ..Default::default()
                    }],
                    ..Default::default()
                },
            ],
            function: vec![proto::Function {
                id: 1,
                name: 2,
                ..Default::default()
            }],
            ..Default::default()
        };
        add_function_names(&mut p);
        let f = &p.function[(p.location[0].line[0].function_id - 1) as usize];
        assert!(p.string_table[f.name as usize].ends_with("a_function_with_a_symbol"));
        assert!(p.mapping[0].has_functions);
        assert!(p.location[1].line.is_empty(), "no mapping, no name");
        assert_eq!(p.location[2].line.len(), 1, "named ones are left alone");
    }
}
