//! `rill validate`: check River files without running them.
//!
//! A file is parsed; if it parses without errors, every [`Check`] of [`default_checks`] runs over its syntax
//! tree: [`ExpressionCheck`] (evaluate what can be evaluated without components) and [`ComponentCheck`]
//! (the runtime's graph checks and argument decoding). A problem found by both is reported once.

use crate::input::Input;
use crate::{output, ExitCode, ValidateArgs};
use river::ast::{self, Expr, ExprKind, Stmt};
use river::eval::{eval_expr, Scope};
use river::render::Colour;
use river::{Diagnostic, Diagnostics, SourceFile};
use std::collections::HashSet;

/// One semantic check run on a file that parsed without errors.
pub trait Check {
    /// Adds the problems found in `ast` (parsed from `file`) to `diags`.
    fn check(&self, file: &SourceFile, ast: &ast::File, diags: &mut Diagnostics);
}

/// The checks `rill validate` runs, in order. Component checks from the runtime go here.
pub fn default_checks() -> Vec<Box<dyn Check>> {
    vec![
        Box::new(ExpressionCheck::default()),
        Box::new(ComponentCheck {
            registry: crate::components::builtin_registry(),
        }),
    ]
}

/// The runtime's checks: known component names (with suggestions), labels, duplicate IDs, references and
/// cycles, then the arguments of every component that refers to no other component (the exports it would
/// read exist only while running).
pub struct ComponentCheck {
    /// The components this binary can run.
    pub registry: std::sync::Arc<flow::Registry>,
}

impl Check for ComponentCheck {
    fn check(&self, file: &SourceFile, ast: &ast::File, diags: &mut Diagnostics) {
        let sources = flow::Sources {
            files: vec![flow::source::ParsedFile {
                source: file.clone(),
                ast: std::sync::Arc::new(ast.clone()),
            }],
        };
        let graph = match flow::Graph::build(&sources, self.registry.as_ref()) {
            Ok(g) => g,
            Err(errors) => {
                diags.extend(errors.0.into_iter().map(|d| d.diagnostic));
                return;
            }
        };
        for node in &graph.nodes {
            let (flow::NodeKind::Component { name, .. }, true) =
                (&node.kind, node.references.is_empty())
            else {
                continue;
            };
            let (Some(reg), Some(block)) = (self.registry.get(name), node.block(&sources)) else {
                continue;
            };
            if let Err(errors) = reg.decode(block, ast, &Scope::with_stdlib()) {
                diags.extend(errors);
            }
        }
    }
}

/// Runs `rill validate`.
pub fn run(args: &ValidateArgs, colour: Colour) -> ExitCode {
    let checks = default_checks();
    let mut code = ExitCode::Success;
    for input in Input::from_args(&args.files) {
        let loaded = match input.read() {
            Ok(l) => l,
            Err(e) => {
                output::error(&e);
                code = ExitCode::Failure;
                continue;
            }
        };
        let diags = match loaded.encoding_error {
            Some(d) => Diagnostics(vec![d]),
            None => validate_source(&loaded.file, &checks),
        };
        output::diagnostics(&loaded.file, &diags, colour);
        if diags.has_errors() {
            code = code.max(ExitCode::Problems);
        }
    }
    code
}

/// All diagnostics for one source: the parser's, then (only when it parsed without errors, so no check sees
/// a half-recovered tree) those of every check.
pub fn validate_source(file: &SourceFile, checks: &[Box<dyn Check>]) -> Diagnostics {
    let (ast, mut diags) = river::parse(file.text());
    if !diags.has_errors() {
        for check in checks {
            check.check(file, &ast, &mut diags);
        }
        // Two checks may find the same problem (an evaluation error in a component's arguments).
        let mut seen = HashSet::new();
        diags.0.retain(|d| seen.insert((d.span, d.message.clone())));
    }
    diags
}

