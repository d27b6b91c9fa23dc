//! The component graph: one node per top-level block, edges from references.
//!
//! References are found like the reference implementation does: an identifier followed by `.name` accesses
//! forms a traversal (`a.b.c.d`); indexing or calling ends it. A traversal is resolved by growing its prefix
//! until it equals a component ID; what remains is the path into that component's exports. A traversal that
//! names no component but starts with a standard-library name (`env`, `constants`, `string`) is not a
//! reference, so a component named like a namespace shadows it.

use crate::registry::suggest;
use crate::source::{LoadDiagnostics, Sources};
use river::ast::{Block, Body, Expr, ExprKind, File, Stmt};
use river::{Diagnostic, Span};
use std::borrow::Cow;
use std::sync::Arc;

/// Top-level blocks that configure the runtime itself rather than declare a component.
pub const CONFIG_BLOCKS: &[&str] = &["logging", "tracing"];

/// What a node is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeKind {
    /// A component instance of a registered name; its label is the rest of the node's ID
    /// ([`Node::label`]).
    Component {
        /// The component name, e.g. `pyroscope.scrape` (shared by every node of that component).
        name: Arc<str>,
    },
    /// A runtime config block such as `logging`.
    Config {
        /// The block name.
        name: String,
    },
}

/// A reference from a node's expressions to a component.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reference {
    /// Index of the referenced node in [`Graph::nodes`].
    pub target: usize,
    /// The whole traversal in the source, e.g. `local.file.token.content`.
    pub span: Span,
    /// The part of the traversal that names the component, e.g. `local.file.token`: the expression whose value
    /// is the component's exports.
    pub id_span: Span,
}

impl Reference {
    /// The path into the target's exports, e.g. `["content"]` (`src` is the text of the node's file).
    pub fn path<'s>(&self, src: &'s str) -> Vec<&'s str> {
        src.get(self.id_span.end as usize..self.span.end as usize)
            .unwrap_or("")
            .split('.')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .collect()
    }
}

/// One node of the graph.
#[derive(Clone, Debug)]
pub struct Node {
    /// `name.label` for components, the block name for config blocks.
    pub id: Arc<str>,
    /// What it is.
    pub kind: NodeKind,
    /// Index of its file in [`Sources::files`].
    pub file: usize,
    /// Index of its statement in that file's top-level body.
    pub stmt: usize,
    /// Its references to other nodes, in source order.
    pub references: Vec<Reference>,
}

impl Node {
    /// The label of a component, e.g. `default` for `pyroscope.scrape.default`; empty for a config block.
    pub fn label(&self) -> &str {
        match &self.kind {
            NodeKind::Component { name } => self.id.get(name.len() + 1..).unwrap_or(""),
            NodeKind::Config { .. } => "",
        }
    }

    /// The block this node was declared by.
    pub fn block<'s>(&self, sources: &'s Sources) -> Option<&'s Block> {
        match sources
            .files
            .get(self.file)?
            .ast
            .top_level()
            .get(self.stmt)?
        {
            Stmt::Block(b) => Some(b),
            Stmt::Attribute(_) => None,
        }
    }

    /// Where the dotted name of the node's block is (empty when the node is not in `sources`).
    pub fn name_span(&self, sources: &Sources) -> Span {
        match (self.block(sources), sources.files.get(self.file)) {
            (Some(b), Some(f)) => b.name_span(&f.ast),
            _ => Span::default(),
        }
    }
}

/// A checked, acyclic graph of nodes.
#[derive(Clone, Debug, Default)]
pub struct Graph {
    /// The nodes, in source order.
    pub nodes: Vec<Node>,
    /// For each node, the nodes that refer to it (deduplicated, ascending): `dependants[i]`.
    pub dependants: Adjacency,
    /// For each node, the nodes it refers to (deduplicated, ascending): `dependencies[i]`.
    pub dependencies: Adjacency,
    /// Node indices in an order where every node comes after everything it refers to.
    pub order: Vec<usize>,
    ids: IdTable,
    /// Bit `k` is set when some ID has `k` dot-separated parts (bit 63: 63 or more), so that resolving a
    /// reference looks up only prefixes of lengths that some ID has.
    id_parts: u64,
    /// For each node, whether it refers to a component whose ID starts with a standard-library name (see
    /// [`Graph::shadows_stdlib`]).
    shadowing: Vec<bool>,
}

/// The index of [`Graph::nodes`] by ID: open addressing with linear probing, at most half full (its size is
/// fixed from the number of top-level statements, so it never grows). A slot holds a node index and part of
/// its ID's hash, and the IDs themselves stay in the nodes, so the table holds no second reference to them
/// and is looked up by bytes, straight from a slice of the source.
#[derive(Clone, Default)]
struct IdTable {
    slots: Vec<IdSlot>,
    len: usize,
}

#[derive(Clone, Copy, Default)]
struct IdSlot {
    /// The high half of the ID's hash (the low bits chose the slot).
    tag: u32,
    /// The node index plus one; 0 for an empty slot.
    node: u32,
}

