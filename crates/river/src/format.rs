//! The formatter: prints a parsed file in the reference printer's canonical layout. (Being implemented.)

use crate::ast::File;
use crate::diag::Diagnostics;

/// Formats a parsed file. The file must have parsed without errors.
pub fn format_file(file: &File) -> String {
    file.source.to_string()
}

/// Parses and formats `src`; returns the parse diagnostics if it does not parse.
pub fn format_source(src: &str) -> Result<String, Diagnostics> {
    let (file, diags) = crate::parse(src);
    if diags.has_errors() {
        return Err(diags);
    }
    Ok(format_file(&file))
}
