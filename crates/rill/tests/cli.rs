//! End-to-end tests: run the real `rill` binary on real files.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// Runs `rill args...` with `stdin` piped in (outputs are pipes, so never coloured unless forced).
fn rill(args: &[&str], stdin: &str) -> Output {
    rill_in(None, args, stdin)
}

fn rill_in(dir: Option<&Path>, args: &[&str], stdin: &str) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rill"));
    cmd.args(args)
        .env_remove("NO_COLOR")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(d) = dir {
        cmd.current_dir(d);
    }
    let mut child = cmd.spawn().expect("spawn rill");
    let written = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    // A command that rejects its arguments exits without reading its input: the pipe breaks, which is fine.
    if let Err(e) = written {
        assert_eq!(
            e.kind(),
            std::io::ErrorKind::BrokenPipe,
            "writing stdin: {e}"
        );
    }
    child.wait_with_output().expect("wait for rill")
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).expect("utf-8 stdout")
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).expect("utf-8 stderr")
}

#[track_caller]
fn assert_code(o: &Output, code: i32) {
    assert_eq!(
        o.status.code(),
        Some(code),
        "exit status\n--- stdout:\n{}\n--- stderr:\n{}",
        stdout(o),
        stderr(o)
    );
}

fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn shared() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared")
}

/// Unformatted input and what the formatter must print for it (reference printer rules: tab indents,
/// aligned `=` in a run of attributes, a blank line before a block that is not first, one final newline).
const UNFORMATTED: &str = "local.file \"token\" {\nfilename = \"/var/run/token\"\nis_secret = true\n}\nlogging {\nlevel = \"info\"\nformat   =    \"json\"\n}\n\n\n";
const FORMATTED: &str = "local.file \"token\" {\n\tfilename  = \"/var/run/token\"\n\tis_secret = true\n}\n\nlogging {\n\tlevel  = \"info\"\n\tformat = \"json\"\n}\n";

/// Two statements on one line: the reference's "expected TERMINATOR, got IDENT" at the second.
const BROKEN: &str = "logging {\n\tlevel = \"info\" format = \"json\"\n}\n";

#[cfg(unix)]
fn inode(p: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    fs::metadata(p).unwrap().ino()
}

#[test]
fn version_and_help() {
    let o = rill(&["--version"], "");
    assert_code(&o, 0);
    assert_eq!(stdout(&o), format!("rill {}\n", env!("CARGO_PKG_VERSION")));
    let o = rill(&["--help"], "");
    assert_code(&o, 0);
    assert!(
        stdout(&o).contains("fmt") && stdout(&o).contains("validate"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn usage_errors_exit_2() {
    assert_code(&rill(&[], ""), 2);
    assert_code(&rill(&["frobnicate"], ""), 2);
    assert_code(&rill(&["fmt", "--nope"], ""), 2);
    let o = rill(&["fmt", "-w", "--test", "x.river"], "");
    assert_code(&o, 2);
}

#[test]
fn fmt_prints_formatted_file_to_stdout() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("a.river");
    fs::write(&f, UNFORMATTED).unwrap();
    let o = rill(&["fmt", f.to_str().unwrap()], "");
    assert_code(&o, 0);
    assert_eq!(stdout(&o), FORMATTED);
    assert_eq!(stderr(&o), "");
    // Printing never touches the file.
    assert_eq!(fs::read_to_string(&f).unwrap(), UNFORMATTED);
}

#[test]
fn fmt_reads_stdin_for_dash_or_no_file() {
    for args in [&["fmt"][..], &["fmt", "-"][..]] {
        let o = rill(args, UNFORMATTED);
        assert_code(&o, 0);
        assert_eq!(stdout(&o), FORMATTED, "args {args:?}");
    }
}

#[test]
fn fmt_of_formatted_input_is_unchanged() {
    let o = rill(&["fmt"], FORMATTED);
    assert_code(&o, 0);
    assert_eq!(stdout(&o), FORMATTED);
}

#[test]
fn fmt_write_rewrites_only_changed_files() {
    let dir = tempfile::tempdir().unwrap();
    let messy = dir.path().join("messy.river");
    let tidy = dir.path().join("tidy.river");
    fs::write(&messy, UNFORMATTED).unwrap();
    fs::write(&tidy, FORMATTED).unwrap();
    #[cfg(unix)]
    let (messy_ino, tidy_ino) = (inode(&messy), inode(&tidy));

    let o = rill(
        &["fmt", "-w", messy.to_str().unwrap(), tidy.to_str().unwrap()],
        "",
    );
    assert_code(&o, 0);
    assert_eq!(stdout(&o), "");
    assert_eq!(fs::read_to_string(&messy).unwrap(), FORMATTED);
    assert_eq!(fs::read_to_string(&tidy).unwrap(), FORMATTED);
    #[cfg(unix)]
    {
        // Rewritten by rename (a new inode); the formatted file was left alone.
        assert_ne!(inode(&messy), messy_ino);
        assert_eq!(inode(&tidy), tidy_ino);
    }
    // Nothing but the two files remains (no temporary files).
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 2);

    let o = rill(&["fmt", "--write", "-"], UNFORMATTED);
    assert_code(&o, 2);
    assert!(
        stderr(&o).contains("cannot use --write with standard input"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn fmt_test_names_files_that_would_change() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("messy.river"), UNFORMATTED).unwrap();
    fs::write(dir.path().join("tidy.river"), FORMATTED).unwrap();

    let o = rill_in(
        Some(dir.path()),
        &["fmt", "--test", "tidy.river", "messy.river"],
        "",
    );
    assert_code(&o, 1);
    assert_eq!(stdout(&o), "messy.river\n");
    // --test never writes.
    assert_eq!(
        fs::read_to_string(dir.path().join("messy.river")).unwrap(),
        UNFORMATTED
    );

    let o = rill_in(Some(dir.path()), &["fmt", "--test", "tidy.river"], "");
    assert_code(&o, 0);
    assert_eq!(stdout(&o), "");

    let o = rill(&["fmt", "--test"], UNFORMATTED);
    assert_code(&o, 1);
    assert_eq!(stdout(&o), "<stdin>\n");
}

#[test]
fn fmt_parse_error_prints_diagnostics_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("bad.river"), BROKEN).unwrap();
    for args in [
        &["fmt", "bad.river"][..],
        &["fmt", "-w", "bad.river"][..],
        &["fmt", "--test", "bad.river"][..],
    ] {
        let o = rill_in(Some(dir.path()), args, "");
        assert_code(&o, 1);
        assert_eq!(stdout(&o), "", "args {args:?}");
        assert!(
            stderr(&o).starts_with(
                "Error: bad.river:2:17: expected TERMINATOR, got IDENT\n\
                 \n\
                 1 | logging {\n\
                 2 |     level = \"info\" format = \"json\"\n  |                    ^"
            ),
            "args {args:?}: {}",
            stderr(&o)
        );
        assert_eq!(
            fs::read_to_string(dir.path().join("bad.river")).unwrap(),
            BROKEN
        );
    }
}