impl std::fmt::Debug for IdTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdTable")
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl IdTable {
    /// A table for up to `n` IDs (fewer than 2^31).
    fn with_capacity(n: usize) -> Self {
        IdTable {
            slots: vec![IdSlot::default(); (2 * n).max(1).next_power_of_two()],
            len: 0,
        }
    }

    /// The node whose ID is `key`, or else the slot where it would go (with the tag to store there).
    fn find(&self, nodes: &[Node], key: &[u8]) -> Result<usize, IdSlot> {
        let mask = self.slots.len().wrapping_sub(1);
        let hash = id_hash(key);
        let tag = (hash >> 32) as u32;
        let mut at = hash as usize & mask;
        // Never full (at most half), so the walk meets an empty slot.
        while let Some(&IdSlot { tag: t, node }) = self.slots.get(at) {
            if node == 0 {
                return Err(IdSlot {
                    tag,
                    node: at as u32,
                });
            }
            let index = node as usize - 1;
            if t == tag && nodes.get(index).is_some_and(|n| n.id.as_bytes() == key) {
                return Ok(index);
            }
            at = (at + 1) & mask;
        }
        Err(IdSlot {
            tag,
            node: u32::MAX,
        })
    }

    /// The node whose ID is `key`.
    fn get(&self, nodes: &[Node], key: &[u8]) -> Option<usize> {
        self.find(nodes, key).ok()
    }

    /// Records node `index` in `vacant` (what [`IdTable::find`] returned for its ID).
    fn insert(&mut self, vacant: IdSlot, index: usize) {
        // A table of more than 2^32 slots or nodes (impossible: spans are `u32` offsets) would only stop
        // finding IDs, never loop.
        let (Some(s), Ok(node)) = (
            self.slots.get_mut(vacant.node as usize),
            u32::try_from(index + 1),
        ) else {
            return;
        };
        *s = IdSlot {
            tag: vacant.tag,
            node,
        };
        self.len += 1;
    }
}

/// The hash of an ID: the Fx scheme (as in rustc-hash) over 8-byte words, but the last word is read
/// overlapping the one before rather than copied out byte by byte, so that an ID costs a few multiplies and
/// no copy. IDs come from the operator's own config: no flooding to resist.
fn id_hash(bytes: &[u8]) -> u64 {
    let mut hash = 0u64;
    let mut add =
        |word: u64| hash = (hash.rotate_left(5) ^ word).wrapping_mul(0xf135_7aea_2e62_a9c5);
    let n = bytes.len();
    if n >= 8 {
        let mut at = 0;
        while at + 8 < n {
            add(word_at(bytes, at));
            at += 8;
        }
        add(word_at(bytes, n - 8));
    } else if n >= 4 {
        let half = |at: usize| {
            bytes
                .get(at..at + 4)
                .and_then(|w| <[u8; 4]>::try_from(w).ok())
                .map_or(0, u32::from_le_bytes)
        };
        add(u64::from(half(0)) | u64::from(half(n - 4)) << 32);
    } else if n > 0 {
        add(u64::from(bytes[0]) | u64::from(bytes[n / 2]) << 8 | u64::from(bytes[n - 1]) << 16);
    }
    // The words alone do not tell lengths apart (the last one overlaps).
    add(n as u64);
    // The multiply leaves the low bits weak, and they choose the slot: bring high bits down.
    hash.rotate_left(26)
}

/// Whether `bytes` holds a `.`, a word at a time (for the label of every block).
fn has_dot(bytes: &[u8]) -> bool {
    // A byte of `word` is a dot exactly when that byte of `word ^ DOTS` is zero.
    const DOTS: u64 = 0x2e2e_2e2e_2e2e_2e2e;
    let any_zero = |v: u64| v.wrapping_sub(0x0101_0101_0101_0101) & !v & 0x8080_8080_8080_8080 != 0;
    let n = bytes.len();
    if n >= 8 {
        let mut at = 0;
        while at + 8 < n {
            if any_zero(word_at(bytes, at) ^ DOTS) {
                return true;
            }
            at += 8;
        }
        any_zero(word_at(bytes, n - 8) ^ DOTS)
    } else if n >= 4 {
        let half = |at: usize| {
            bytes
                .get(at..at + 4)
                .and_then(|w| <[u8; 4]>::try_from(w).ok())
                .map_or(0, u32::from_le_bytes)
        };
        // Both halves (overlapping) in one word.
        any_zero((u64::from(half(0)) | u64::from(half(n - 4)) << 32) ^ DOTS)
    } else {
        bytes.contains(&b'.')
    }
}

/// The 8 bytes of `bytes` from `at` (which must be in range), little-endian.
fn word_at(bytes: &[u8], at: usize) -> u64 {
    bytes
        .get(at..at + 8)
        .and_then(|w| <[u8; 8]>::try_from(w).ok())
        .map_or(0, u64::from_le_bytes)
}

/// A list of node indices per node, all in one buffer (two allocations for the whole graph rather than one
/// per node). Index it like a `Vec<Vec<usize>>`: `adjacency[node]` is a slice.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Adjacency {
    /// Where each node's list starts in `items`; one more entry than there are nodes.
    starts: Vec<usize>,
    items: Vec<usize>,
}

impl Adjacency {
    /// Lists for `n` nodes from (node, item) pairs, each list deduplicated and ascending.
    #[cfg(test)]
    fn from_pairs(n: usize, pairs: impl Iterator<Item = (usize, usize)> + Clone) -> Self {
        let mut starts = vec![0usize; n + 1];
        for (node, _) in pairs.clone() {
            starts[node + 1] += 1;
        }
        for i in 0..n {
            starts[i + 1] += starts[i];
        }
        let mut fill = starts.clone();
        let mut items = vec![0usize; starts[n]];
        for (node, item) in pairs {
            items[fill[node]] = item;
            fill[node] += 1;
        }
        // Sort and deduplicate each list in place, compacting the buffer.
        let mut out = 0;
        let mut start = 0;
        for i in 0..n {
            let end = starts[i + 1];
            let list = &mut items[start..end];
            list.sort_unstable();
            let mut kept = 0;
            for j in 0..list.len() {
                if j == 0 || list[j] != list[j - 1] {
                    list[kept] = list[j];
                    kept += 1;
                }
            }
            items.copy_within(start..start + kept, out);
            starts[i] = out;
            out += kept;
            start = end;
        }
        starts[n] = out;
        items.truncate(out);
        Adjacency { starts, items }
    }