/// Evaluates every attribute value, or the largest parts of it, that refers to no component, and reports
/// evaluation errors (type errors, bad arguments, division by zero, ...).
///
/// Only standard-library names are evaluated here. Any other identifier is a reference to a component (or an
/// import namespace, a module argument, a `foreach` variable), which only the runtime can resolve, and which
/// the component check reports when it does not exist. A standard-library name is a reference too when a block
/// of the file starts with it (a component named like a namespace shadows it).
pub struct ExpressionCheck {
    /// Whether an identifier belongs to the standard library.
    is_stdlib_name: fn(&str) -> bool,
}

impl Default for ExpressionCheck {
    fn default() -> Self {
        ExpressionCheck {
            is_stdlib_name: river::stdlib::is_stdlib_name,
        }
    }
}

impl Check for ExpressionCheck {
    fn check(&self, _file: &SourceFile, ast: &ast::File, diags: &mut Diagnostics) {
        let names = self.names(ast);
        let scope = Scope::with_stdlib();
        let mut closed = Vec::new();
        each_attribute(ast, ast.body, &mut |value| {
            closed.clear();
            if is_closed(value, ast, &names, &mut closed) {
                closed.push(value);
            }
            for e in &closed {
                if let Err(err) = eval_expr(e, ast, &scope) {
                    diags.push(Diagnostic::error(err.span, err.message));
                }
            }
        });
    }
}

impl ExpressionCheck {
    /// The names `ast`'s expressions may use without referring to a component.
    fn names<'a>(&self, ast: &'a ast::File) -> Names<'a> {
        let mut roots = HashSet::new();
        collect_block_roots(ast.body, ast, &mut roots);
        Names {
            roots,
            is_stdlib_name: self.is_stdlib_name,
        }
    }
}

/// Which identifiers can be evaluated without the runtime.
struct Names<'a> {
    /// Names that start a block name: references.
    roots: HashSet<&'a str>,
    is_stdlib_name: fn(&str) -> bool,
}

impl Names<'_> {
    fn evaluable(&self, name: &str) -> bool {
        (self.is_stdlib_name)(name) && !self.roots.contains(name)
    }
}

/// The first identifier of every block name, at any depth (components inside `declare` count too), and the
/// loop variable named by a `foreach` block's `var = "name"`, which its template refers to.
fn collect_block_roots<'a>(body: ast::Body, file: &'a ast::File, roots: &mut HashSet<&'a str>) {
    let src: &'a str = &file.source;
    for stmt in file.stmts(body) {
        if let Stmt::Block(b) = stmt {
            if let Some(first) = b.name(file).first() {
                roots.insert(first.text(src));
            }
            if b.name_string(file) == "foreach" {
                for s in file.stmts(b.body) {
                    if let Stmt::Attribute(a) = s {
                        if a.name.text(src) == "var" {
                            let text = a.value.span.text(src);
                            roots.insert(text.trim_matches('"'));
                        }
                    }
                }
            }
            collect_block_roots(b.body, file, roots);
        }
    }
}

fn each_attribute<'a>(file: &'a ast::File, body: ast::Body, f: &mut impl FnMut(&'a Expr)) {
    for stmt in file.stmts(body) {
        match stmt {
            Stmt::Attribute(a) => f(&a.value),
            Stmt::Block(b) => each_attribute(file, b.body, f),
        }
    }
}

