//! Reading `tenants/*.toml`: the declarative desired state of file-managed tenants.
//!
//! Invariant: either every file in the directory is valid and the whole set is returned, or
//! nothing is, with every problem named by file and field.

use std::path::{Path, PathBuf};

use super::model::{TenantFile, TenantSpec};

/// One problem in one file.
#[derive(Debug, Clone)]
pub struct FileError {
    pub file: PathBuf,
    pub field: String,
    pub reason: String,
}

impl std::fmt::Display for FileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: field `{}`: {}",
            self.file.display(),
            self.field,
            self.reason
        )
    }
}

/// All problems found in a directory.
#[derive(Debug, thiserror::Error)]
#[error("invalid tenant files; nothing applied:\n  {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n  "))]
pub struct FileErrors(pub Vec<FileError>);

fn ferr(file: &Path, field: impl Into<String>, reason: impl Into<String>) -> FileError {
    FileError {
        file: file.to_path_buf(),
        field: field.into(),
        reason: reason.into(),
    }
}

/// Parse one file's text.
pub fn parse_file(path: &Path, text: &str) -> Result<TenantSpec, Vec<FileError>> {
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default()
        .to_owned();
    let de = match toml::Deserializer::parse(text) {
        Ok(de) => de,
        Err(e) => return Err(vec![ferr(path, "(syntax)", e.message().to_owned())]),
    };
    let file: TenantFile = match serde_path_to_error::deserialize(de) {
        Ok(f) => f,
        Err(e) => {
            let field = e.path().to_string();
            let field = if field == "." {
                "(document)".to_owned()
            } else {
                field
            };
            return Err(vec![ferr(path, field, e.into_inner().message().to_owned())]);
        }
    };
    TenantSpec::parse(&stem, file).map_err(|errs| {
        errs.into_iter()
            .map(|e| ferr(path, e.field, e.reason))
            .collect()
    })
}

/// Load and validate every `*.toml` in `dir` (sorted by name).
pub fn load_dir(dir: &Path) -> Result<Vec<TenantSpec>, FileErrors> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| FileErrors(vec![ferr(dir, "(directory)", e.to_string())]))?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    paths.sort();
    let mut specs = Vec::new();
    let mut errors = Vec::new();
    for path in paths {
        match std::fs::read_to_string(&path) {
            Ok(text) => match parse_file(&path, &text) {
                Ok(spec) => specs.push(spec),
                Err(mut e) => errors.append(&mut e),
            },
            Err(e) => errors.push(ferr(&path, "(file)", e.to_string())),
        }
    }
    if errors.is_empty() {
        Ok(specs)
    } else {
        Err(FileErrors(errors))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn type_errors_name_the_nested_field() {
        let errs = parse_file(
            Path::new("tenants/acme.toml"),
            "name = \"Acme\"\nplan = \"standard\"\n[privacy]\nmin_cohort = \"five\"\n",
        )
        .unwrap_err();
        assert_eq!(errs[0].field, "privacy.min_cohort");
        let errs = parse_file(
            Path::new("tenants/acme.toml"),
            "name = \"Acme\"\nplan = \"gold\"\n",
        )
        .unwrap_err();
        assert_eq!(errs[0].field, "plan");
        let errs = parse_file(
            Path::new("tenants/acme.toml"),
            "name = \"Acme\"\nplan = \"standard\"\ncolour = 1\n",
        )
        .unwrap_err();
        assert!(errs[0].reason.contains("colour"), "{:?}", errs[0]);
    }
}
