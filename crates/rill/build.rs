//! Link the `rill` binary with packed relative relocations (DT_RELR) on GNU/Linux: the position-independent
//! binary has some 33,000 relative relocations, which take 0.8 MB as `.rela.dyn` (read, so resident, at every
//! start) and a few KB as RELR. Needs binutils >= 2.38 and glibc >= 2.36; an older GNU ld ignores the option
//! with a warning.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    if os == "linux" && env == "gnu" {
        println!("cargo:rustc-link-arg-bin=rill=-Wl,-z,pack-relative-relocs");
    }
}
