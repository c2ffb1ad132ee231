//! The direction of imports: the shared core (`db`, `http`, `crypto`, `rbac`, `error`,
//! `config`, `clock`, `telemetry`) never names a feature module, the application assembly
//! (`app`) or the command line (`cli`). Features import the core, never the reverse
//! (STYLE.md, convention 14).
//!
//! The check reads the sources: every `crate::…` path (in `use` lines, grouped
//! `use crate::{…}` lists and inline paths such as `crate::auth::config::AuthConfig` in a type)
//! and every `super::…` path climbing out of a core module. Comments are not code and are
//! ignored. The set of features is every top-level module of `lib.rs` that is not core, so a
//! new feature is covered without editing this file.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The shared core. Anything else declared in `lib.rs` is a feature (or the assembly).
const CORE: &[&str] = &[
    "db",
    "http",
    "crypto",
    "rbac",
    "error",
    "config",
    "clock",
    "telemetry",
];

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Code without `//` comments (line, doc and inner doc comments alike).
fn strip_comments(text: &str) -> String {
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn ident_at(s: &str) -> &str {
    let end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    &s[..end]
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The first segment of every `crate::` path, including each member of `crate::{a, b::c}`.
fn crate_roots(code: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        // `somecrate::x` is not `crate::x`.
        let preceded = rest[..i].chars().next_back().is_some_and(is_ident_char);
        let after = rest[i + "crate::".len()..].trim_start();
        rest = &rest[i + "crate::".len()..];
        if preceded {
            continue;
        }
        if let Some(group) = after.strip_prefix('{') {
            // Members at depth 0 of the braces: the text before a `::`, `,` or `}`.
            let mut depth = 0usize;
            let mut start = true;
            for (j, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => start = true,
                    c if start && depth == 0 && is_ident_char(c) => {
                        out.insert(ident_at(&group[j..]).to_owned());
                        start = false;
                    }
                    _ => {}
                }
            }
        } else {
            let id = ident_at(after);
            if !id.is_empty() {
                out.insert(id.to_owned());
            }
        }
    }
    out
}

/// Top-level modules reached by `super::` paths that climb to the crate root from a module at
/// `depth` (1 for `src/db/mod.rs` and `src/error.rs`' children, …).
fn super_roots(code: &str, depth: usize) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = code;
    while let Some(i) = rest.find("super::") {
        let preceded = rest[..i].chars().next_back().is_some_and(is_ident_char);
        let mut tail = &rest[i..];
        rest = &rest[i + "super::".len()..];
        if preceded {
            continue;
        }
        let mut ups = 0usize;
        while let Some(t) = tail.strip_prefix("super::") {
            ups += 1;
            tail = t.trim_start();
        }
        if ups >= depth {
            let id = ident_at(tail);
            if !id.is_empty() {
                out.insert(id.to_owned());
            }
        }
    }
    out
}

/// Every `.rs` file under `dir`, recursively.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
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

/// How many `super::` reach the crate root from this file's module.
fn module_depth(src: &Path, file: &Path) -> usize {
    let rel = file.strip_prefix(src).unwrap();
    let parts = rel.components().count();
    let is_mod = rel.file_name().is_some_and(|n| n == "mod.rs");
    // src/x.rs → crate::x (1); src/x/mod.rs → crate::x (1); src/x/y.rs → crate::x::y (2).
    if is_mod { parts - 1 } else { parts }
}

fn top_level_modules(src: &Path) -> BTreeSet<String> {
    let lib = std::fs::read_to_string(src.join("lib.rs")).unwrap();
    strip_comments(&lib)
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            let l = l.strip_prefix("pub ").unwrap_or(l);
            l.strip_prefix("mod ")
                .and_then(|m| m.strip_suffix(';'))
                .map(|m| m.trim().to_owned())
        })
        .collect()
}

/// `(file, forbidden module)` for every core file naming a non-core top-level module.
fn violations(src: &Path) -> Vec<(String, String)> {
    let modules = top_level_modules(src);
    let forbidden: BTreeSet<&String> = modules
        .iter()
        .filter(|m| !CORE.contains(&m.as_str()))
        .collect();
    let mut files = Vec::new();
    for core in CORE {
        let dir = src.join(core);
        if dir.is_dir() {
            rust_files(&dir, &mut files);
        }
        let file = src.join(format!("{core}.rs"));
        if file.is_file() {
            files.push(file);
        }
    }
    let mut found = Vec::new();
    for f in files {
        let code = strip_comments(&std::fs::read_to_string(&f).unwrap());
        let mut roots = crate_roots(&code);
        roots.extend(super_roots(&code, module_depth(src, &f)));
        for r in roots {
            if forbidden.contains(&r) {
                found.push((
                    f.strip_prefix(src).unwrap().display().to_string(),
                    r.clone(),
                ));
            }
        }
    }
    found
}

#[test]
fn the_core_imports_no_feature() {
    let src = src_dir();
    let modules = top_level_modules(&src);
    for core in CORE {
        assert!(
            modules.contains(*core),
            "core module {core} is not declared in lib.rs; update CORE in this test"
        );
    }
    // The scan must have something to forbid, or it proves nothing.
    for feature in [
        "app", "auth", "tenants", "members", "platform", "mail", "health",
    ] {
        assert!(modules.contains(feature), "{feature} missing from lib.rs");
    }
    let found = violations(&src);
    assert!(
        found.is_empty(),
        "core modules import features (arrows must point down):\n{}",
        found
            .iter()
            .map(|(f, m)| format!("  src/{f} names crate::{m}"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn the_scanner_sees_every_form_of_path() {
    let code = strip_comments(
        "use crate::db::Db;\n\
         use crate::{error::AppError, auth::actor::Actor, http::{self, AppJson}};\n\
         pub struct Config { pub mail: crate::mail::MailConfig }\n\
         fn f() { let _ = crate::platform::x(); }\n\
         // use crate::members::x;\n\
         /// [`crate::practitioners`]\n\
         use somecrate::tenants;\n",
    );
    let roots = crate_roots(&code);
    let expected: BTreeSet<String> = ["db", "error", "auth", "http", "mail", "platform"]
        .into_iter()
        .map(str::to_owned)
        .collect();
    // Every path is seen; comments and other crates' paths are not.
    assert_eq!(roots, expected);

    let up = strip_comments("use super::super::auth::x;\nuse super::keyring;\n");
    let roots = super_roots(&up, 2);
    assert!(roots.contains("auth"));
    assert!(!roots.contains("keyring"));
}
