//! The checked-in push protocol code is what prost-build generates from `proto/` (compiled with protox, no
//! protoc needed).
//!
//! Regenerate after editing a `.proto` file: `RILL_REGENERATE_PROTO=1 cargo test -p pyroscope --test push_proto`.

use std::path::{Path, PathBuf};

fn generate(out: &Path) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("proto");
    let fds = protox::compile(["push/v1/push.proto", "types/v1/types.proto"], [&root])
        .expect("the .proto files compile");
    prost_build::Config::new()
        .out_dir(out)
        .bytes(["."])
        .compile_fds(fds)
        .expect("prost-build generates code");
}

#[test]
fn checked_in_code_matches_the_proto_files() {
    let tmp = tempfile::tempdir().expect("temp dir");
    generate(tmp.path());
    let gen_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src/gen");
    let regenerate = std::env::var_os("RILL_REGENERATE_PROTO").is_some();
    for file in ["push.v1.rs", "types.v1.rs"] {
        let fresh = std::fs::read_to_string(tmp.path().join(file)).expect("generated file");
        let path = gen_dir.join(file);
        if regenerate {
            std::fs::write(&path, &fresh).expect("write generated file");
            continue;
        }
        let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            checked_in == fresh,
            "{} is stale: regenerate with RILL_REGENERATE_PROTO=1 cargo test -p pyroscope --test push_proto",
            path.display()
        );
    }
}
