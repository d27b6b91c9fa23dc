//! The component graph drawn as SVG with a layered layout: each node sits one column right of the rightmost
//! component it refers to, so exports flow left to right; within a column, nodes are ordered by the
//! average position of their neighbours (a few barycentre sweeps) to keep edges short and uncrossed.

use super::html::{escape, path_segment};
use flow::{ComponentInfo, HealthState};
use std::collections::HashMap;
use std::fmt::Write as _;

/// Graphs with more nodes than this are not drawn (the page lists them instead).
pub const MAX_NODES: usize = 400;

const NODE_H: f64 = 40.0;
const ROW_GAP: f64 = 18.0;
const COL_GAP: f64 = 70.0;
const MARGIN: f64 = 16.0;
const CHAR_W: f64 = 7.2;

/// Where each node goes: `(column, row)` per node, in input order.
pub fn layout(nodes: &[ComponentInfo]) -> Vec<(usize, usize)> {
    let index: HashMap<&str, usize> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.id.as_str(), i))
        .collect();
    let deps: Vec<Vec<usize>> = nodes
        .iter()
        .map(|n| {
            n.references_to
                .iter()
                .filter_map(|r| index.get(r.as_str()).copied())
                .collect()
        })
        .collect();
    // Column = longest chain of references below the node. The graph is acyclic (the runtime rejects
    // cycles), but a bound keeps a bad input from looping.
    let mut col = vec![0usize; nodes.len()];
    for _ in 0..nodes.len() {
        let mut changed = false;
        for i in 0..nodes.len() {
            let c = deps[i].iter().map(|&d| col[d] + 1).max().unwrap_or(0);
            if c > col[i] && c < nodes.len() {
                col[i] = c;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    let columns = col.iter().copied().max().map_or(0, |m| m + 1);
    let mut by_col: Vec<Vec<usize>> = vec![Vec::new(); columns];
    for (i, &c) in col.iter().enumerate() {
        by_col[c].push(i);
    }
    let mut row = vec![0f64; nodes.len()];
    let place = |by_col: &Vec<Vec<usize>>, row: &mut Vec<f64>| {
        for members in by_col {
            for (r, &i) in members.iter().enumerate() {
                row[i] = r as f64;
            }
        }
    };
    place(&by_col, &mut row);
    let mut dependants: Vec<Vec<usize>> = vec![Vec::new(); nodes.len()];
    for (i, ds) in deps.iter().enumerate() {
        for &d in ds {
            dependants[d].push(i);
        }
    }
    for sweep in 0..4 {
        for members in by_col.iter_mut() {
            let key = |i: usize| {
                let neighbours = if sweep % 2 == 0 {
                    &deps[i]
                } else {
                    &dependants[i]
                };
                if neighbours.is_empty() {
                    row[i]
                } else {
                    neighbours.iter().map(|&n| row[n]).sum::<f64>() / neighbours.len() as f64
                }
            };
            let mut keyed: Vec<(f64, usize)> = members.iter().map(|&i| (key(i), i)).collect();
            keyed.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            *members = keyed.into_iter().map(|(_, i)| i).collect();
        }
        place(&by_col, &mut row);
    }
    (0..nodes.len())
        .map(|i| (col[i], row[i] as usize))
        .collect()
}

fn health_class(s: HealthState) -> &'static str {
    match s {
        HealthState::Healthy => "healthy",
        HealthState::Unknown => "unknown",
        HealthState::Unhealthy => "unhealthy",
        HealthState::Exited => "exited",
    }
}

/// The SVG of the graph; `href_prefix` leads to a component's page (`component/`), `selected` is
/// highlighted.
pub fn svg(nodes: &[ComponentInfo], href_prefix: &str, selected: Option<&str>) -> String {
    if nodes.is_empty() {
        return String::new();
    }
    let pos = layout(nodes);
    let width_of = |n: &ComponentInfo| (n.id.chars().count() as f64 * CHAR_W + 28.0).max(120.0);
    let columns = pos.iter().map(|p| p.0).max().unwrap_or(0) + 1;
    let mut col_w = vec![0f64; columns];
    for (n, p) in nodes.iter().zip(&pos) {
        col_w[p.0] = col_w[p.0].max(width_of(n));
    }
    let mut col_x = vec![MARGIN; columns];
    for c in 1..columns {
        col_x[c] = col_x[c - 1] + col_w[c - 1] + COL_GAP;
    }
    let rows = pos.iter().map(|p| p.1).max().unwrap_or(0) + 1;
    let total_w = col_x[columns - 1] + col_w[columns - 1] + MARGIN;
    let total_h = MARGIN * 2.0 + rows as f64 * (NODE_H + ROW_GAP) - ROW_GAP;
    let xy = |i: usize| {
        let (c, r) = pos[i];
        (col_x[c], MARGIN + r as f64 * (NODE_H + ROW_GAP))
    };
    let index: HashMap<&str, usize> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.id.as_str(), i))
        .collect();

    let mut out = String::with_capacity(256 * nodes.len());
    let _ = write!(
        out,
        r#"<svg class="graph" xmlns="http://www.w3.org/2000/svg" width="{total_w:.0}" height="{total_h:.0}" viewBox="0 0 {total_w:.0} {total_h:.0}" role="img" aria-label="component graph">"#
    );
    out.push_str(r##"<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#8a94a6"/></marker></defs>"##);
    for (i, n) in nodes.iter().enumerate() {
        for dep in &n.references_to {
            let Some(&d) = index.get(dep.as_str()) else {
                continue;
            };
            let (dx, dy) = xy(d);
            let (x, y) = xy(i);
            let (x1, y1) = (dx + col_w[pos[d].0], dy + NODE_H / 2.0);
            let (x2, y2) = (x - 2.0, y + NODE_H / 2.0);
            let mid = (x1 + x2) / 2.0;
            let _ = write!(
                out,
                r#"<path class="edge" d="M{x1:.1},{y1:.1} C{mid:.1},{y1:.1} {mid:.1},{y2:.1} {x2:.1},{y2:.1}" marker-end="url(#arrow)"/>"#
            );
        }
    }
    for (i, n) in nodes.iter().enumerate() {
        let (x, y) = xy(i);
        let w = col_w[pos[i].0];
        let class = health_class(n.health.state);
        let sel = if selected == Some(n.id.as_str()) {
            " selected"
        } else {
            ""
        };
        let id = escape(&n.id);
        let seg = escape(&path_segment(&n.id));
        let _ = write!(
            out,
            r#"<a href="{href_prefix}{seg}"><g class="node {class}{sel}"><title>{id}: {state}</title><rect x="{x:.1}" y="{y:.1}" width="{w:.1}" height="{NODE_H}" rx="6"/><circle cx="{cx:.1}" cy="{cy:.1}" r="4"/><text x="{tx:.1}" y="{ty:.1}">{id}</text></g></a>"#,
            state = n.health.state.as_str(),
            cx = x + 12.0,
            cy = y + NODE_H / 2.0,
            tx = x + 22.0,
            ty = y + NODE_H / 2.0 + 4.0,
        );
    }
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use flow::Health;

    fn node(id: &str, refs: &[&str]) -> ComponentInfo {
        ComponentInfo {
            id: id.into(),
            name: id.into(),
            label: String::new(),
            health: Health::new(HealthState::Healthy, "ok"),
            references_to: refs.iter().map(|s| s.to_string()).collect(),
            referenced_by: vec![],
            arguments: serde_json::Value::Null,
            exports: serde_json::Value::Null,
            debug_info: serde_json::Value::Null,
        }
    }

    #[test]
    fn columns_follow_the_longest_reference_chain() {
        // d refers to c and a; c to b; b to a.
        let nodes = [
            node("d", &["c", "a"]),
            node("a", &[]),
            node("b", &["a"]),
            node("c", &["b"]),
            node("e", &[]),
        ];
        let pos = layout(&nodes);
        let cols: Vec<usize> = pos.iter().map(|p| p.0).collect();
        assert_eq!(cols, [3, 0, 1, 2, 0]);
        // Two nodes in column 0 get distinct rows.
        assert_ne!(pos[1].1, pos[4].1);
    }

    #[test]
    fn svg_links_every_node_and_draws_every_edge() {
        let nodes = [node("a.b.x", &[]), node("c.d.y", &["a.b.x"])];
        let svg = svg(&nodes, "component/", Some("c.d.y"));
        assert_eq!(svg.matches("<a href=\"component/").count(), 2);
        assert_eq!(svg.matches("class=\"edge\"").count(), 1);
        assert!(svg.contains("node healthy selected"));
    }
}
