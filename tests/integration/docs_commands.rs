//! Every `semantos …` command line shown in README.md and docs/*.md parses
//! with the binary's own definitions: a newcomer who copies one gets the
//! command the page describes, not a usage error from a flag that moved.

use std::path::{Path, PathBuf};

/// The words of one shell command line: single and double quotes group, a backslash escapes.
fn words(line: &str) -> Vec<String> {
    let (mut out, mut cur, mut quote, mut any) = (Vec::new(), String::new(), None::<char>, false);
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => cur.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                any = true;
            }
            (None, '\\') => cur.extend(chars.next()),
            (None, c) if c.is_whitespace() => {
                if any || !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
                any = false;
            }
            (None, c) => cur.push(c),
        }
    }
    if any || !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// The `semantos` invocations of a page's code blocks: (line number, argv).
fn invocations(text: &str) -> Vec<(usize, Vec<String>)> {
    let mut out = Vec::new();
    let mut in_code = false;
    for (i, raw) in text.lines().enumerate() {
        let t = raw.trim();
        if t.starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if !in_code {
            continue;
        }
        let t = t.trim_start_matches("$ ").trim_start_matches("# ").trim_start_matches("sudo ");
        if !t.starts_with("semantos ") && t != "semantos" {
            continue;
        }
        // The command ends at a comment, a pipe, a redirection or a list operator.
        let mut end = t.len();
        for stop in [" #", " |", " >", " <", " &&", " ||", ";", " 2>"] {
            if let Some(p) = t.find(stop) {
                end = end.min(p);
            }
        }
        let cmd = &t[..end];
        if cmd.contains("$(") || cmd.contains('…') || cmd.contains("...") || cmd.trim_end().ends_with('\\') {
            continue; // a template or a continued line, not a literal command
        }
        out.push((i + 1, words(cmd)));
    }
    out
}

fn pages() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut p = vec![root.join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs")).map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "md")).collect()).unwrap_or_default();
    docs.sort();
    p.extend(docs);
    p
}

#[test]
fn every_command_line_in_the_readme_and_docs_parses() {
    let mut bad = Vec::new();
    let mut seen = 0;
    for page in pages() {
        let text = std::fs::read_to_string(&page).unwrap();
        for (line, argv) in invocations(&text) {
            seen += 1;
            if let Err(e) = semantos::cli::args::parse(&argv) {
                let first = e.to_string().lines().next().unwrap_or_default().to_string();
                bad.push(format!("{}:{line}: `{}`: {first}", page.file_name().unwrap().to_string_lossy(), argv.join(" ")));
            }
        }
    }
    assert!(seen >= 20, "only {seen} command lines found in README.md and docs/: is the extraction broken?");
    assert!(bad.is_empty(), "{} of {seen} documented command lines do not parse:\n{}", bad.len(), bad.join("\n"));
}

#[test]
fn the_word_splitter_keeps_quoted_arguments_whole() {
    assert_eq!(words("semantos tune --objective-cmd './probe --ms' --stat p99"), ["semantos", "tune", "--objective-cmd", "./probe --ms", "--stat", "p99"]);
    assert_eq!(words(r#"semantos bench --cmd "a b" x\ y"#), ["semantos", "bench", "--cmd", "a b", "x y"]);
}