#[test]
fn fmt_continues_after_a_bad_file() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("bad.river"), BROKEN).unwrap();
    fs::write(dir.path().join("messy.river"), UNFORMATTED).unwrap();
    let o = rill_in(
        Some(dir.path()),
        &["fmt", "-w", "bad.river", "missing.river", "messy.river"],
        "",
    );
    // A missing file is worse than a parse error.
    assert_code(&o, 2);
    assert!(
        stderr(&o).contains("rill: cannot read missing.river: "),
        "{}",
        stderr(&o)
    );
    assert!(
        stderr(&o).contains("Error: bad.river:2:17: "),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        fs::read_to_string(dir.path().join("messy.river")).unwrap(),
        FORMATTED
    );
}

#[test]
fn validate_reports_pretty_diagnostics() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("bad.river"), BROKEN).unwrap();
    let o = rill_in(Some(dir.path()), &["validate", "bad.river"], "");
    assert_code(&o, 1);
    assert_eq!(stdout(&o), "");
    assert_eq!(
        stderr(&o),
        "Error: bad.river:2:17: expected TERMINATOR, got IDENT\n\
         \n\
         1 | logging {\n\
         2 |     level = \"info\" format = \"json\"\n  |                    ^^^^^^\n\
         3 | }\n"
    );
}

#[test]
fn validate_reads_stdin() {
    for args in [&["validate"][..], &["validate", "-"][..]] {
        let o = rill(args, BROKEN);
        assert_code(&o, 1);
        assert!(
            stderr(&o).starts_with("Error: <stdin>:2:17: expected TERMINATOR"),
            "{}",
            stderr(&o)
        );
    }
    let o = rill(&["validate"], FORMATTED);
    assert_code(&o, 0);
    assert_eq!(stderr(&o), "");
}

