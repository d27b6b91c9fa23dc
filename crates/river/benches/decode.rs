//! Per-block cost of evaluating and decoding component arguments, and of encoding exports, as the runtime
//! does it for `test.pass` blocks (`crates/flow/benches/controller.rs`): `input` is an object literal, a
//! reference to another component's `output` (resolved by the caller, as the runtime does), or a list of ten
//! such references. Figures printed, not asserted: `cargo bench -p river --bench decode`.
//!
//! Instructions per block, which do not depend on how busy the machine is:
//! `RIVER_BENCH_ROUNDS=20 valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.out
//! --toggle-collect='decode::decode_round' <the bench binary>`, then `callgrind_annotate --inclusive=yes`
//! on it: the `Collected` total divided by 20 × 11 (blocks per round) is the cost per block, and the
//! inclusive counts of `decode::decode_args` (`decode_block_body_validated`) and `decode::encode_exports`
//! (`to_value` of the exports) its two parts. `RIVER_BENCH_BLOCKS=object`, `reference` or
//! `fan-in` keeps only the blocks of that kind (1, 9 and 1 of the 11).

use river::ast::{ExprKind, File, Stmt};
use river::decode::{decode_block_body_validated, Validate};
use river::eval::Scope;
use river::{Span, Value};
use serde::{Deserialize, Serialize};
use std::hint::black_box;
use std::time::Instant;

#[cfg(target_os = "linux")]
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Debug, Default, Deserialize, Serialize)]
struct PassArgs {
    #[serde(default)]
    input: Value,
}
impl Validate for PassArgs {}

#[derive(Serialize)]
struct PassExports<'a> {
    output: &'a Value,
}

/// One chain of the runtime bench: a block with an object literal, nine that refer to their predecessor,
/// one fan-in block referring to all ten.
fn config() -> String {
    let mut s = String::from(
        "test.pass \"c0_0\" {\n\tinput = { chain = 0, step = 0, tags = [\"a\", \"b\"] }\n}\n\n",
    );
    for i in 1..10 {
        s.push_str(&format!(
            "test.pass \"c0_{i}\" {{\n\tinput = test.pass.c0_{}.output\n}}\n\n",
            i - 1
        ));
    }
    let all: Vec<String> = (0..10)
        .map(|i| format!("test.pass.c0_{i}.output"))
        .collect();
    s.push_str(&format!(
        "test.pass \"fan0\" {{\n\tinput = [\n\t\t{},\n\t]\n}}\n\n",
        all.join(",\n\t\t")
    ));
    s
}

/// The spans of the `test.pass.NAME` parts of every reference in the block's body, as the runtime resolves
/// them.
fn references(file: &File, block: &river::ast::Block) -> Vec<Span> {
    fn walk(file: &File, e: &river::ast::Expr, out: &mut Vec<Span>) {
        match e.kind {
            ExprKind::Access(inner, _) => {
                // `test.pass.NAME` is the component; `.output` and anything after it are accesses on it.
                if e.span.text(&file.source).matches('.').count() == 2 {
                    out.push(e.span);
                } else {
                    walk(file, file.expr(inner), out)
                }
            }
            ExprKind::Array(items) => {
                for it in file.exprs(items) {
                    walk(file, it, out);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    for stmt in file.stmts(block.body) {
        if let Stmt::Attribute(a) = stmt {
            walk(file, &a.value, &mut out);
        }
    }
    out
}

/// Evaluates and decodes one block's arguments, as the runtime does.
#[inline(never)]
fn decode_args(file: &File, block: &river::ast::Block, scope: &Scope) -> PassArgs {
    decode_block_body_validated(block, file, scope).expect("the bench config decodes")
}

/// Encodes the exports of one block, as `test.pass` publishes them.
#[inline(never)]
fn encode_exports(args: &PassArgs) -> Value {
    river::encode::to_value(&PassExports {
        output: &args.input,
    })
    .expect("exports encode")
}

/// Evaluates, decodes and re-encodes every block once; returns the number of blocks.
#[inline(never)]
fn decode_round(file: &File, blocks: &[(&river::ast::Block, Vec<Span>)], exports: &Value) -> usize {
    for (block, refs) in blocks {
        let resolved = refs.iter().map(|s| (*s, exports.clone())).collect();
        let scope = Scope::with_stdlib().with_resolved(resolved);
        let args = decode_args(file, block, &scope);
        black_box(encode_exports(&args));
    }
    blocks.len()
}

fn main() {
    let src = config();
    let (file, diags) = river::parse(&src);
    assert!(diags.is_empty(), "{diags:?}");
    let blocks: Vec<_> = file
        .top_level()
        .iter()
        .filter_map(|s| match s {
            Stmt::Block(b) => Some((b, references(&file, b))),
            _ => None,
        })
        .collect();
    // `RIVER_BENCH_BLOCKS=object|reference|fan-in` keeps only that kind of block.
    let blocks: Vec<_> = match std::env::var("RIVER_BENCH_BLOCKS").as_deref() {
        Ok("object") => blocks[..1].to_vec(),
        Ok("reference") => blocks[1..10].to_vec(),
        Ok("fan-in") => blocks[10..].to_vec(),
        _ => blocks,
    };
    let mut out = river::Object::new();
    out.insert(
        "output".into(),
        Value::object(
            [("chain".to_string(), Value::int(0))]
                .into_iter()
                .collect::<river::Object>(),
        ),
    );
    let exports = Value::object(out);
    let rounds: usize = std::env::var("RIVER_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    // The standard library's scope is built once per process.
    black_box(river::stdlib::scope());
    let t = Instant::now();
    let mut n = 0;
    for _ in 0..rounds {
        n += decode_round(&file, &blocks, &exports);
    }
    let per = t.elapsed().as_secs_f64() * 1e9 / n as f64;
    println!("decode + encode: {per:.0} ns per block ({n} blocks)");
}
