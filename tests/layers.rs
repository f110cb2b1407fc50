//! The house rules that keep the code mappable, checked rather than remembered:
//!
//! - every `crate::…` and `super::…` path in `src/` points to a module in the same row of the
//!   layer table of docs/design.md ("Layers") or a row above it — never down the table, so never
//!   around a circle;
//! - every `docs/design.md#section` the code and docs cite names a section that exists.
// The check reads the source tree and the design document with raw std::fs.
#![allow(clippy::disallowed_methods)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The repository's root.
fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The module rows of the layer table, in order: `module path → row`.
fn layer_table() -> BTreeMap<String, usize> {
    let design = std::fs::read_to_string(root().join("docs/design.md")).unwrap();
    let section = design
        .split("\n## Layers\n")
        .nth(1)
        .expect("docs/design.md has a Layers section")
        .split("\n## ")
        .next()
        .unwrap_or("");
    let mut rows = BTreeMap::new();
    for line in section.lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if let Some(module) = cells
            .get(2)
            .and_then(|c| c.strip_prefix('`'))
            .and_then(|c| c.strip_suffix('`'))
        {
            let n = rows.len();
            rows.insert(module.to_owned(), n);
        }
    }
    assert!(
        rows.len() > 10,
        "the Layers table has too few rows: {rows:?}"
    );
    rows
}

/// The row a module path falls in: its longest prefix that is a row.
fn row_of(rows: &BTreeMap<String, usize>, path: &[&str]) -> Option<(String, usize)> {
    (1..=path.len()).rev().find_map(|k| {
        let p = path[..k].join("::");
        rows.get(&p).map(|r| (p, *r))
    })
}

/// The `.rs` files under `dir`.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// The source without comments, string literals and test modules (what the code uses).
fn code_of(text: &str) -> String {
    without_tests(&without_comments(text))
}

/// `text` without the items under `#[cfg(test)]` (a `mod x;`, or a block to its closing brace).
fn without_tests(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..i]);
        let after = &rest[i..];
        let semi = after.find(';').unwrap_or(after.len());
        let open = after.find('{').unwrap_or(after.len());
        if semi < open {
            rest = &after[(semi + 1).min(after.len())..];
            continue;
        }
        let mut depth = 0usize;
        let mut end = after.len();
        for (k, c) in after.char_indices().skip(open) {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = k + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// `text` without `//` comments and with every string literal emptied.
fn without_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '/' if chars.peek() == Some(&'/') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        out.push('\n');
                        break;
                    }
                }
            }
            '"' => {
                let mut escaped = false;
                for c in chars.by_ref() {
                    match (c, escaped) {
                        ('\\', false) => escaped = true,
                        ('"', false) => break,
                        _ => escaped = false,
                    }
                }
                out.push_str("\"\"");
            }
            c => out.push(c),
        }
    }
    out
}

/// The paths a source names with `crate::` or `super::`, resolved to module paths.
fn paths_named(code: &str, module: &[String]) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let bytes = code.as_bytes();
    let is_ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut i = 0;
    while i < bytes.len() {
        if i > 0 && is_ident(bytes[i - 1]) {
            i += 1;
            continue;
        }
        let rest = &code[i..];
        let (mut base, mut j): (Vec<String>, usize) = if rest.starts_with("crate::") {
            (Vec::new(), "crate::".len())
        } else if rest.starts_with("super::") {
            let mut ups = 0;
            let mut j = 0;
            while code[i + j..].starts_with("super::") {
                ups += 1;
                j += "super::".len();
            }
            (module[..module.len().saturating_sub(ups)].to_vec(), j)
        } else {
            i += 1;
            continue;
        };
        loop {
            let start = i + j;
            let mut end = start;
            while end < bytes.len() && is_ident(bytes[end]) {
                end += 1;
            }
            if end == start {
                break;
            }
            base.push(code[start..end].to_owned());
            j = end - i;
            if !code[end..].starts_with("::") {
                break;
            }
            j += 2;
        }
        out.push(base);
        i += j.max(1);
    }
    out
}

