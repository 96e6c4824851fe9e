//! The launch-order graph between groups: a DAG whose edges are exactly the dependencies the
//! file asks for (explicit `dependsOn` plus the `launchOrder` shorthand), nothing more, so
//! independent groups launch together.

use std::fmt::Write as _;

use petgraph::Direction;
use petgraph::algo::{kosaraju_scc, toposort};
use petgraph::graph::{DiGraph, NodeIndex};

/// Edges point from a group to a group it depends on.
#[derive(Clone, Debug)]
pub struct LaunchGraph {
    graph: DiGraph<usize, ()>,
}

impl LaunchGraph {
    /// `depends_on[g]` lists the groups `g` waits for (indices into the group list); a group
    /// listed twice makes one edge.
    pub fn new(depends_on: &[Vec<usize>]) -> Self {
        let mut graph =
            DiGraph::with_capacity(depends_on.len(), depends_on.iter().map(Vec::len).sum());
        for g in 0..depends_on.len() {
            graph.add_node(g);
        }
        for (g, deps) in depends_on.iter().enumerate() {
            let mut deps = deps.clone();
            deps.sort_unstable();
            deps.dedup();
            for d in deps {
                graph.add_edge(NodeIndex::new(g), NodeIndex::new(d), ());
            }
        }
        LaunchGraph { graph }
    }

    pub fn len(&self) -> usize {
        self.graph.node_count()
    }

    pub fn is_empty(&self) -> bool {
        self.graph.node_count() == 0
    }

    /// The groups `g` depends on directly, in group order.
    pub fn dependencies(&self, g: usize) -> Vec<usize> {
        let mut deps: Vec<usize> = self
            .graph
            .neighbors_directed(NodeIndex::new(g), Direction::Outgoing)
            .map(|n| n.index())
            .collect();
        deps.sort_unstable();
        deps
    }

    /// One concrete cycle per strongly connected component, each starting (and ending) at its
    /// lowest-numbered group and following "depends on" edges, e.g. `[app, web, app]`. The
    /// components come from Kosaraju's algorithm, which petgraph runs without recursion, so no
    /// chain of groups is deep enough to exhaust the stack.
    pub fn cycles(&self) -> Vec<Vec<usize>> {
        let mut component = vec![usize::MAX; self.graph.node_count()];
        let mut cycles = Vec::new();
        for (c, scc) in kosaraju_scc(&self.graph).into_iter().enumerate() {
            let self_loop = scc.len() == 1 && self.graph.contains_edge(scc[0], scc[0]);
            if scc.len() < 2 && !self_loop {
                continue;
            }
            for n in &scc {
                component[n.index()] = c;
            }
            let start = *scc.iter().min().expect("an SCC is never empty");
            cycles.push(self.cycle_through(start, &component));
        }
        cycles.sort();
        cycles
    }

    /// A path from `start` back to itself inside its strongly connected component (the nodes
    /// whose `component` is `start`'s), found by an iterative depth-first search that prefers
    /// lower-numbered groups (deterministic output). Each node is entered once, so the search is
    /// linear in the component's edges.
    fn cycle_through(&self, start: NodeIndex, component: &[usize]) -> Vec<usize> {
        let inside = component[start.index()];
        let successors = |node: NodeIndex| -> Vec<NodeIndex> {
            let mut next: Vec<NodeIndex> = self
                .graph
                .neighbors_directed(node, Direction::Outgoing)
                .filter(|n| component[n.index()] == inside)
                .collect();
            next.sort();
            next
        };
        let mut visited = vec![false; self.graph.node_count()];
        visited[start.index()] = true;
        // Each frame: a node of the path, its sorted successors, and the next one to try.
        let mut frames = vec![(start, successors(start), 0usize)];
        while let Some((_, next, choice)) = frames.last_mut() {
            if *choice == 0 && next.binary_search(&start).is_ok() {
                let mut path: Vec<usize> = frames.iter().map(|(n, _, _)| n.index()).collect();
                path.push(start.index());
                return path;
            }
            match next[*choice..].iter().position(|n| !visited[n.index()]) {
                Some(offset) => {
                    let n = next[*choice + offset];
                    *choice += offset + 1;
                    visited[n.index()] = true;
                    frames.push((n, successors(n), 0));
                }
                None => {
                    frames.pop();
                }
            }
        }
        // Unreachable for a genuine SCC; fall back to naming its members.
        let mut members: Vec<usize> = (0..component.len())
            .filter(|&n| component[n] == inside)
            .collect();
        members.push(members[0]);
        members
    }

    /// Launch waves: wave 0 holds groups without dependencies; a group sits one wave after the
    /// latest of its dependencies. Within a wave, groups keep file order. Requires a DAG.
    pub fn waves(&self) -> Vec<Vec<usize>> {
        let wave_of = self.wave_of();
        let count = wave_of.iter().copied().max().map_or(0, |w| w + 1);
        let mut waves = vec![Vec::new(); count];
        for (g, &w) in wave_of.iter().enumerate() {
            waves[w].push(g);
        }
        waves
    }

    pub fn wave_of(&self) -> Vec<usize> {
        let order = toposort(&self.graph, None).expect("launch graph is acyclic once validated");
        let mut wave = vec![0usize; self.graph.node_count()];
        // toposort puts a dependent before its dependencies (edges point at dependencies).
        for node in order.into_iter().rev() {
            let w = self
                .graph
                .neighbors_directed(node, Direction::Outgoing)
                .map(|d| wave[d.index()] + 1)
                .max()
                .unwrap_or(0);
            wave[node.index()] = w;
        }
        wave
    }

