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
//! its program headers, so no load bias needs computing. The file is read lazily (`object::ReadCache`): only
//! headers, the symbol table and the names looked up.

use std::collections::HashMap;
use std::fs::File;

use object::{Object, ObjectSegment, ObjectSymbol, ReadCache, SymbolKind};

/// An executable mapping of a file.
#[derive(Clone, Debug)]
pub(crate) struct Mapping {
    pub start: u64,
    pub end: u64,
    pub offset: u64,
    pub path: String,
}

/// The executable file mappings of this process.
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
    if !perms.contains('x') || !path.starts_with('/') {
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
        let fallback = format!(
            "[{}]",
            path.rsplit('/')
                .next()
                .filter(|s| !s.is_empty())
                .unwrap_or(path)
        );
        let names = File::open(path)
            .ok()
            .map(|f| names_in_file(&ReadCache::new(f), &wanted))
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

/// Names of the functions containing each (address, file offset), for those the symbol table knows.
fn names_in_file(cache: &ReadCache<File>, wanted: &[(usize, u64)]) -> HashMap<usize, String> {
    let mut out = HashMap::new();
    let Ok(file) = object::File::parse(cache) else {
        return out;
    };
    // File offset to the object's own (static) virtual address, through the loadable segments.
    let segments: Vec<(u64, u64, u64)> = file
        .segments()
        .map(|s| {
            let (off, size) = s.file_range();
            (off, size, s.address())
        })
        .collect();
    let svma = |off: u64| {
        segments
            .iter()
            .find(|(o, size, _)| *o <= off && off < o + size)
            .map(|(o, _, vaddr)| vaddr + (off - o))
    };
    // Function symbols sorted by address; the static table if there is one, else the dynamic one.
    let mut funcs: Vec<(u64, u64, object::Symbol<'_, '_, _>)> = file
        .symbols()
        .filter(|s| s.kind() == SymbolKind::Text && s.size() > 0)
        .map(|s| (s.address(), s.size(), s))
        .collect();
    if funcs.is_empty() {
        funcs = file
            .dynamic_symbols()
            .filter(|s| s.kind() == SymbolKind::Text && s.size() > 0)
            .map(|s| (s.address(), s.size(), s))
            .collect();
    }
    funcs.sort_unstable_by_key(|f| f.0);
    for &(addr, off) in wanted {
        let Some(v) = svma(off) else { continue };
        let i = funcs.partition_point(|f| f.0 <= v);
        let Some((start, size, symbol)) = i.checked_sub(1).and_then(|i| funcs.get(i)) else {
            continue;
        };
        if v >= start + size {
            continue;
        }
        if let Ok(name) = symbol.name() {
            out.insert(addr, demangle(name));
        }
    }
    out
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
        assert!(parse_maps_line("7ffd1000-7ffd3000 r-xp 00000000 00:00 0  [vdso]").is_none());
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
}