#[test]
fn validate_evaluates_expressions_without_components() {
    let src = "local.file \"w\" {\n\tdetector = \"poll\"\n\tfilename = \"/tmp/\" + 1 / 0\n}\n";
    let o = rill(&["validate"], src);
    assert_code(&o, 1);
    let err = stderr(&o);
    assert!(err.starts_with("Error: <stdin>:3:"), "{err}");
    assert!(
        err.lines().next().unwrap().ends_with(": divide by zero"),
        "{err}"
    );
    assert!(
        err.contains("3 |     filename = \"/tmp/\" + 1 / 0\n"),
        "{err}"
    );

    // Every independent error is reported, in source order.
    let o = rill(
        &["validate"],
        "local.file \"f\" {\n\tfilename = \"a\" - 1\n\tx = [1, 2][5]\n}\n",
    );
    assert_code(&o, 1);
    let err = stderr(&o);
    let headers: Vec<&str> = err.lines().filter(|l| l.starts_with("Error: ")).collect();
    assert_eq!(headers.len(), 2, "{err}");
    assert!(
        headers[0].starts_with("Error: <stdin>:2:13: \"a\" should be "),
        "{err}"
    );
    assert_eq!(
        headers[1],
        "Error: <stdin>:3:13: 5 index 5 is out of range of array with length 2"
    );
    assert!(
        err.contains("2 |     filename = \"a\" - 1\n  |                ^^^\n"),
        "{err}"
    );
}

#[test]
fn validate_skips_component_references_but_checks_the_rest() {
    // References to components (and to names like them) are for the runtime; errors beside them are not.
    let ok = "local.file \"dir\" {\n\tfilename = \"/etc/rill/dir\"\n}\n\nlocal.file \"token\" {\n\tfilename  = local.file.dir.content + \"/\" + env(\"HOST\") + \".token\"\n\tis_secret = true\n}\n";
    let o = rill(&["validate"], ok);
    assert_code(&o, 0);
    assert_eq!(stderr(&o), "");

    let bad = ok.replace("env(\"HOST\") + \".token\"", "1 / 0");
    let o = rill(&["validate"], &bad);
    assert_code(&o, 1);
    assert!(
        stderr(&o)
            .lines()
            .next()
            .unwrap()
            .ends_with(": divide by zero"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn validate_several_files_and_missing_file() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("bad.river"), BROKEN).unwrap();
    fs::write(dir.path().join("good.river"), FORMATTED).unwrap();
    let o = rill_in(
        Some(dir.path()),
        &["validate", "good.river", "bad.river"],
        "",
    );
    assert_code(&o, 1);
    assert!(
        stderr(&o).starts_with("Error: bad.river:2:17: "),
        "{}",
        stderr(&o)
    );
    // Diagnostics of different files are separated by a blank line, like those of one file.
    fs::write(dir.path().join("bad2.river"), "a = 1 b = 2\n").unwrap();
    let o = rill_in(
        Some(dir.path()),
        &["validate", "bad.river", "bad2.river"],
        "",
    );
    assert_code(&o, 1);
    let want = "3 | }\n\nError: bad2.river:1:7: expected TERMINATOR, got IDENT\n\n1 | a = 1 b = 2\n  |       ^\n2 | \n";
    assert!(stderr(&o).ends_with(want), "{}", stderr(&o));
    let o = rill_in(
        Some(dir.path()),
        &["validate", "good.river", "nope.river"],
        "",
    );
    assert_code(&o, 2);
    assert!(
        stderr(&o).starts_with("rill: cannot read nope.river: "),
        "{}",
        stderr(&o)
    );
}

#[test]
fn invalid_utf8_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("bin.river"), b"a = \"\xff\"\n").unwrap();
    for cmd in ["fmt", "validate"] {
        let o = rill_in(Some(dir.path()), &[cmd, "bin.river"], "");
        assert_code(&o, 1);
        assert!(
            stderr(&o).starts_with("Error: bin.river:1:6: illegal UTF-8 encoding\n"),
            "{}",
            stderr(&o)
        );
    }
}

#[test]
fn input_nested_ten_thousand_levels_deep_is_an_error_not_a_crash() {
    let inputs = [
        format!("x = {}1{}\n", "[".repeat(10_000), "]".repeat(10_000)),
        format!("x = {}1{}\n", "(".repeat(10_000), ")".repeat(10_000)),
        format!("x = {}\n", "{a = ".repeat(10_000)),
        format!("{}{}", "b {\n".repeat(10_000), "}\n".repeat(10_000)),
        format!("x = {}true\n", "!".repeat(10_000)),
    ];
    for input in &inputs {
        for cmd in ["fmt", "validate"] {
            let o = rill(&[cmd], input);
            assert_code(&o, 1);
            assert!(
                stderr(&o)
                    .contains("expression or block nesting is too deep (more than 250 levels)"),
                "{cmd}: {}",
                stderr(&o)
            );
        }
    }
}

#[test]
fn colour_is_forced_by_flag() {
    let o = rill(&["--color", "always", "validate"], BROKEN);
    assert_code(&o, 1);
    assert!(
        stderr(&o).starts_with("\x1b[1;31mError: \x1b[0m\x1b[1m<stdin>:2:17: "),
        "{:?}",
        stderr(&o)
    );
    let o = rill(&["validate", "--color=never"], BROKEN);
    assert!(!stderr(&o).contains('\x1b'), "{:?}", stderr(&o));
}

