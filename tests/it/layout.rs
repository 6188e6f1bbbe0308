//! The source tree's layering rules (docs/ARCHITECTURE.md, "The tree"), checked on the source:
//! a module imports only from the layers below its own, no two modules import each other
//! through any chain, and the data path names no RPC crate.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use regex::Regex;

/// The top-level modules of `src/`, bottom layer first. A module may import from the layers
/// before its own, never from its own layer's other modules or from a later layer.
const LAYERS: &[&[&str]] = &[
    &["error", "types", "layout", "settings"],
    &["data"],
    &["job"],
    &["exec"],
    &["net"],
    &["control"],
    &["worker"],
    &["report"],
    &["launch"],
    &["cluster"],
    &["tools"],
    &["cli"],
];

/// Directories of the data path, which runs attempts without RPC.
const NO_RPC: &[&str] = &["data", "job", "exec"];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file under `src/` with its module path (`control::scheduler`), test modules cut.
fn sources() -> BTreeMap<String, String> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(&src(), &mut files);
    let mut modules = BTreeMap::new();
    for path in files {
        let rel = path.strip_prefix(src()).unwrap().with_extension("");
        let mut name = rel.to_str().unwrap().replace('/', "::");
        if let Some(parent) = name.strip_suffix("::mod") {
            name = parent.to_string();
        }
        if name == "lib" || name == "main" {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let code = match text.find("#[cfg(test)]\nmod tests") {
            Some(at) => text[..at].to_string(),
            None => text,
        };
        modules.insert(name, code);
    }
    modules
}

/// The paths a file names after `crate::`, `use` trees expanded (`crate::{a::b, c::{d, e}}`
/// names `a::b`, `c::d` and `c::e`).
fn references(code: &str) -> BTreeSet<String> {
    let path = Regex::new(r"crate::((?:[a-z_][a-z0-9_]*::)*)(\{|[A-Za-z_][A-Za-z0-9_]*)").unwrap();
    let mut found = BTreeSet::new();
    for m in path.captures_iter(code) {
        if &m[2] == "{" {
            let open = m.get(2).unwrap().start();
            expand(&m[1], &code[open + 1..], &mut found);
        } else {
            found.insert(format!("{}{}", &m[1], &m[2]));
        }
    }
    found
}

/// Adds the paths of the use-tree group that starts just after a `{`, each behind `prefix`;
/// returns how many bytes of `rest` the group took, its closing `}` included.
fn expand(prefix: &str, rest: &str, found: &mut BTreeSet<String>) -> usize {
    let mut item = String::new();
    let mut i = 0;
    while i < rest.len() {
        let c = rest[i..].chars().next().unwrap();
        i += c.len_utf8();
        match c {
            '{' => {
                i += expand(&format!("{prefix}{}", item.trim()), &rest[i..], found);
                item.clear();
            }
            ',' | '}' => {
                let name = item.split(" as ").next().unwrap().trim();
                if !name.is_empty() {
                    found.insert(format!("{prefix}{name}"));
                }
                item.clear();
                if c == '}' {
                    return i;
                }
            }
            _ => item.push(c),
        }
    }
    i
}

/// The longest known module that `path` starts with.
fn resolve<'a>(path: &str, modules: &'a BTreeMap<String, String>) -> Option<&'a str> {
    let parts: Vec<&str> = path.split("::").collect();
    (1..=parts.len()).rev().find_map(|n| modules.get_key_value(&parts[..n].join("::")).map(|(k, _)| k.as_str()))
}

fn layer(module: &str) -> usize {
    let top = module.split("::").next().unwrap();
    LAYERS.iter().position(|l| l.contains(&top)).unwrap_or_else(|| panic!("{top} is in no layer: add it to LAYERS"))
}

#[test]
fn modules_import_only_from_lower_layers() {
    let modules = sources();
    let mut wrong = Vec::new();
    for (module, code) in &modules {
        let top = module.split("::").next().unwrap();
        for r in references(code) {
            let Some(target) = resolve(&r, &modules) else { continue };
            let target_top = target.split("::").next().unwrap();
            if target_top != top && layer(target) >= layer(module) {
                wrong.push(format!("{module} imports {target}"));
            }
        }
    }
    assert!(wrong.is_empty(), "imports against the layers of docs/ARCHITECTURE.md:\n{}", wrong.join("\n"));
}

#[test]
fn no_import_cycle_between_files() {
    let modules = sources();
    let mut edges: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (module, code) in &modules {
        for r in references(code) {
            let Some(target) = resolve(&r, &modules) else { continue };
            // A module may use its own submodules and items of its parents' files.
            if target != module && !module.starts_with(&format!("{target}::")) {
                edges.entry(module).or_default().insert(target);
            }
        }
    }
    // Depth-first search for a back edge.
    fn visit<'a>(
        node: &'a str,
        edges: &BTreeMap<&'a str, BTreeSet<&'a str>>,
        state: &mut BTreeMap<&'a str, bool>,
        stack: &mut Vec<&'a str>,
    ) -> Option<Vec<&'a str>> {
        match state.get(node) {
            Some(true) => return None,
            Some(false) => {
                let from = stack.iter().position(|n| *n == node).unwrap();
                let mut cycle = stack[from..].to_vec();
                cycle.push(node);
                return Some(cycle);
            }
            None => {}
        }
        state.insert(node, false);
        stack.push(node);
        for next in edges.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, edges, state, stack) {
                return Some(cycle);
            }
        }
        stack.pop();
        state.insert(node, true);
        None
    }
    let mut state = BTreeMap::new();
    for module in modules.keys() {
        if let Some(cycle) = visit(module, &edges, &mut state, &mut Vec::new()) {
            panic!("import cycle: {}", cycle.join(" -> "));
        }
    }
}

#[test]
fn the_data_path_names_no_rpc_crate() {
    for (module, code) in sources() {
        if NO_RPC.contains(&module.split("::").next().unwrap()) {
            for name in ["tonic::", "prost::", "axum::", "crate::net"] {
                assert!(!code.contains(name), "{module} names {name}: the data path runs attempts without RPC");
            }
        }
    }
}

#[test]
fn the_reference_parser_sees_grouped_imports() {
    let found = references("use crate::{a::b, c::{d, e::F}};\nlet x = crate::g::h(1);");
    let want: BTreeSet<String> = ["a::b", "c::d", "c::e::F", "g::h"].iter().map(|s| s.to_string()).collect();
    assert!(want.is_subset(&found), "{found:?}");
}
