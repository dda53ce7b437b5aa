//! The house rule, checked: no import cycle among the host's top-level modules. Each module may
//! use only modules below it (the layers are drawn in docs/architecture.md), so a module can be
//! read, tested and replaced knowing only what is under it. The test reads the `crate::` and
//! `super::` paths of every source file, as a reviewer would, and names the files that tie a
//! cycle when one appears.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The top-level module each source file belongs to, and the top-level modules it names.
type Graph = BTreeMap<String, BTreeMap<String, BTreeSet<String>>>;

/// `target` names `module` -> file -> modules named there.
fn graph(src: &Path) -> std::io::Result<Graph> {
    let mut files = Vec::new();
    collect(src, &mut files)?;
    let mut graph = Graph::new();
    for file in files {
        let relative = file.strip_prefix(src).unwrap_or(&file);
        let parts: Vec<String> = relative
            .iter()
            .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_owned())
            .collect();
        let Some(top) = parts.first().cloned() else {
            continue;
        };
        // The crate root and test-only files declare modules; they are not part of a layer.
        if matches!(top.as_str(), "lib" | "main") || parts.last().is_some_and(|p| p == "tests") {
            continue;
        }
        // `super::` leaves the module only from its top file (`agent.rs`, `a2a/mod.rs`).
        let top_file = parts.len() == 1 || (parts.len() == 2 && parts[1] == "mod");
        let text = std::fs::read_to_string(&file)?;
        let named = named_modules(&production_code(&text), top_file);
        let entry = graph.entry(top.clone()).or_default();
        let used: BTreeSet<String> = named.into_iter().filter(|m| *m != top).collect();
        if !used.is_empty() {
            entry.insert(relative.display().to_string(), used);
        }
    }
    Ok(graph)
}

fn collect(dir: &Path, files: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect(&path, files)?;
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    Ok(())
}

/// The text without comment lines and without the unit tests at the end of the file (a test
/// may reach for any layer to set its scene).
fn production_code(text: &str) -> String {
    let code = text.split("#[cfg(test)]\nmod tests").next().unwrap_or(text);
    code.lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The top-level modules a file's code names through `crate::NAME` (and `super::NAME` from a
/// module's top file, whose parent is the crate).
fn named_modules(code: &str, top_file: bool) -> BTreeSet<String> {
    let mut named = BTreeSet::new();
    let mut prefixes = vec!["crate::"];
    if top_file {
        prefixes.push("super::");
    }
    for prefix in prefixes {
        for (at, _) in code.match_indices(prefix) {
            let before = code[..at].chars().next_back();
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                continue;
            }
            let name: String = code[at + prefix.len()..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            let after = code[at + prefix.len() + name.len()..].chars().next();
            // A module path goes on (`crate::a2a::...`); `crate::Name` would be a crate-root item.
            if !name.is_empty() && after == Some(':') {
                named.insert(name);
            }
        }
    }
    named
}

/// A cycle of modules, if there is one: each named by the one before it, the last by the first.
fn find_cycle(graph: &Graph) -> Option<Vec<String>> {
    let edges: BTreeMap<&str, BTreeSet<&str>> = graph
        .iter()
        .map(|(module, files)| {
            let used = files.values().flatten().map(String::as_str).collect();
            (module.as_str(), used)
        })
        .collect();
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    fn visit<'a>(
        module: &'a str,
        edges: &BTreeMap<&'a str, BTreeSet<&'a str>>,
        marks: &mut BTreeMap<&'a str, Mark>,
        path: &mut Vec<&'a str>,
    ) -> Option<Vec<String>> {
        marks.insert(module, Mark::Open);
        path.push(module);
        for &next in edges.get(module).into_iter().flatten() {
            match marks.get(next) {
                Some(Mark::Open) => {
                    let start = path.iter().position(|m| *m == next).unwrap_or(0);
                    return Some(path[start..].iter().map(|m| m.to_string()).collect());
                }
                Some(Mark::Done) => {}
                None => {
                    if let Some(cycle) = visit(next, edges, marks, path) {
                        return Some(cycle);
                    }
                }
            }
        }
        path.pop();
        marks.insert(module, Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    for &module in edges.keys() {
        if !marks.contains_key(module) {
            let mut path = Vec::new();
            if let Some(cycle) = visit(module, &edges, &mut marks, &mut path) {
                return Some(cycle);
            }
        }
    }
    None
}

/// Which files tie the cycle: for each step, the files of one module that name the next.
fn explain(graph: &Graph, cycle: &[String]) -> String {
    let mut lines = Vec::new();
    for (i, module) in cycle.iter().enumerate() {
        let next = &cycle[(i + 1) % cycle.len()];
        let files: Vec<&str> = graph[module]
            .iter()
            .filter(|(_, used)| used.contains(next))
            .map(|(file, _)| file.as_str())
            .collect();
        lines.push(format!("  {module} -> {next}: {}", files.join(", ")));
    }
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_module_of_the_host_imports_one_that_imports_it_back() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let graph = graph(&src).unwrap();
        assert!(graph.len() > 10, "the source tree was not read: {graph:?}");
        if let Some(cycle) = find_cycle(&graph) {
            panic!(
                "import cycle among host modules: {}\n{}\nmove what the lower module needs below it, or invert the dependency with a trait the lower module owns",
                cycle.join(" -> "),
                explain(&graph, &cycle)
            );
        }
    }

    #[test]
    fn a_cycle_is_found_and_named_by_its_files() {
        fn add(graph: &mut Graph, module: &str, file: &str, uses: &[&str]) {
            graph
                .entry(module.into())
                .or_default()
                .insert(file.into(), uses.iter().map(|u| u.to_string()).collect());
        }
        let mut graph = Graph::new();
        add(&mut graph, "config", "config/mod.rs", &[]);
        add(&mut graph, "bus", "bus/mod.rs", &["config"]);
        add(&mut graph, "delivery", "delivery.rs", &["bus", "config"]);
        assert_eq!(find_cycle(&graph), None);
        add(&mut graph, "bus", "bus/kafka.rs", &["delivery"]);
        let cycle = find_cycle(&graph).unwrap();
        assert_eq!(cycle, ["bus", "delivery"]);
        let why = explain(&graph, &cycle);
        assert!(why.contains("bus -> delivery: bus/kafka.rs"), "{why}");
    }

    #[test]
    fn paths_in_comments_and_tests_do_not_count() {
        let code = production_code(
            "use crate::bus::Bus;\n// see crate::host\n    //! crate::cli\nfn f() { crate::text::x(); }\n#[cfg(test)]\nmod tests {\n    use crate::host::Host;\n}\n",
        );
        let named = named_modules(&code, false);
        assert_eq!(named, BTreeSet::from(["bus".into(), "text".into()]));
        let top = named_modules("use super::config::Manifest;\nuse super::Caller;", true);
        assert_eq!(top, BTreeSet::from(["config".into()]));
        assert!(named_modules("use super::config::Manifest;", false).is_empty());
    }
}