    /// No lists yet, with room for `nodes` lists of `items` items in all.
    fn with_capacity(nodes: usize, items: usize) -> Self {
        let mut starts = Vec::with_capacity(nodes + 1);
        starts.push(0);
        Adjacency {
            starts,
            items: Vec::with_capacity(items),
        }
    }

    /// Adds `item` to the list being built (the next node's).
    fn push(&mut self, item: usize) {
        self.items.push(item);
    }

    /// Ends the list being built, sorting and deduplicating it.
    fn end_list(&mut self) {
        let start = self.starts.last().copied().unwrap_or(0);
        let list = &mut self.items[start..];
        if list.windows(2).any(|w| w[0] >= w[1]) {
            list.sort_unstable();
            let mut kept = 1;
            for j in 1..list.len() {
                if list[j] != list[kept - 1] {
                    list[kept] = list[j];
                    kept += 1;
                }
            }
            self.items.truncate(start + kept);
        }
        self.starts.push(self.items.len());
    }

    /// The reversed lists: node `j`'s list holds every `i` whose list holds `j`, ascending (each list here
    /// being deduplicated, so are those).
    fn transpose(&self) -> Self {
        let n = self.len();
        let mut starts = vec![0usize; n + 1];
        for &j in &self.items {
            starts[j + 1] += 1;
        }
        for j in 0..n {
            starts[j + 1] += starts[j];
        }
        let mut fill = starts.clone();
        let mut items = vec![0usize; self.items.len()];
        for (i, w) in self.starts.windows(2).enumerate() {
            for &j in self.items.get(w[0]..w[1]).unwrap_or(&[]) {
                items[fill[j]] = i;
                fill[j] += 1;
            }
        }
        Adjacency { starts, items }
    }

    /// The number of nodes.
    pub fn len(&self) -> usize {
        self.starts.len().saturating_sub(1)
    }

    /// Whether there are no nodes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The list of `node`, if it exists.
    pub fn get(&self, node: usize) -> Option<&[usize]> {
        let (&start, &end) = (self.starts.get(node)?, self.starts.get(node + 1)?);
        self.items.get(start..end)
    }

    /// Every node's list, in node order.
    pub fn iter(&self) -> impl Iterator<Item = &[usize]> {
        self.starts
            .windows(2)
            .map(|w| self.items.get(w[0]..w[1]).unwrap_or(&[]))
    }
}

impl std::ops::Index<usize> for Adjacency {
    type Output = [usize];

    fn index(&self, node: usize) -> &[usize] {
        self.get(node).unwrap_or(&[])
    }
}

/// What the graph builder needs to know about names.
pub trait NameCatalog {
    /// Whether `name` is a registered component name.
    fn is_component(&self, name: &str) -> bool;
    /// All registered component names (for suggestions).
    fn component_names(&self) -> Vec<&str>;
    /// Whether `name` is a standard-library identifier (a function or namespace).
    fn is_stdlib(&self, name: &str) -> bool;
}

impl Graph {
    /// The node with this ID.
    pub fn get(&self, id: &str) -> Option<&Node> {
        self.index_of(id).map(|i| &self.nodes[i])
    }

    /// Whether node `index` refers to a component whose ID starts like a standard-library name
    /// (`string.pass.x`): inside such a node, that name is the component's namespace, not the library's.
    pub fn shadows_stdlib(&self, index: usize) -> bool {
        self.shadowing.get(index).copied().unwrap_or(false)
    }

    /// The index of the node with this ID.
    pub fn index_of(&self, id: &str) -> Option<usize> {
        self.ids.get(&self.nodes, id.as_bytes())
    }

    /// Builds and checks the graph of `sources`. Every independent problem is reported: unknown components
    /// (with a suggestion), missing labels, duplicate IDs (pointing at both places), top-level attributes,
    /// unresolvable and self references, and cycles (naming every member).
    pub fn build(sources: &Sources, names: &dyn NameCatalog) -> Result<Graph, LoadDiagnostics> {
        let declared = Declared::new(sources, names);
        let references = declared.resolve(sources, names, 0..declared.len());
        declared.finish(sources, names, vec![references])
    }

    /// The rest of [`Graph::build`], once the references of every node are resolved.
    fn finish(
        mut self,
        sources: &Sources,
        mut diags: LoadDiagnostics,
    ) -> Result<Graph, LoadDiagnostics> {
        let graph = &mut self;
        graph.dependants = graph.dependencies.transpose();

        // Every node is ordered unless some are in a cycle: only then look for the cycles to report.
        let order = topological_order(&graph.dependencies, &graph.dependants);
        if order.len() < graph.nodes.len() {
            for cycle in strongly_connected(&graph.dependencies) {
                let members: Vec<&str> = cycle.iter().map(|&i| &*graph.nodes[i].id).collect();
                let first = &graph.nodes[cycle[0]];
                let span = first.name_span(sources);
                let msg = format!("cycle detected: {}", members.join(", "));
                diags.push(
                    &sources.files[first.file].source,
                    Diagnostic::error(span, msg),
                );
            }
        }

        if diags.has_errors() {
            return Err(diags);
        }
        graph.order = order;
        Ok(self)
    }

