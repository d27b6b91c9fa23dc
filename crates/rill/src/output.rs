//! Where and how results are shown: colour choice, diagnostics on standard error, errors.

use crate::ColorChoice;
use river::render::{self, Colour};
use river::{Diagnostics, SourceFile};
use std::fmt::Display;
use std::io::{self, IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};

/// Whether any diagnostic was printed yet by this process.
static PRINTED_DIAGNOSTICS: AtomicBool = AtomicBool::new(false);

/// The colour mode for diagnostics on standard error. `auto` colours only a terminal, and never when
/// `NO_COLOR` is set to a non-empty value (<https://no-color.org>); an explicit `--color` wins.
pub fn stderr_colour(choice: ColorChoice) -> Colour {
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    auto_colour(choice, no_color, io::stderr().is_terminal())
}

fn auto_colour(choice: ColorChoice, no_color: bool, terminal: bool) -> Colour {
    match choice {
        ColorChoice::Always => Colour::Always,
        ColorChoice::Never => Colour::Never,
        ColorChoice::Auto if terminal && !no_color => Colour::Always,
        ColorChoice::Auto => Colour::Never,
    }
}

/// Prints `diags` for `file` to standard error in the pretty form, sorted by position. Write errors on
/// standard error are ignored: there is nowhere left to report them.
pub fn diagnostics(file: &SourceFile, diags: &Diagnostics, colour: Colour) {
    if diags.is_empty() {
        return;
    }
    let mut sorted = diags.clone();
    sorted.sort();
    let text = render::pretty(file, &sorted, colour);
    let mut err = io::stderr().lock();
    // A blank line between diagnostics, also when they come from different files.
    if PRINTED_DIAGNOSTICS.swap(true, Ordering::Relaxed) {
        let _ = err.write_all(b"\n");
    }
    let _ = err.write_all(text.as_bytes());
    let _ = err.flush();
}

/// Prints an error that is not about a position in a file (I/O, usage) to standard error.
pub fn error(e: &dyn Display) {
    let _ = writeln!(io::stderr().lock(), "rill: {e}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_only_on_a_terminal_without_no_color_unless_forced() {
        assert_eq!(auto_colour(ColorChoice::Auto, false, true), Colour::Always);
        assert_eq!(auto_colour(ColorChoice::Auto, true, true), Colour::Never);
        assert_eq!(auto_colour(ColorChoice::Auto, false, false), Colour::Never);
        assert_eq!(
            auto_colour(ColorChoice::Always, true, false),
            Colour::Always
        );
        assert_eq!(auto_colour(ColorChoice::Never, false, true), Colour::Never);
    }
}
