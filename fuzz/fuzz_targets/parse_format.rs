//! parse → format → parse on arbitrary bytes.
//!
//! Checks that no input panics (parser, diagnostic rendering, formatter), that a file which parses
//! formats to a file that parses to the same tree (modulo positions and layout) and that formatting is
//! idempotent.
#![no_main]

use libfuzzer_sys::fuzz_target;
use river::diag::SourceFile;
use river::format::format_file;
use river::parser::parse_bytes;
use river::render::{pretty, Colour};

fuzz_target!(|data: &[u8]| {
    let (file, diags) = parse_bytes(data);
    if diags.has_errors() {
        // Rendering must cope with every span the parser produces.
        let source = SourceFile::new("fuzz.river", file.source.to_string());
        let _ = pretty(&source, &diags, Colour::Always);
        for d in diags.iter() {
            let _ = source.one_line(d);
        }
        return;
    }
    let formatted = format_file(&file);
    let (again, diags2) = river::parse(&formatted);
    assert!(
        !diags2.has_errors(),
        "formatted output does not parse: {diags2:?}\n--- input\n{}\n--- formatted\n{formatted}",
        file.source
    );
    assert_eq!(
        file.shape(),
        again.shape(),
        "formatting changed the tree\n--- input\n{}\n--- formatted\n{formatted}",
        file.source
    );
    let twice = format_file(&again);
    assert_eq!(
        formatted, twice,
        "formatting is not idempotent\n--- input\n{}",
        file.source
    );
});
