//! The agent's module layers: each top-level module of `tracer-user/src` imports only the
//! ones below it (the order `lib.rs` documents), so the import graph has no circles and
//! nothing reaches back up.

use std::path::{Path, PathBuf};

/// Bottom to top.
const LAYERS: &[&str] = &[
    "base", "geo", "policy", "kernel", "devices", "remotes", "alerts", "learning", "history",
    "state", "metrics", "http", "config", "agent", "commands",
];

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable source folder") {
        let path = entry.expect("readable entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The text of `file` without comments and without its test module (tests may build their
/// input from any layer).
fn code(file: &Path) -> String {
    let text = std::fs::read_to_string(file).expect("readable source");
    let text = text.split("#[cfg(test)]\nmod tests").next().unwrap_or_default();
    text.lines().filter(|l| !l.trim_start().starts_with("//")).collect::<Vec<_>>().join("\n")
}

/// The top-level modules `code` names through `crate::` paths, grouped imports included.
fn imports(code: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find("};").unwrap_or(group.len());
            let mut depth = 0;
            let mut start = true;
            for (i, c) in group[..end].char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 0 => start = true,
                    c if start && c.is_ascii_lowercase() => {
                        let word: String = group[i..]
                            .chars()
                            .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                            .collect();
                        found.push(word);
                        start = false;
                    }
                    c if !c.is_whitespace() => start = false,
                    _ => {}
                }
            }
        } else {
            found.push(rest.chars().take_while(|c| c.is_ascii_lowercase() || *c == '_').collect());
        }
    }
    found
}

#[test]
fn no_module_imports_a_layer_above_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut upward = Vec::new();
    for (rank, layer) in LAYERS.iter().enumerate() {
        let mut files = Vec::new();
        sources(&src.join(layer), &mut files);
        assert!(!files.is_empty(), "src/{layer}/ has no sources");
        for file in files.iter().filter(|f| !f.ends_with("tests.rs")) {
            for import in imports(&code(file)) {
                if LAYERS.iter().position(|l| *l == import).is_some_and(|r| r > rank) {
                    upward.push(format!("{} imports {import}", file.display()));
                }
            }
        }
    }
    assert!(upward.is_empty(), "imports that run up the layers:\n{}", upward.join("\n"));
}

#[test]
fn the_top_level_is_the_layers_and_the_crate_roots() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut entries: Vec<String> = std::fs::read_dir(&src)
        .expect("readable src")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    entries.sort();
    let mut expected: Vec<String> = LAYERS.iter().map(|l| (*l).to_owned()).collect();
    expected.extend(["lib.rs".to_owned(), "main.rs".to_owned()]);
    expected.sort();
    assert_eq!(entries, expected, "a new top-level module belongs in a layer (or in LAYERS)");
}

#[test]
fn the_import_scanner_sees_grouped_and_plain_paths() {
    let text = "use crate::{base::text::x, geo::{a, b}, kernel};\nlet y = crate::http::f();";
    assert_eq!(imports(text), ["base", "geo", "kernel", "http"]);
}