    /// The nodes of `sources`, with their IDs, and no references yet; and for each node, whether the first part
    /// of its ID is a standard-library name.
    fn declare(
        sources: &Sources,
        names: &dyn NameCatalog,
        diags: &mut LoadDiagnostics,
    ) -> (Graph, Vec<bool>) {
        let count: usize = sources.files.iter().map(|f| f.ast.body.len()).sum();
        let mut graph = Graph {
            nodes: Vec::with_capacity(count),
            ids: IdTable::with_capacity(count),
            ..Graph::default()
        };

        let mut root_is_stdlib = Vec::with_capacity(count);
        // IDs mostly share a few roots (`pyroscope`, `discovery`): look each up once in a row.
        let mut last_root: Option<(&str, bool)> = None;
        let mut scratch = String::new();
        // Blocks of one component often come in a row: its interned name, looked up once per run of them.
        let mut last_component: Option<Arc<str>> = None;
        for (file_index, file) in sources.files.iter().enumerate() {
            let src = file.source.text();
            for (stmt_index, stmt) in file.ast.top_level().iter().enumerate() {
                let block = match stmt {
                    Stmt::Block(b) => b,
                    Stmt::Attribute(a) => {
                        let msg = format!("unrecognized attribute {}", a.name.text(src));
                        diags.push(&file.source, Diagnostic::error(a.name, msg));
                        continue;
                    }
                };
                let name_parts = block.name(&file.ast);
                let name = dotted(name_parts, src);
                // Only for diagnostics.
                let name_span = || block.name_span(&file.ast);
                // The ID's number of dot-separated parts: name parts are identifiers, which have no dots.
                let (id, kind, parts): (Arc<str>, _, _) = if CONFIG_BLOCKS.contains(&&*name) {
                    (
                        Arc::from(&*name),
                        NodeKind::Config {
                            name: name.into_owned(),
                        },
                        name_parts.len(),
                    )
                } else if let Some(interned) = match &last_component {
                    Some(last) if **last == *name => Some(last.clone()),
                    _ => names.is_component(&name).then(|| {
                        let interned: Arc<str> = Arc::from(&*name);
                        last_component = Some(interned.clone());
                        interned
                    }),
                } {
                    let Some(label) = label_text(block, src) else {
                        let msg = format!("component {name:?} must have a label");
                        diags.push(&file.source, Diagnostic::error(name_span(), msg));
                        continue;
                    };
                    scratch.clear();
                    scratch.push_str(&name);
                    scratch.push('.');
                    scratch.push_str(label);
                    (
                        Arc::from(scratch.as_str()),
                        NodeKind::Component { name: interned },
                        match has_dot(label.as_bytes()) {
                            false => name_parts.len() + 1,
                            true => {
                                name_parts.len() + 1 + label.bytes().filter(|&b| b == b'.').count()
                            }
                        },
                    )
                } else {
                    let mut msg = format!("cannot find the definition of component name {name:?}");
                    if let Some(s) = suggest(&name, names.component_names()) {
                        msg.push_str(&format!(" (did you mean {s:?}?)"));
                    }
                    diags.push(&file.source, Diagnostic::error(name_span(), msg));
                    continue;
                };
                match graph.ids.find(&graph.nodes, id.as_bytes()) {
                    Ok(first) => {
                        let first = &graph.nodes[first];
                        let other = &sources.files[first.file].source;
                        let other_span = first.name_span(sources);
                        let pos = other.position(other_span.start);
                        let msg = format!(
                            "block {id} already declared at {}:{}:{}",
                            other.name(),
                            pos.line,
                            pos.column
                        );
                        diags.push(&file.source, Diagnostic::error(name_span(), msg));
                        continue;
                    }
                    Err(vacant) => graph.ids.insert(vacant, graph.nodes.len()),
                }
                graph.id_parts |= part_bit(parts);
                // The ID up to its first dot.
                let root = name_parts.first().map_or("", |first| first.text(src));
                let known = match last_root {
                    Some((r, known)) if r == root => known,
                    _ => {
                        let known = names.is_stdlib(root);
                        last_root = Some((root, known));
                        known
                    }
                };
                root_is_stdlib.push(known);
                graph.nodes.push(Node {
                    id,
                    kind,
                    file: file_index,
                    stmt: stmt_index,
                    references: Vec::new(),
                });
            }
        }
        (graph, root_is_stdlib)
    }

    /// Resolves a traversal to (target node, span of the prefix naming it) by growing its prefix until it is
    /// an ID. `key` is scratch space for traversals written with blanks around their dots.
    fn resolve(&self, rev: &[Span], src: &str, key: &mut String) -> Option<(usize, Span)> {
        // `rev` is the traversal last part first: part `i` in source order is `rev[len - 1 - i]`.
        let len = rev.len();
        let part = |i: usize| rev[len - 1 - i];
        let root = part(0);
        let start = root.start as usize;
        // Usually the traversal is written without blanks, so each prefix is a slice of the source; `key`
        // is only written for a prefix that is not. Parts `1..=checked` were checked to follow a dot.
        let mut contiguous = true;
        let mut checked = 0;
        // Only prefixes of lengths that some ID has are looked up.
        let mut parts = 0;
        loop {
            let longer = if parts + 1 >= 63 {
                self.id_parts & part_bit(63)
            } else {
                self.id_parts & (u64::MAX << (parts + 1))
            };
            if longer == 0 {
                return None;
            }
            parts = (longer.trailing_zeros() as usize).max(parts + 1);
            if parts > len {
                return None;
            }
            while checked + 1 < parts {
                checked += 1;
                let (prev, next) = (part(checked - 1), part(checked));
                contiguous &= next.start == prev.end + 1
                    && src.as_bytes().get(prev.end as usize) == Some(&b'.');
            }
            let last = part(parts - 1);
            let prefix = match src.as_bytes().get(start..last.end as usize) {
                Some(prefix) if contiguous => prefix,
                _ => {
                    key.clear();
                    for i in 0..parts {
                        if i > 0 {
                            key.push('.');
                        }
                        key.push_str(part(i).text(src));
                    }
                    key.as_bytes()
                }
            };
            if let Some(target) = self.ids.get(&self.nodes, prefix) {
                return Some((target, cover(root, last)));
            }
        }
    }
}

