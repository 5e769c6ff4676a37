//! The shape of the source tree, checked: `cargo test --test architecture`.
//!
//! - **No import cycle among sibling modules, at any level of `src/`.** For
//!   every folder, the modules in it (files and sub-folders) form a graph: an
//!   edge X → Y when code under X names something under Y (`use` lines and
//!   paths in code, through `crate::`, `super::` or `self::`). That graph
//!   must have no cycle, so each folder reads bottom-up (e.g. `domain` uses
//!   nothing of `store`, `tui/views` nothing of `tui/app`). A module naming
//!   its own parent's items (what a `mod.rs` defines) is not a sibling edge.
//!   `#[cfg(test)]` blocks are left out (tests may reach anywhere).
//! - **No function over 120 lines in `src/`**, counted from the `fn` line to
//!   its closing brace; declarative tables (a function that only returns a
//!   literal table) may be listed in `LONG_TABLES` with the reason.
//!
//! The source is read as text with a small lexer that blanks comments,
//! strings and character literals, so braces and paths inside them do not
//! count.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The longest a function may be, in lines.
const MAX_FN_LINES: usize = 120;

/// Functions allowed to be longer: declarative tables only, with the reason.
const LONG_TABLES: &[(&str, &str)] = &[];

/// A source file: its module path (`["gateway", "proxy"]`) and its text with
/// comments, strings and chars blanked (same length, same line breaks).
struct Source {
    file: PathBuf,
    module: Vec<String>,
    code: String,
}

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// `src/gateway/proxy.rs` → `["gateway", "proxy"]`; `mod.rs`, `lib.rs` and
/// `main.rs` name their folder.
fn module_of(file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src_dir()).unwrap();
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let last = parts.pop().unwrap();
    let stem = last.trim_end_matches(".rs");
    if !matches!(stem, "mod" | "lib" | "main") {
        parts.push(stem.to_string());
    }
    parts
}

fn sources() -> Vec<Source> {
    let mut files = Vec::new();
    rust_files(&src_dir(), &mut files);
    files
        .into_iter()
        .filter(|f| !f.ends_with("main.rs"))
        .map(|file| {
            let text = std::fs::read_to_string(&file).unwrap();
            Source {
                module: module_of(&file),
                code: blank(&text),
                file,
            }
        })
        .collect()
}