#[test]
fn examples_are_formatted_and_valid() {
    let examples: Vec<String> = fs::read_dir(project_root().join("examples"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "river"))
        .map(|p| p.to_str().unwrap().to_string())
        .collect();
    assert!(!examples.is_empty());
    let args: Vec<&str> = examples.iter().map(String::as_str).collect();
    let o = rill(&[&["fmt", "--test"][..], &args].concat(), "");
    assert_code(&o, 0);
    let o = rill(&[&["validate"][..], &args].concat(), "");
    assert_code(&o, 0);
    assert_eq!(stderr(&o), "");
}

/// Every valid conformance config formats exactly as the reference formatter did (`fmt -w` over copies).
#[test]
fn conformance_valid_files_format_like_the_reference() {
    let valid = shared().join("conformance/agent-docs/valid");
    let dir = tempfile::tempdir().unwrap();
    let mut names = Vec::new();
    for e in fs::read_dir(&valid).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|e| e == "river") {
            let name = p.file_name().unwrap().to_str().unwrap().to_string();
            fs::copy(&p, dir.path().join(&name)).unwrap();
            names.push(name);
        }
    }
    names.sort();
    assert!(names.len() > 400, "found {} conformance files", names.len());
    let args: Vec<&str> = names.iter().map(String::as_str).collect();
    let o = rill_in(Some(dir.path()), &[&["fmt", "-w"][..], &args].concat(), "");
    assert_code(&o, 0);
    let mut wrong = Vec::new();
    for name in &names {
        let want = fs::read_to_string(valid.join(name.replace(".river", ".expect"))).unwrap();
        if fs::read_to_string(dir.path().join(name)).unwrap() != want {
            wrong.push(name.as_str());
        }
    }
    assert!(
        wrong.is_empty(),
        "{} files format differently, e.g. {:?}",
        wrong.len(),
        &wrong[..wrong.len().min(10)]
    );
    // Formatting is idempotent: the output is already formatted.
    let o = rill_in(
        Some(dir.path()),
        &[&["fmt", "--test"][..], &args].concat(),
        "",
    );
    assert_code(&o, 0);
    assert_eq!(stdout(&o), "");
}

/// Every invalid conformance config is rejected, and its first diagnostic is the reference's first one.
#[test]
fn conformance_invalid_files_report_the_reference_first_error() {
    let invalid = shared().join("conformance/agent-docs/invalid");
    let mut names: Vec<String> = fs::read_dir(&invalid)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_str().unwrap().to_string())
        .filter(|n| n.ends_with(".river"))
        .collect();
    names.sort();
    assert!(names.len() > 50);
    let mut wrong = Vec::new();
    for name in &names {
        let o = rill_in(Some(&invalid), &["validate", name], "");
        let want = fs::read_to_string(invalid.join(name.replace(".river", ".errors"))).unwrap();
        let want = format!("Error: {name}:{}", want.lines().next().unwrap_or(""));
        let got = stderr(&o);
        let first = got.lines().next().unwrap_or("");
        if o.status.code() != Some(1) || first != want {
            wrong.push(format!(
                "{want}\n  got {first} (exit {:?})",
                o.status.code()
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} files differ:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

#[test]
fn validate_checks_components_names_labels_references_and_arguments() {
    let src = "local.flie \"a\" {\n\tfilename = \"x\"\n}\n\nlocal.file {\n\tfilename = \"y\"\n}\n\nlocal.file \"b\" {\n\tfilename = local.file.nope.content\n}\n\nlocal.file \"c\" {\n\tfilename = \"z\"\n\tdetector = \"inotify\"\n}\n";
    let o = rill(&["validate"], src);
    assert_code(&o, 1);
    let err = stderr(&o);
    let headers: Vec<&str> = err.lines().filter(|l| l.starts_with("Error: ")).collect();
    assert_eq!(
        headers,
        [
            "Error: <stdin>:1:1: cannot find the definition of component name \"local.flie\" (did you mean \"local.file\"?)",
            "Error: <stdin>:5:1: component \"local.file\" must have a label",
            "Error: <stdin>:10:13: component \"local.file.nope.content\" does not exist or is out of scope",
        ],
        "{err}"
    );
    // Arguments are checked once the graph is sound.
    let o = rill(
        &["validate"],
        "local.file \"c\" {\n\tfilename = \"z\"\n\tdetector = \"inotify\"\n}\n",
    );
    assert_code(&o, 1);
    assert!(
        stderr(&o).contains(
            "<stdin>:3:13: \"inotify\" unrecognized detector \"inotify\", expected fsnotify or poll"
        ),
        "{}",
        stderr(&o)
    );
}