/// A graph whose nodes are declared (every ID is known) and whose references are not resolved yet: the
/// nodes' references can then be resolved in parts, on several threads (see [`Declared::resolve`]).
#[derive(Clone)]
pub(crate) struct Declared {
    graph: Graph,
    /// For each node, whether the first part of its ID is a standard-library name.
    root_is_stdlib: Vec<bool>,
    diags: LoadDiagnostics,
}

/// The references of a range of nodes (see [`Declared::resolve`]).
pub(crate) struct ResolvedPart {
    start: usize,
    references: Vec<Vec<Reference>>,
    /// The nodes' dependency lists, as an adjacency of their own.
    dependencies: Adjacency,
    shadowing: Vec<bool>,
    diags: LoadDiagnostics,
}

impl Declared {
    /// Declares the nodes of `sources`.
    pub(crate) fn new(sources: &Sources, names: &dyn NameCatalog) -> Declared {
        let mut diags = LoadDiagnostics::default();
        let (graph, root_is_stdlib) = Graph::declare(sources, names, &mut diags);
        Declared {
            graph,
            root_is_stdlib,
            diags,
        }
    }

    /// How many nodes were declared.
    pub(crate) fn len(&self) -> usize {
        self.graph.nodes.len()
    }

    /// Resolves the references of nodes `range` (every ID being known). One buffer holds the parts of every
    /// traversal of a node, so collecting them does not allocate per traversal.
    pub(crate) fn resolve(
        &self,
        sources: &Sources,
        names: &dyn NameCatalog,
        range: std::ops::Range<usize>,
    ) -> ResolvedPart {
        let graph = &self.graph;
        let range = range.start.min(graph.nodes.len())..range.end.min(graph.nodes.len());
        let n = range.len();
        let mut part = ResolvedPart {
            start: range.start,
            references: Vec::with_capacity(n),
            dependencies: Adjacency::with_capacity(n, n),
            shadowing: Vec::with_capacity(n),
            diags: LoadDiagnostics::default(),
        };
        let diags = &mut part.diags;
        let mut parts = Vec::new();
        let mut traversals = Vec::new();
        let mut key = String::new();
        for index in range {
            let node = &graph.nodes[index];
            let file = &sources.files[node.file];
            let src = file.source.text();
            parts.clear();
            traversals.clear();
            if let Some(block) = node.block(sources) {
                collect_body(block.body, &file.ast, &mut parts, &mut traversals);
            }
            let mut shadows = false;
            let mut refs = Vec::new();
            if !traversals.is_empty() {
                refs.reserve_exact(traversals.len());
                for &(from, to) in &traversals {
                    // The parts, last first.
                    let t = &parts[from..to];
                    let root = t[t.len() - 1];
                    let span = cover(root, t[0]);
                    match graph.resolve(t, src, &mut key) {
                        Some((target, _)) if target == index => {
                            diags.push(
                                &file.source,
                                Diagnostic::error(span, "cannot reference self"),
                            );
                        }
                        Some((target, id_span)) => {
                            refs.push(Reference {
                                target,
                                span,
                                id_span,
                            });
                            part.dependencies.push(target);
                            shadows |= self.root_is_stdlib[target];
                        }
                        None if names.is_stdlib(root.text(src)) => {}
                        None => {
                            let full: Vec<&str> = t.iter().rev().map(|p| p.text(src)).collect();
                            let msg = format!(
                                "component {:?} does not exist or is out of scope",
                                full.join(".")
                            );
                            diags.push(&file.source, Diagnostic::error(span, msg));
                        }
                    }
                }
            }
            part.references.push(refs);
            part.dependencies.end_list();
            part.shadowing.push(shadows);
        }
        part
    }

    /// Checks and orders the graph, given the references of its nodes: `parts`, in node order. Nodes that no
    /// part covers (there should be none) are resolved here.
    pub(crate) fn finish(
        self,
        sources: &Sources,
        names: &dyn NameCatalog,
        parts: Vec<ResolvedPart>,
    ) -> Result<Graph, LoadDiagnostics> {
        let n = self.len();
        let mut complete = Vec::with_capacity(parts.len() + 1);
        let mut next = 0;
        for part in parts {
            if part.start < next {
                continue;
            }
            if part.start > next {
                complete.push(self.resolve(sources, names, next..part.start));
            }
            next = part.start + part.shadowing.len();
            complete.push(part);
        }
        if next < n {
            complete.push(self.resolve(sources, names, next..n));
        }
        let Declared {
            mut graph,
            mut diags,
            ..
        } = self;
        let items = complete.iter().map(|p| p.dependencies.items.len()).sum();
        let mut dependencies = Adjacency::with_capacity(n, items);
        let mut shadowing = Vec::with_capacity(n);
        for part in complete {
            for (k, refs) in part.references.into_iter().enumerate() {
                if let Some(node) = graph.nodes.get_mut(part.start + k) {
                    node.references = refs;
                }
            }
            for list in part.dependencies.iter() {
                dependencies.items.extend_from_slice(list);
                dependencies.starts.push(dependencies.items.len());
            }
            shadowing.extend(part.shadowing);
            diags.0.extend(part.diags.0);
        }
        graph.dependencies = dependencies;
        graph.shadowing = shadowing;
        graph.finish(sources, diags)
    }
}

/// [`Block::label_text`], without decoding characters when the label is quoted as usual.
fn label_text<'s>(block: &Block, src: &'s str) -> Option<&'s str> {
    let label = block.label?;
    match src.as_bytes().get(label.start as usize..label.end as usize) {
        Some([b'"', .., b'"']) => src.get(label.start as usize + 1..label.end as usize - 1),
        _ => block.label_text(src),
    }
}