    /// The chain of dependencies with the largest total weight (e.g. worst-case minutes of
    /// health gates), first group first, and that total. Ties go to lower group numbers.
    pub fn critical_path(&self, weight: &[u64]) -> (Vec<usize>, u64) {
        let order = toposort(&self.graph, None).expect("launch graph is acyclic once validated");
        let n = self.graph.node_count();
        let mut best = vec![0u64; n];
        let mut prev: Vec<Option<usize>> = vec![None; n];
        for node in order.into_iter().rev() {
            let g = node.index();
            let mut deps = self.dependencies(g);
            deps.sort_unstable();
            let mut from: Option<usize> = None;
            for d in deps {
                if from.is_none_or(|f| best[d] > best[f]) {
                    from = Some(d);
                }
            }
            best[g] = weight[g] + from.map_or(0, |f| best[f]);
            prev[g] = from;
        }
        let Some(end) = (0..n).fold(None, |acc: Option<usize>, g| match acc {
            Some(a) if best[a] >= best[g] => Some(a),
            _ => Some(g),
        }) else {
            return (Vec::new(), 0);
        };
        let mut path = vec![end];
        while let Some(p) = prev[*path.last().expect("non-empty")] {
            path.push(p);
        }
        path.reverse();
        (path, best[end])
    }
}

/// What the graph renderers need to know of each group.
pub struct GroupView<'a> {
    pub name: &'a str,
    pub servers: Vec<&'a str>,
    /// Worst-case minutes this group's health gate can take.
    pub gate_minutes: u64,
}

pub fn render_text(app: &str, graph: &LaunchGraph, groups: &[GroupView<'_>]) -> String {
    let waves = graph.waves();
    let server_count: usize = groups.iter().map(|g| g.servers.len()).sum();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{app}: {} groups, {server_count} servers, {} launch waves",
        groups.len(),
        waves.len()
    );
    for (i, wave) in waves.iter().enumerate() {
        let parts: Vec<String> = wave
            .iter()
            .map(|&g| {
                let deps = graph.dependencies(g);
                let after = if deps.is_empty() {
                    String::new()
                } else {
                    let names: Vec<&str> = deps.iter().map(|&d| groups[d].name).collect();
                    format!(" after {}", names.join(", "))
                };
                format!(
                    "{} ({}){after}",
                    groups[g].name,
                    groups[g].servers.join(", ")
                )
            })
            .collect();
        let _ = writeln!(out, "wave {}: {}", i + 1, parts.join("; "));
    }
    let weights: Vec<u64> = groups.iter().map(|g| g.gate_minutes).collect();
    let (path, total) = graph.critical_path(&weights);
    let names: Vec<&str> = path.iter().map(|&g| groups[g].name).collect();
    let _ = writeln!(
        out,
        "critical path: {} (worst case {total} min of health gates)",
        names.join(" -> ")
    );
    out
}

pub fn render_mermaid(graph: &LaunchGraph, groups: &[GroupView<'_>]) -> String {
    let mut out = String::from("flowchart LR\n");
    for (g, view) in groups.iter().enumerate() {
        let _ = writeln!(
            out,
            "  g{g}[\"{}<br/>{}\"]",
            view.name,
            view.servers.join(", ")
        );
    }
    for g in 0..groups.len() {
        for d in graph.dependencies(g) {
            let _ = writeln!(out, "  g{d} --> g{g}");
        }
    }
    out
}

pub fn render_dot(app: &str, graph: &LaunchGraph, groups: &[GroupView<'_>]) -> String {
    let mut out = format!("digraph \"{app}\" {{\n  rankdir=LR;\n  node [shape=box];\n");
    for view in groups {
        let _ = writeln!(
            out,
            "  \"{}\" [label=\"{}\\n{}\"];",
            view.name,
            view.name,
            view.servers.join(", ")
        );
    }
    for g in 0..groups.len() {
        for d in graph.dependencies(g) {
            let _ = writeln!(out, "  \"{}\" -> \"{}\";", groups[d].name, groups[g].name);
        }
    }
    out.push_str("}\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn independent_groups_share_a_wave() {
        // 0 <- 1, 0 <- 2, {1,2} <- 3
        let g = LaunchGraph::new(&[vec![], vec![0], vec![0], vec![1, 2]]);
        assert_eq!(g.waves(), vec![vec![0], vec![1, 2], vec![3]]);
        assert!(g.cycles().is_empty());
    }

    #[test]
    fn no_edges_means_one_wave() {
        let g = LaunchGraph::new(&[vec![], vec![], vec![]]);
        assert_eq!(g.waves(), vec![vec![0, 1, 2]]);
    }

    #[test]
    fn cycles_are_named_from_their_lowest_group() {
        // 0 -> 1 -> 2 -> 1 (1 and 2 form a cycle); 3 -> 3
        let g = LaunchGraph::new(&[vec![1], vec![2], vec![1], vec![3]]);
        assert_eq!(g.cycles(), vec![vec![1, 2, 1], vec![3, 3]]);
    }

    #[test]
    fn cycle_search_backtracks_out_of_dead_ends() {
        // 0 -> 1 -> 2 -> 0 and 1 -> 3 -> 1 (one SCC {0,1,2,3}).
        let g = LaunchGraph::new(&[vec![1], vec![2, 3], vec![0], vec![1]]);
        assert_eq!(g.cycles(), vec![vec![0, 1, 2, 0]]);
    }

    #[test]
    fn critical_path_follows_the_heaviest_chain() {
        let g = LaunchGraph::new(&[vec![], vec![0], vec![0], vec![1, 2]]);
        let (path, total) = g.critical_path(&[30, 10, 60, 5]);
        assert_eq!(path, vec![0, 2, 3]);
        assert_eq!(total, 95);
    }
}