/// Replace comments, string literals (plain, byte, raw) and character
/// literals with spaces, keeping line breaks, so what is left is code.
fn blank(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = b.to_vec();
    let mut i = 0;
    let wipe = |out: &mut Vec<u8>, from: usize, to: usize| {
        for c in &mut out[from..to] {
            if *c != b'\n' {
                *c = b' ';
            }
        }
    };
    while i < b.len() {
        let c = b[i];
        if c == b'/' && b.get(i + 1) == Some(&b'/') {
            let end = b[i..]
                .iter()
                .position(|&c| c == b'\n')
                .map_or(b.len(), |n| i + n);
            wipe(&mut out, i, end);
            i = end;
        } else if c == b'/' && b.get(i + 1) == Some(&b'*') {
            let (mut depth, mut j) = (1, i + 2);
            while j < b.len() && depth > 0 {
                if b[j] == b'/' && b.get(j + 1) == Some(&b'*') {
                    depth += 1;
                    j += 2;
                } else if b[j] == b'*' && b.get(j + 1) == Some(&b'/') {
                    depth -= 1;
                    j += 2;
                } else {
                    j += 1;
                }
            }
            wipe(&mut out, i, j);
            i = j;
        } else if (c == b'r' || (c == b'b' && b.get(i + 1) == Some(&b'r')))
            && !ident_byte(i.checked_sub(1).map(|p| b[p]))
            && raw_string_start(b, if c == b'b' { i + 1 } else { i }).is_some()
        {
            let at = if c == b'b' { i + 1 } else { i };
            let hashes = raw_string_start(b, at).unwrap();
            let close: Vec<u8> = std::iter::once(b'"')
                .chain(std::iter::repeat_n(b'#', hashes))
                .collect();
            let body = at + 2 + hashes;
            let end = b[body..]
                .windows(close.len())
                .position(|w| w == close.as_slice())
                .map_or(b.len(), |n| body + n + close.len());
            wipe(&mut out, i, end);
            i = end;
        } else if c == b'"' {
            let mut j = i + 1;
            while j < b.len() && b[j] != b'"' {
                j += if b[j] == b'\\' { 2 } else { 1 };
            }
            wipe(&mut out, i, (j + 1).min(b.len()));
            i = j + 1;
        } else if c == b'\'' {
            // A char literal ('x', '\n', '\u{..}', '{'), not a lifetime ('a).
            let end = if b.get(i + 1) == Some(&b'\\') {
                b[i + 2..]
                    .iter()
                    .position(|&c| c == b'\'')
                    .map(|n| i + 2 + n + 1)
            } else if b.get(i + 2) == Some(&b'\'') {
                Some(i + 3)
            } else {
                // A multi-byte character: up to 4 bytes then a quote.
                (2..=5)
                    .find(|n| b.get(i + n) == Some(&b'\'') && !b[i + 1..i + n].contains(&b' '))
                    .filter(|n| b[i + 1] >= 0x80 || *n == 2)
                    .map(|n| i + n + 1)
            };
            match end {
                Some(end) => {
                    wipe(&mut out, i, end);
                    i = end;
                }
                None => i += 1,
            }
        } else {
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn ident_byte(c: Option<u8>) -> bool {
    c.is_some_and(|c| c.is_ascii_alphanumeric() || c == b'_')
}

/// At `r"`, `r#"`, `r##"`…: the number of hashes.
fn raw_string_start(b: &[u8], at: usize) -> Option<usize> {
    if b.get(at) != Some(&b'r') {
        return None;
    }
    let hashes = b[at + 1..].iter().take_while(|&&c| c == b'#').count();
    (b.get(at + 1 + hashes) == Some(&b'"')).then_some(hashes)
}

/// The code without `#[cfg(test)]` items (the block or item that follows).
fn without_tests(code: &str) -> String {
    let mut out = code.to_string();
    let mut from = 0;
    while let Some(at) = out[from..].find("#[cfg(test)]").map(|n| from + n) {
        let rest = &out[at..];
        let open = rest.find('{');
        let semi = rest.find(';');
        let end = match (open, semi) {
            (Some(o), Some(s)) if s < o => at + s + 1,
            (Some(o), _) => at + o + matching_brace(&rest[o..]).expect("balanced braces") + 1,
            (None, Some(s)) => at + s + 1,
            (None, None) => out.len(),
        };
        let blanked: String = out[at..end]
            .chars()
            .map(|c| if c == '\n' { '\n' } else { ' ' })
            .collect();
        out.replace_range(at..end, &blanked);
        from = at + 1;
    }
    out
}

/// Offset of the brace closing the one `s` starts with.
fn matching_brace(s: &str) -> Option<usize> {
    let mut depth = 0usize;
    for (i, c) in s.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

/// Every path the code names through `crate::`, `super::` or `self::`,
/// resolved to a module path from the crate root (`use` trees expanded).
fn references(src: &Source) -> Vec<Vec<String>> {
    let code = without_tests(&src.code);
    let mut out = Vec::new();
    // `use` statements, with their brace trees.
    let mut rest = code.as_str();
    while let Some(at) = find_word(rest, "use") {
        let tail = &rest[at + 3..];
        let end = tail.find(';').unwrap_or(tail.len());
        let tree: String = tail[..end].chars().filter(|c| !c.is_whitespace()).collect();
        for path in expand_use(&tree) {
            out.extend(resolve(&src.module, &path));
        }
        rest = &tail[end..];
    }
    // Paths written in code (`crate::domain::now_ms()`).
    for start in ["crate::", "super::", "self::"] {
        let mut from = 0;
        while let Some(at) = code[from..].find(start).map(|n| from + n) {
            from = at + start.len();
            if ident_byte(at.checked_sub(1).map(|p| code.as_bytes()[p])) {
                continue;
            }
            let path: String = code[at..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            let segs: Vec<String> = path
                .split("::")
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect();
            out.extend(resolve(&src.module, &segs));
        }
    }
    out
}

fn find_word(s: &str, word: &str) -> Option<usize> {
    let b = s.as_bytes();
    let mut from = 0;
    while let Some(at) = s[from..].find(word).map(|n| from + n) {
        let before = at.checked_sub(1).map(|p| b[p]);
        let after = b.get(at + word.len()).copied();
        if !ident_byte(before) && after.is_some_and(|c| c.is_ascii_whitespace()) {
            return Some(at);
        }
        from = at + word.len();
    }
    None
}

/// `crate::{a::X, b::{c, d}}` → `[crate,a,X]`, `[crate,b,c]`, `[crate,b,d]`.
fn expand_use(tree: &str) -> Vec<Vec<String>> {
    let tree = tree.trim_start_matches("::");
    match tree.find('{') {
        None => vec![
            tree.split("::")
                .map(|s| s.split(" as ").next().unwrap_or(s).to_string())
                .filter(|s| !s.is_empty())
                .collect(),
        ],
        Some(open) => {
            let prefix: Vec<String> = tree[..open]
                .split("::")
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect();
            let close = open + matching_brace(&tree[open..]).unwrap_or(tree.len() - open - 1);
            let inner = &tree[open + 1..close];
            split_top(inner)
                .into_iter()
                .flat_map(expand_use)
                .map(|p| prefix.iter().cloned().chain(p).collect())
                .collect()
        }
    }
}

/// Split at commas outside braces.
fn split_top(s: &str) -> Vec<&str> {
    let (mut depth, mut start, mut out) = (0, 0, Vec::new());
    for (i, c) in s.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out.into_iter().filter(|p| !p.is_empty()).collect()
}

/// A path as written in `module` → the module path it starts from the crate
/// root; `None` for paths into other crates.
fn resolve(module: &[String], path: &[String]) -> Option<Vec<String>> {
    let mut base: Vec<String> = match path.first()?.as_str() {
        "crate" => Vec::new(),
        "self" => module.to_vec(),
        "super" => module.to_vec(),
        _ => return None,
    };
    let mut rest = &path[1..];
    if path[0] == "super" {
        base.pop()?;
        while rest.first().is_some_and(|s| s == "super") {
            base.pop()?;
            rest = &rest[1..];
        }
    }
    base.extend(rest.iter().filter(|s| *s != "self" && *s != "*").cloned());
    Some(base)
}

/// The module paths that exist (files and folders under src/).
fn modules(sources: &[Source]) -> BTreeSet<Vec<String>> {
    let mut set = BTreeSet::new();
    for s in sources {
        for n in 0..=s.module.len() {
            set.insert(s.module[..n].to_vec());
        }
    }
    set
}

/// For each folder (module path), the edges among its children.
type Graphs = BTreeMap<Vec<String>, BTreeMap<String, BTreeSet<String>>>;

/// For each edge (folder, from, to), a file that makes it.
type Witnesses = BTreeMap<(Vec<String>, String, String), PathBuf>;

fn sibling_graphs(sources: &[Source]) -> (Graphs, Witnesses) {
    let mods = modules(sources);
    let mut graphs: Graphs = BTreeMap::new();
    let mut witness = BTreeMap::new();
    for src in sources {
        for target in references(src) {
            // The longest prefix of the path that is a module of ours.
            let Some(target) = (0..=target.len())
                .rev()
                .map(|n| target[..n].to_vec())
                .find(|p| mods.contains(p))
            else {
                continue;
            };
            let common = src
                .module
                .iter()
                .zip(&target)
                .take_while(|(a, b)| a == b)
                .count();
            if common == src.module.len() || common == target.len() {
                continue; // itself, a descendant or an ancestor
            }
            let parent = src.module[..common].to_vec();
            let (from, to) = (src.module[common].clone(), target[common].clone());
            witness
                .entry((parent.clone(), from.clone(), to.clone()))
                .or_insert_with(|| src.file.clone());
            graphs
                .entry(parent)
                .or_default()
                .entry(from)
                .or_default()
                .insert(to);
        }
    }
    (graphs, witness)
}

/// One cycle in `graph`, if any.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        n: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(n.to_string(), 1);
        stack.push(n.to_string());
        for m in graph.get(n).into_iter().flatten() {
            match state.get(m.as_str()).copied().unwrap_or(0) {
                1 => {
                    let at = stack.iter().position(|s| s == m).unwrap();
                    let mut cycle = stack[at..].to_vec();
                    cycle.push(m.clone());
                    return Some(cycle);
                }
                0 => {
                    if let Some(c) = visit(m, graph, state, stack) {
                        return Some(c);
                    }
                }
                _ => {}
            }
        }
        stack.pop();
        state.insert(n.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for n in graph.keys() {
        if state.get(n).copied().unwrap_or(0) == 0 {
            let mut stack = Vec::new();
            if let Some(c) = visit(n, graph, &mut state, &mut stack) {
                return Some(c);
            }
        }
    }
    None
}

/// Every cycle found, one per folder, with a file behind each edge.
fn cycles(sources: &[Source]) -> Vec<String> {
    let (graphs, witness) = sibling_graphs(sources);
    let mut out = Vec::new();
    for (parent, graph) in &graphs {
        if let Some(cycle) = find_cycle(graph) {
            let folder = if parent.is_empty() {
                "src".to_string()
            } else {
                format!("src/{}", parent.join("/"))
            };
            let edges: Vec<String> = cycle
                .windows(2)
                .map(|w| {
                    let file = &witness[&(parent.clone(), w[0].clone(), w[1].clone())];
                    format!(
                        "{} → {} (in {})",
                        w[0],
                        w[1],
                        file.strip_prefix(src_dir()).unwrap().display()
                    )
                })
                .collect();
            out.push(format!("{folder}: {}", edges.join(", ")));
        }
    }
    out
}

/// Functions longer than [`MAX_FN_LINES`]: `file:line name (N lines)`.
fn long_functions(sources: &[Source]) -> Vec<String> {
    let mut out = Vec::new();
    for src in sources {
        let code = &src.code;
        let mut from = 0;
        while let Some(at) = find_word(&code[from..], "fn").map(|n| from + n) {
            from = at + 2;
            let name: String = code[at + 3..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if name.is_empty() {
                continue; // `fn(` types
            }
            // The body: the first `{` before any `;` (a declaration has none).
            let rest = &code[at..];
            let (Some(open), semi) = (rest.find('{'), rest.find(';')) else {
                continue;
            };
            if semi.is_some_and(|s| s < open) {
                continue;
            }
            let Some(close) = matching_brace(&rest[open..]) else {
                continue;
            };
            let first = code[..at].matches('\n').count() + 1;
            let lines = rest[..open + close].matches('\n').count() + 1;
            let file = src
                .file
                .strip_prefix(src_dir())
                .unwrap()
                .display()
                .to_string();
            if lines > MAX_FN_LINES
                && !LONG_TABLES
                    .iter()
                    .any(|(f, _)| *f == format!("{file}::{name}"))
            {
                out.push(format!("src/{file}:{first} {name} ({lines} lines)"));
            }
        }
    }
    out
}

#[test]
fn no_import_cycle_among_sibling_modules() {
    let found = cycles(&sources());
    assert!(
        found.is_empty(),
        "import cycles among sibling modules (each edge names a file that makes it):\n{}",
        found.join("\n")
    );
}

#[test]
fn no_function_over_the_limit() {
    let found = long_functions(&sources());
    assert!(
        found.is_empty(),
        "functions over {MAX_FN_LINES} lines (split them, or list a declarative table in LONG_TABLES with the reason):\n{}",
        found.join("\n")
    );
}

// The checker checks itself: each test below fails if its part stops
// seeing what it must.

#[test]
fn the_lexer_blanks_strings_comments_and_chars() {
    let code = blank(
        "let a = \"{ crate::x }\"; // crate::y {\nlet b = '{'; let c: &'a str = r#\"}\"#; /* { */ f('}')",
    );
    assert!(!code.contains("crate::"), "{code}");
    assert!(!code.contains('{') && !code.contains('}'), "{code}");
    assert!(code.contains("&'a str"), "a lifetime is code: {code}");
    assert_eq!(code.matches('\n').count(), 1);
}

#[test]
fn the_graph_sees_use_trees_paths_and_super() {
    let src = |file: &str, code: &str| Source {
        file: src_dir().join(file),
        module: module_of(&src_dir().join(file)),
        code: blank(code),
    };
    let sources = vec![
        src("a/mod.rs", "pub mod x; pub mod y;"),
        src("a/x.rs", "use super::{y::Y, z};\nfn f() {}"),
        src("a/y.rs", "fn g() { crate::a::x::f() }"),
        src("b.rs", "use crate::{a::x::F, c};"),
        src("c.rs", "#[cfg(test)]\nmod tests { use crate::b::B; }"),
    ];
    let found = cycles(&sources);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].starts_with("src/a: x → y"), "{found:?}");
    let (graphs, _) = sibling_graphs(&sources);
    assert!(graphs[&Vec::<String>::new()]["b"].contains("a"));
    assert!(
        !graphs[&Vec::<String>::new()].contains_key("c"),
        "test code is left out"
    );
}

#[test]
fn long_functions_are_counted_to_their_closing_brace() {
    let body = "    let s = \"}\";\n".repeat(MAX_FN_LINES);
    let src = Source {
        file: src_dir().join("t.rs"),
        module: vec!["t".into()],
        code: blank(&format!("fn short() {{}}\nfn long() {{\n{body}}}\n")),
    };
    let found = long_functions(&[src]);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains("long ("), "{found:?}");
}