/// [`Span::to`], inlined.
fn cover(a: Span, b: Span) -> Span {
    Span {
        start: a.start.min(b.start),
        end: a.end.max(b.end),
    }
}

/// The bit of [`Graph::id_parts`] for IDs of `parts` parts.
fn part_bit(parts: usize) -> u64 {
    1 << parts.min(63)
}

/// A block's dotted name, borrowed from the source when it is written without blanks.
fn dotted<'s>(name: &[Span], src: &'s str) -> Cow<'s, str> {
    if let (Some(first), Some(last)) = (name.first(), name.last()) {
        // Written without blanks: every part but the first comes right after a dot.
        let tight = name.windows(2).all(|w| {
            w[1].start == w[0].end + 1 && src.as_bytes().get(w[0].end as usize) == Some(&b'.')
        });
        if let (true, Some(text)) = (tight, src.get(first.start as usize..last.end as usize)) {
            return Cow::Borrowed(text);
        }
    }
    let mut s = String::new();
    for (i, part) in name.iter().enumerate() {
        if i > 0 {
            s.push('.');
        }
        s.push_str(part.text(src));
    }
    Cow::Owned(s)
}

fn collect_body(body: Body, file: &File, parts: &mut Vec<Span>, out: &mut Vec<(usize, usize)>) {
    for stmt in file.stmts(body) {
        match stmt {
            Stmt::Attribute(a) => collect_expr(&a.value, file, parts, out),
            Stmt::Block(b) => collect_body(b.body, file, parts, out),
        }
    }
}

/// Collects the traversals in `expr` (an identifier followed by `.name` accesses; indexing or calling ends
/// one) as ranges of `parts`, each with its parts in reverse order (the identifier last).
fn collect_expr(expr: &Expr, file: &File, parts: &mut Vec<Span>, out: &mut Vec<(usize, usize)>) {
    // The accessed names, last first, then the root if it is an identifier: a traversal is kept in reverse.
    let from = parts.len();
    let mut root = expr;
    while let ExprKind::Access(value, name) = root.kind {
        parts.push(name);
        root = file.expr(value);
    }
    if let ExprKind::Ident = root.kind {
        parts.push(root.span);
        out.push((from, parts.len()));
        return;
    }
    parts.truncate(from);
    // Accesses on anything else are no traversal; look inside what they access.
    match root.kind {
        ExprKind::Index(value, index) => {
            collect_expr(file.expr(value), file, parts, out);
            collect_expr(file.expr(index), file, parts, out);
        }
        ExprKind::Call(call) => {
            collect_expr(file.expr(call.func), file, parts, out);
            for arg in file.exprs(call.args) {
                collect_expr(arg, file, parts, out);
            }
        }
        ExprKind::Array(items) => {
            for item in file.exprs(items) {
                collect_expr(item, file, parts, out);
            }
        }
        ExprKind::Object(fields) => {
            for field in file.fields(fields) {
                collect_expr(&field.value, file, parts, out);
            }
        }
        ExprKind::Unary(_, x) | ExprKind::Paren(x) => collect_expr(file.expr(x), file, parts, out),
        ExprKind::Binary(_, l, r) => {
            collect_expr(file.expr(l), file, parts, out);
            collect_expr(file.expr(r), file, parts, out);
        }
        ExprKind::Ident | ExprKind::Access(..) | ExprKind::Literal(_) => {}
    }
}

/// Tarjan's strongly connected components with more than one member, iteratively (graphs may be deep
/// chains).
fn strongly_connected(edges: &Adjacency) -> Vec<Vec<usize>> {
    const UNVISITED: usize = usize::MAX;
    let n = edges.len();
    let (mut index, mut low, mut on_stack) = (vec![UNVISITED; n], vec![0; n], vec![false; n]);
    let (mut stack, mut out, mut counter) = (Vec::new(), Vec::new(), 0);
    // (node, next edge to look at)
    let mut work: Vec<(usize, usize)> = Vec::new();
    for root in 0..n {
        if index[root] != UNVISITED {
            continue;
        }
        work.clear();
        work.push((root, 0));
        while let Some(&mut (v, ref mut next)) = work.last_mut() {
            if *next == 0 && index[v] == UNVISITED {
                index[v] = counter;
                low[v] = counter;
                counter += 1;
                stack.push(v);
                on_stack[v] = true;
            }
            if let Some(&w) = edges[v].get(*next) {
                *next += 1;
                if index[w] == UNVISITED {
                    work.push((w, 0));
                } else if on_stack[w] {
                    low[v] = low[v].min(index[w]);
                }
                continue;
            }
            work.pop();
            if let Some(&(parent, _)) = work.last() {
                low[parent] = low[parent].min(low[v]);
            }
            if low[v] == index[v] {
                // A node alone is no cycle (self references are reported on their own).
                if stack.last() == Some(&v) {
                    stack.pop();
                    on_stack[v] = false;
                    continue;
                }
                let mut component = Vec::new();
                while let Some(w) = stack.pop() {
                    on_stack[w] = false;
                    component.push(w);
                    if w == v {
                        break;
                    }
                }
                component.sort_unstable();
                out.push(component);
            }
        }
    }
    out
}