/// True when every identifier of `e` is evaluable. When one is not, the largest closed sub-expressions are
/// pushed to `out` instead, so their errors are still found.
fn is_closed<'a>(e: &'a Expr, file: &'a ast::File, names: &Names, out: &mut Vec<&'a Expr>) -> bool {
    let children: Vec<&Expr> = match e.kind {
        ExprKind::Ident => return names.evaluable(file.text(e.span)),
        ExprKind::Literal(_) => return true,
        ExprKind::Array(items) => file.exprs(items).iter().collect(),
        ExprKind::Object(fields) => file.fields(fields).iter().map(|f| &f.value).collect(),
        ExprKind::Access(inner, _) | ExprKind::Unary(_, inner) | ExprKind::Paren(inner) => {
            vec![file.expr(inner)]
        }
        ExprKind::Index(a, b) | ExprKind::Binary(_, a, b) => vec![file.expr(a), file.expr(b)],
        ExprKind::Call(call) => std::iter::once(file.expr(call.func))
            .chain(file.exprs(call.args))
            .collect(),
    };
    let flags: Vec<(bool, &Expr)> = children
        .into_iter()
        .map(|c| (is_closed(c, file, names, out), c))
        .collect();
    if flags.iter().all(|(closed, _)| *closed) {
        return true;
    }
    // A literal beside a reference cannot fail on its own: not worth evaluating.
    let worth = |c: &Expr| !matches!(c.kind, ExprKind::Literal(_));
    out.extend(
        flags
            .into_iter()
            .filter(|&(closed, c)| closed && worth(c))
            .map(|(_, c)| c),
    );
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The source texts of the parts of the first attribute's value that `ExpressionCheck` would evaluate.
    fn evaluated_parts(src: &str) -> Vec<String> {
        let (ast, diags) = river::parse(src);
        assert!(diags.is_empty(), "{diags:?}");
        // A stand-in standard library, so these tests do not depend on its contents.
        let check = ExpressionCheck {
            is_stdlib_name: |n| matches!(n, "env" | "concat" | "string" | "constants" | "item"),
        };
        let names = check.names(&ast);
        let mut parts = Vec::new();
        each_attribute(&ast, ast.body, &mut |value| {
            let mut closed = Vec::new();
            if is_closed(value, &ast, &names, &mut closed) {
                closed.push(value);
            }
            parts.extend(closed.iter().map(|e| e.span.text(src).to_string()));
        });
        parts
    }

    #[test]
    fn closed_expressions_are_evaluated_whole() {
        let src = "a {\n\tx = 1 + env(\"A\")\n\ty = string.format(\"%d\", 1)\n}\n";
        assert_eq!(
            evaluated_parts(src),
            ["1 + env(\"A\")", "string.format(\"%d\", 1)"]
        );
    }

    #[test]
    fn component_references_leave_only_the_closed_parts() {
        let src = "d.h \"x\" {\n}\n\np.s \"y\" {\n\tt = concat(d.h.x.targets, [{\"a\" = 1 / 0}])\n\tf = [p.w.z.receiver]\n}\n";
        assert_eq!(evaluated_parts(src), ["concat", "[{\"a\" = 1 / 0}]"]);
    }

    #[test]
    fn nested_block_names_and_foreach_variables_count_as_references() {
        let src = "declare \"m\" {\n\targument \"in\" {\n\t}\n\n\tinner.c \"i\" {\n\t\tv = argument.in.value + inner.c.i.out\n\t}\n}\n\nforeach \"f\" {\n\tvar = \"item\"\n\n\ttemplate {\n\t\tk = item + 1\n\t}\n}\n";
        // `var = "item"` itself is closed; the references inside declare and the template are not.
        assert_eq!(evaluated_parts(src), ["\"item\""]);
    }

    #[test]
    fn unknown_names_and_shadowed_stdlib_names_are_left_to_the_runtime() {
        // `nope` may be a component that does not exist: the component check reports it, with its message.
        assert_eq!(
            evaluated_parts("a {\n\tx = nope + [env(\"A\")]\n}\n"),
            ["[env(\"A\")]"]
        );
        // A component named like a namespace shadows it.
        let src = "string.thing \"s\" {\n}\n\na {\n\ty = string.format(\"%d\", 1)\n}\n";
        assert_eq!(evaluated_parts(src), Vec::<String>::new());
    }

    #[test]
    fn parse_errors_stop_before_the_checks() {
        struct Panics;
        impl Check for Panics {
            fn check(&self, _: &SourceFile, _: &ast::File, _: &mut Diagnostics) {
                panic!("checks must not run on a file that did not parse");
            }
        }
        let file = SourceFile::new("f", "a = (\n");
        let diags = validate_source(&file, &[Box::new(Panics)]);
        assert!(diags.has_errors());
    }
}
