//! `beaker store show NAME|BLAKE3`: prints [`beaker::show::show`] as aligned text, or `--json`.

use std::path::Path;

use anyhow::Result;

use beaker::show::Shown;
use beaker::Store;

use super::output::{size, Output};

pub fn run(root: &Path, target: &str, out: Output) -> Result<()> {
    let store = Store::open(root)?;
    let shown = beaker::show::show(&store, target)?;
    if out.json {
        return out.json(&shown);
    }
    print!("{}", text(&shown));
    Ok(())
}

/// `label  value` lines; list values continue on lines of their own under the first.
fn text(s: &Shown) -> String {
    let mut text = String::new();
    for (label, values) in store_rows(s).into_iter().chain(onnx_rows(s)) {
        for (i, v) in values.iter().enumerate() {
            let label = if i == 0 { label } else { "" };
            text.push_str(&format!("{label:<12} {v}\n"));
        }
    }
    text
}

type Rows = Vec<(&'static str, Vec<String>)>;

/// What the store knows: names, digest, size, format, description, when added, sources.
fn store_rows(s: &Shown) -> Rows {
    let mut rows: Rows = vec![
        (
            "name",
            vec![s.name.as_ref().map_or("-".into(), ToString::to_string)],
        ),
        ("blake3", vec![s.blake3.to_hex()]),
        ("size", vec![format!("{} ({} bytes)", size(s.size), s.size)]),
        ("format", vec![s.format.to_string()]),
    ];
    // A model of several files: which one this is, every file, and their total.
    if s.files.len() > 1 {
        if let Some(p) = &s.path {
            rows.push(("file", vec![p.clone()]));
        }
        let width = s.files.iter().map(|f| f.path.len()).max().unwrap_or(0);
        rows.push((
            "files",
            s.files
                .iter()
                .map(|f| {
                    format!(
                        "{:<width$}  {:>10}  {:<11}  {}{}",
                        f.path,
                        size(f.size),
                        f.format.to_string(),
                        f.blake3.short(),
                        if f.main { "  (main)" } else { "" }
                    )
                })
                .collect(),
        ));
        rows.push((
            "total",
            vec![format!(
                "{} ({} bytes, {} files)",
                size(s.total_size),
                s.total_size,
                s.files.len()
            )],
        ));
    }
    let others: Vec<String> = s
        .names
        .iter()
        .filter(|n| Some(*n) != s.name.as_ref())
        .map(ToString::to_string)
        .collect();
    if !others.is_empty() {
        rows.push(("also named", vec![others.join(", ")]));
    }
    if let Some(d) = &s.description {
        rows.push(("description", vec![d.clone()]));
    }
    if let Some(a) = &s.added {
        rows.push(("added", vec![a.clone()]));
    }
    if !s.urls.is_empty() {
        rows.push(("urls", s.urls.clone()));
    }
    rows
}

/// What the ONNX model says of itself: producer, IR version, opsets, inputs, outputs, metadata.
fn onnx_rows(s: &Shown) -> Rows {
    let mut rows = Rows::new();
    if let Some(p) = &s.producer {
        rows.push(("producer", vec![format!("{} {}", p.name, p.version)]));
    }
    if let Some(v) = s.ir_version {
        rows.push(("ir_version", vec![v.to_string()]));
    }
    if let Some(o) = &s.opsets {
        let o: Vec<String> = o
            .iter()
            .map(|o| format!("{} {}", o.domain, o.version))
            .collect();
        rows.push(("opsets", vec![o.join(", ")]));
    }
    for (label, list) in [("inputs", &s.inputs), ("outputs", &s.outputs)] {
        if let Some(list) = list {
            rows.push((label, list.iter().map(ToString::to_string).collect()));
        }
    }
    if let Some(m) = s.metadata.as_ref().filter(|m| !m.is_empty()) {
        rows.push((
            "metadata",
            m.iter().map(|(k, v)| format!("{k} = {}", cut(v))).collect(),
        ));
    }
    rows
}

/// The longest metadata value `show` prints whole; `--json` always prints it whole.
const VALUE_CHARS: usize = 120;

/// `value` as one line of at most [`VALUE_CHARS`] characters: a longer or multi-line value (a
/// vocabulary, a config file: thousands of lines) is cut, saying how much there is.
fn cut(value: &str) -> String {
    let lines = value.lines().count();
    let chars = value.chars().count();
    if lines <= 1 && chars <= VALUE_CHARS {
        return value.to_owned();
    }
    let first: String = value
        .lines()
        .next()
        .unwrap_or_default()
        .chars()
        .take(VALUE_CHARS)
        .collect();
    let plural = if lines == 1 { "" } else { "s" };
    format!("{first}… ({chars} characters, {lines} line{plural}; --json prints it whole)")
}

#[cfg(test)]
mod tests {
    use super::cut;

    #[test]
    fn a_short_value_is_printed_whole_and_a_long_or_multi_line_one_is_cut() {
        assert_eq!(cut("pytorch"), "pytorch");
        assert_eq!(cut(""), "");
        let long = "x".repeat(500);
        assert_eq!(
            cut(&long),
            format!(
                "{}… (500 characters, 1 line; --json prints it whole)",
                "x".repeat(120)
            )
        );
        let config = (0..6600)
            .map(|i| format!("key{i}: 1"))
            .collect::<Vec<_>>()
            .join("\n");
        let shown = cut(&config);
        assert!(shown.starts_with("key0: 1… ("), "{shown}");
        assert!(shown.contains("6600 lines"), "{shown}");
        assert!(!shown.contains('\n'));
        // Cut on a character, never inside one.
        assert!(cut(&"é".repeat(300)).starts_with(&"é".repeat(120)));
    }
}
