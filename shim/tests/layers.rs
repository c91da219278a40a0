//! The shim's shape, checked: the modules (`shim/src/*.rs`, with their sub-files) import each
//! other without a cycle, and none grows past the size a reader can hold in mind.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Lines a module's file may have (its `tests` sub-files are not counted).
const MAX_LINES: usize = 450;

/// Each top-level module with the other modules its files name as `crate::<module>`.
fn modules() -> BTreeMap<String, (usize, BTreeSet<String>)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(&src).expect("src") {
        let path = entry.expect("entry").path();
        let Some(name) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".rs"))
        else {
            continue;
        };
        if matches!(name, "lib" | "main") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("read");
        let lines = text.lines().count();
        // sub-files (src/<name>/*.rs) belong to the module
        let mut all = text.clone();
        if let Ok(dir) = std::fs::read_dir(src.join(name)) {
            for f in dir.flatten() {
                if f.path().extension().is_some_and(|e| e == "rs") {
                    all.push_str(&std::fs::read_to_string(f.path()).expect("read"));
                }
            }
        }
        let deps: BTreeSet<String> = all
            .match_indices("crate::")
            .map(|(i, _)| {
                all[i + 7..]
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                    .collect::<String>()
            })
            .filter(|d| !d.is_empty() && d != name)
            .collect();
        out.insert(name.to_string(), (lines, deps));
    }
    out
}

#[test]
fn modules_import_each_other_without_a_cycle() {
    let mods = modules();
    assert!(mods.len() >= 15, "found {} modules", mods.len());
    // depth-first search for a back edge
    fn visit(
        m: &str,
        mods: &BTreeMap<String, (usize, BTreeSet<String>)>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) {
        if done.contains(m) {
            return;
        }
        if let Some(i) = path.iter().position(|p| p == m) {
            panic!("import cycle: {} -> {m}", path[i..].join(" -> "));
        }
        path.push(m.to_string());
        for d in mods.get(m).map(|(_, d)| d.clone()).unwrap_or_default() {
            if mods.contains_key(&d) {
                visit(&d, mods, path, done);
            }
        }
        path.pop();
        done.insert(m.to_string());
    }
    let mut done = BTreeSet::new();
    for m in mods.keys() {
        visit(m, &mods, &mut Vec::new(), &mut done);
    }
}

#[test]
fn no_module_is_too_long() {
    for (name, (lines, _)) in modules() {
        assert!(
            lines <= MAX_LINES,
            "shim/src/{name}.rs has {lines} lines (at most {MAX_LINES}): split it by what its parts are for"
        );
    }
}