#[test]
fn no_module_uses_one_further_down_the_layer_table() {
    let rows = layer_table();
    let src = root().join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut checked = 0;
    let mut wrong = Vec::new();
    for file in &files {
        let rel = file.strip_prefix(&src).unwrap().with_extension("");
        let mut module: Vec<String> = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        // The binary and the crate root use the library from outside.
        if matches!(module[0].as_str(), "cli" | "main" | "lib") {
            continue;
        }
        if module.iter().any(|p| p == "tests") {
            continue;
        }
        if module.last().is_some_and(|m| m == "mod") {
            module.pop();
        }
        let here: Vec<&str> = module.iter().map(String::as_str).collect();
        // A layer's folder root only declares its modules.
        if module.len() == 1 && !rows.contains_key(&module[0]) {
            continue;
        }
        let Some((mine, my_row)) = row_of(&rows, &here) else {
            wrong.push(format!(
                "{}: module {} is in no row of the layer table",
                rel.display(),
                module.join("::")
            ));
            continue;
        };
        let code = code_of(&std::fs::read_to_string(file).unwrap());
        for path in paths_named(&code, &module) {
            let named: Vec<&str> = path.iter().map(String::as_str).collect();
            if let Some((theirs, row)) = row_of(&rows, &named) {
                checked += 1;
                if row > my_row {
                    wrong.push(format!(
                        "{}: {mine} uses {} ({theirs}), a later row of the layer table",
                        rel.display(),
                        path.join("::")
                    ));
                }
            }
        }
    }
    assert!(
        checked > 300,
        "too few paths found ({checked}): is the scan broken?"
    );
    assert!(
        wrong.is_empty(),
        "uses against the layer table (docs/design.md, Layers):\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_scan_finds_paths_and_resolves_super() {
    let module = ["store".to_owned(), "rm".to_owned()];
    let code = code_of(
        "use super::referrers::blobs_of; // crate::maint::gc\nlet x = crate::model::tree::TreeId;\n\"crate::ops\"\n#[cfg(test)]\nmod tests { fn f() { crate::front::exit::code(); } }\nfn g() { crate::sys::par::map(); }",
    );
    assert_eq!(
        paths_named(&code, &module),
        [
            vec!["store", "referrers", "blobs_of"],
            vec!["model", "tree", "TreeId"],
            vec!["sys", "par", "map"]
        ]
    );
}

/// Every `docs/design.md#section` in the repository's code and docs names a heading of it.
#[test]
fn every_reference_to_the_design_names_a_section_that_exists() {
    let design = std::fs::read_to_string(root().join("docs/design.md")).unwrap();
    let anchors: Vec<String> = design
        .lines()
        .filter_map(|l| l.strip_prefix("## "))
        .map(|h| {
            h.to_lowercase()
                .chars()
                .filter_map(|c| match c {
                    ' ' => Some('-'),
                    c if c.is_alphanumeric() || c == '-' => Some(c),
                    _ => None,
                })
                .collect()
        })
        .collect();
    let mut files = Vec::new();
    for dir in ["src", "tests", "xtask", "testkit", "docs"] {
        collect(&root().join(dir), &mut files);
    }
    files.push(root().join("README.md"));
    files.retain(|f| !f.ends_with("tests/layers.rs"));
    let mut cited = 0;
    let mut missing = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        for (i, _) in text.match_indices("design.md#") {
            let anchor: String = text[i + "design.md#".len()..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '-')
                .collect();
            cited += 1;
            if !anchors.contains(&anchor) {
                missing.push(format!("{}: #{anchor}", file.display()));
            }
        }
        assert!(
            !text.contains("DESIGN §"),
            "{} cites \"DESIGN §N\", a document the repository does not hold; cite docs/design.md#section",
            file.display()
        );
    }
    assert!(cited > 10, "too few references found ({cited})");
    assert!(
        missing.is_empty(),
        "references to sections docs/design.md does not have:\n{}",
        missing.join("\n")
    );

    fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries {
            let p = e.unwrap().path();
            if p.is_dir() {
                collect(&p, out);
            } else if p
                .extension()
                .is_some_and(|e| e == "rs" || e == "md" || e == "toml")
            {
                out.push(p);
            }
        }
    }
}