/// Kahn's algorithm: dependencies before dependants, ties in source order (the smallest ready index comes
/// next). Nodes in a cycle are left out, so the order is shorter than the graph exactly when it has one.
///
/// Configs are mostly written dependencies first, so rather than keeping every ready node in a heap, a cursor
/// walks the nodes in source order and takes each one that is ready when reached; only a node that becomes
/// ready after the cursor has passed it goes into the heap (whose nodes are then all smaller than any ready
/// node at or after the cursor).
fn topological_order(dependencies: &Adjacency, dependants: &Adjacency) -> Vec<usize> {
    let n = dependencies.len();
    let mut remaining: Vec<usize> = dependencies
        .starts
        .windows(2)
        .map(|w| w[1] - w[0])
        .collect();
    let mut passed: std::collections::BinaryHeap<std::cmp::Reverse<usize>> =
        std::collections::BinaryHeap::new();
    let mut cursor = 0;
    let mut order = Vec::with_capacity(n);
    loop {
        let i = match passed.pop() {
            Some(std::cmp::Reverse(i)) => i,
            None => {
                while cursor < n && remaining[cursor] != 0 {
                    cursor += 1;
                }
                if cursor == n {
                    break;
                }
                cursor += 1;
                cursor - 1
            }
        };
        order.push(i);
        for &d in &dependants[i] {
            remaining[d] -= 1;
            if remaining[d] == 0 && d < cursor {
                passed.push(std::cmp::Reverse(d));
            }
        }
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Names;
    impl NameCatalog for Names {
        fn is_component(&self, name: &str) -> bool {
            ["local.file", "test.pass", "pyroscope.scrape", "a.b.c.d"].contains(&name)
        }
        fn component_names(&self) -> Vec<&str> {
            vec!["local.file", "test.pass", "pyroscope.scrape", "a.b.c.d"]
        }
        fn is_stdlib(&self, name: &str) -> bool {
            ["env", "constants", "string", "concat"].contains(&name)
        }
    }

    fn build(text: &str) -> Result<Graph, Vec<String>> {
        let sources = Sources::parse([("t.river", text)]).map_err(|d| vec![d.to_string()])?;
        Graph::build(&sources, &Names).map_err(|d| d.iter().map(|d| d.to_string()).collect())
    }

    #[test]
    fn references_resolve_to_ids_of_any_length() {
        let g = build(
            "a.b.c.d \"x\" { }\ntest.pass \"y\" { input = a.b.c.d.x.out }\n\
             test.pass \"z\" { input = [test.pass.y.output, a.b.c.d.x.other.deep] }\n",
        )
        .unwrap();
        let targets = |id: &str| -> Vec<&str> {
            let n = g.get(id).unwrap();
            n.references
                .iter()
                .map(|r| &*g.nodes[r.target].id)
                .collect()
        };
        assert_eq!(targets("test.pass.y"), ["a.b.c.d.x"]);
        assert_eq!(targets("test.pass.z"), ["test.pass.y", "a.b.c.d.x"]);
        assert_eq!(g.get("a.b.c.d.x").map(Node::label), Some("x"));
        assert_eq!(
            build("test.pass \"y\" { input = a.b.c.d.x }\n").unwrap_err(),
            ["t.river:1:25: component \"a.b.c.d.x\" does not exist or is out of scope"]
        );
    }

    #[test]
    fn adjacency_lists_are_sorted_deduplicated_and_indexable() {
        let pairs = [(2, 5), (0, 3), (2, 1), (2, 5), (0, 3), (3, 0)];
        let a = Adjacency::from_pairs(5, pairs.iter().copied());
        assert_eq!(a.len(), 5);
        assert_eq!(&a[0], &[3]);
        assert!(a[1].is_empty());
        assert_eq!(&a[2], &[1, 5]);
        assert_eq!(&a[3], &[0]);
        assert!(a[4].is_empty() && a.get(4) == Some(&[][..]));
        assert_eq!(a.get(5), None);
        assert!(a[7].is_empty());
        let lists: Vec<&[usize]> = a.iter().collect();
        assert_eq!(lists, [&[3][..], &[], &[1, 5], &[0], &[]]);
        assert!(Adjacency::from_pairs(0, std::iter::empty()).is_empty());
    }

    #[test]
    fn adjacency_lists_pushed_one_by_one_and_transposed() {
        let lists: [&[usize]; 5] = [&[3, 3], &[], &[5, 1, 4, 1], &[0], &[2, 0]];
        let mut a = Adjacency::with_capacity(6, 0);
        for list in lists {
            list.iter().for_each(|&j| a.push(j));
            a.end_list();
        }
        a.end_list();
        let pairs = lists
            .iter()
            .enumerate()
            .flat_map(|(i, l)| l.iter().map(move |&j| (i, j)));
        assert_eq!(a, Adjacency::from_pairs(6, pairs.clone()));
        assert_eq!(
            a.transpose(),
            Adjacency::from_pairs(6, pairs.map(|(i, j)| (j, i)))
        );
        assert_eq!(Adjacency::with_capacity(0, 0).transpose().len(), 0);
    }

    #[test]
    fn dots_are_found_anywhere_in_a_label() {
        for n in 0..40 {
            let plain = "a".repeat(n);
            assert!(!has_dot(plain.as_bytes()), "{n}");
            for at in 0..n {
                let mut s = plain.clone().into_bytes();
                s[at] = b'.';
                assert!(has_dot(&s), "{n} {at}");
                // Neighbours of `.` in ASCII and bytes with the high bit set are no dot.
                s[at] = [b'-', b'/', 0xae, 0x2f, 0x00, 0xff][at % 6];
                assert!(!has_dot(&s), "{n} {at}");
            }
        }
    }

    #[test]
    fn ids_are_found_by_exact_bytes_only() {
        let mut text = String::new();
        let labels: Vec<String> = (0..3000)
            .map(|i| {
                ["x", "ab", "abcdefg", "abcdefgh", "abcdefghijklmnopq"][i % 5].to_string()
                    + &i.to_string()
            })
            .collect();
        for l in &labels {
            text.push_str(&format!("test.pass \"{l}\" {{ }}\n"));
        }
        let g = build(&text).unwrap();
        let oracle: std::collections::HashMap<String, usize> = labels
            .iter()
            .enumerate()
            .map(|(i, l)| (format!("test.pass.{l}"), i))
            .collect();
        for (id, &i) in &oracle {
            assert_eq!(g.index_of(id), Some(i));
            assert_eq!(g.get(id).map(|n| &*n.id), Some(id.as_str()));
            for other in [
                &id[..id.len() - 1],
                &format!("{id}0"),
                &id.replace('a', "b"),
            ] {
                assert_eq!(g.index_of(other), oracle.get(other).copied(), "{other}");
            }
        }
        assert_eq!(g.index_of(""), None);
        assert_eq!(g.index_of("test.pass"), None);
        assert_eq!(Graph::default().index_of("test.pass.x"), None);
        assert!(Graph::default().get("").is_none());
    }

    #[test]
    fn order_takes_the_first_ready_node_even_one_the_walk_has_passed() {
        // `a` is ready only once `d` is, `c` once `a` is: both come before `e`, ready from the start.
        let g = build(
            "test.pass \"a\" { input = test.pass.d.output }\n\
             test.pass \"b\" { }\n\
             test.pass \"c\" { input = test.pass.a.output }\n\
             test.pass \"d\" { }\n\
             test.pass \"e\" { }\n\
             test.pass \"f\" { input = test.pass.e.output }\n",
        )
        .unwrap();
        let ids: Vec<_> = g.order.iter().map(|&i| g.nodes[i].label()).collect();
        assert_eq!(ids, ["b", "d", "a", "c", "e", "f"]);
    }

    #[test]
    fn references_resolve_by_prefix_and_order_dependencies_first() {
        let text = "test.pass \"c\" { input = [test.pass.a.output, test.pass.b.output[0].x] }\n\
             test.pass \"b\" { input = test.pass.a.output }\n\
             test.pass \"a\" { input = env(\"X\") + constants.hostname + string.to_lower(\"A\") }\n";
        let g = build(text).unwrap();
        let ids: Vec<_> = g.order.iter().map(|&i| &*g.nodes[i].id).collect();
        assert_eq!(ids, ["test.pass.a", "test.pass.b", "test.pass.c"]);
        let c = g.get("test.pass.c").unwrap();
        let targets: Vec<_> = c
            .references
            .iter()
            .map(|r| (&*g.nodes[r.target].id, r.path(text).join(".")))
            .collect();
        assert_eq!(
            targets,
            [
                ("test.pass.a", "output".to_string()),
                ("test.pass.b", "output".to_string())
            ]
        );
        assert_eq!(g.dependants[g.index_of("test.pass.a").unwrap()].len(), 2);
    }

    #[test]
    fn blanks_around_dots_do_not_change_resolution() {
        let text = "test . pass \"a\" { }\n\
             test.pass \"b\" { input = [test . pass.a .output, test.pass.a.output] }\n";
        let g = build(text).unwrap();
        let b = g.get("test.pass.b").unwrap();
        let refs: Vec<_> = b
            .references
            .iter()
            .map(|r| (&*g.nodes[r.target].id, r.path(text).join(".")))
            .collect();
        assert_eq!(
            refs,
            [
                ("test.pass.a", "output".into()),
                ("test.pass.a", "output".into())
            ]
        );
        assert_eq!(
            g.get("test.pass.a").map(|n| n.kind.clone()),
            Some(NodeKind::Component {
                name: "test.pass".into(),
            })
        );
        assert_eq!(g.get("test.pass.a").map(Node::label), Some("a"));
    }

    #[test]
    fn a_component_shadows_a_namespace() {
        let g = build(
            "test.pass \"x\" { }\nlocal.file \"string\" { filename = local.file.string.content }\n",
        );
        assert_eq!(g.unwrap_err(), ["t.river:2:34: cannot reference self"]);
    }

    #[test]
    fn load_errors_are_all_reported_with_positions() {
        let errs = build(
            "top = 1\n\
             local.file { }\n\
             pyroscope.scrap \"x\" { }\n\
             test.pass \"a\" { input = nope.x }\n\
             test.pass \"a\" { }\n",
        )
        .unwrap_err();
        assert_eq!(errs, [
            "t.river:1:1: unrecognized attribute top",
            "t.river:2:1: component \"local.file\" must have a label",
            "t.river:3:1: cannot find the definition of component name \"pyroscope.scrap\" (did you mean \"pyroscope.scrape\"?)",
            "t.river:5:1: block test.pass.a already declared at t.river:4:1",
            "t.river:4:25: component \"nope.x\" does not exist or is out of scope",
        ]);
    }

    #[test]
    fn cycles_name_every_member() {
        let errs = build(
            "test.pass \"a\" { input = test.pass.c.output }\n\
             test.pass \"b\" { input = test.pass.a.output }\n\
             test.pass \"c\" { input = test.pass.b.output }\n\
             test.pass \"d\" { input = test.pass.a.output }\n",
        )
        .unwrap_err();
        assert_eq!(
            errs,
            ["t.river:1:1: cycle detected: test.pass.a, test.pass.b, test.pass.c"]
        );
    }

    #[test]
    fn deep_chains_do_not_overflow() {
        let mut text = String::from("test.pass \"n0\" { }\n");
        for i in 1..20_000 {
            text.push_str(&format!(
                "test.pass \"n{i}\" {{ input = test.pass.n{}.output }}\n",
                i - 1
            ));
        }
        let g = build(&text).unwrap();
        assert_eq!(
            g.order.first().map(|&i| &*g.nodes[i].id),
            Some("test.pass.n0")
        );
        assert_eq!(g.order.len(), 20_000);
    }
}
