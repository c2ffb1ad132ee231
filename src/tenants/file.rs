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

/// The TOML text of one exported tenant, with a header naming who manages it.
pub fn render(spec: &TenantSpec, managed_by: &str) -> Result<String, toml::ser::Error> {
    let body = toml::to_string(&spec.to_file())?;
    let note = if managed_by == "api" {
        "# Managed through the platform API: `serein tenants apply` refuses this file unless\n\
         # given --adopt, which hands the tenant to the files from then on.\n"
    } else {
        "# Managed by files: `serein tenants apply` makes the database match this file.\n"
    };
    Ok(format!(
        "# Exported by `serein tenants export`.\n{note}{body}"
    ))
}

/// Write one `<slug>.toml` per tenant into `dir` (created if missing); returns the paths.
pub fn write_dir(
    dir: &Path,
    tenants: &[super::repo::Exported],
) -> Result<Vec<PathBuf>, std::io::Error> {
    std::fs::create_dir_all(dir)?;
    let mut written = Vec::with_capacity(tenants.len());
    for t in tenants {
        let text = render(&t.spec, &t.managed_by).map_err(std::io::Error::other)?;
        let path = dir.join(format!("{}.toml", t.spec.slug));
        std::fs::write(&path, text)?;
        written.push(path);
    }
    Ok(written)
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

    #[test]
    fn render_round_trips_and_seats_default_from_the_plan() {
        let path = Path::new("tenants/acme.toml");
        let spec = parse_file(
            path,
            "name = \"Acme\"\nplan = \"standard\"\nweb_origins = [\"https://a.example\"]\n\
             [signup]\nallowed_email_domains = [\"acme.example\"]\n[branding]\nprimary_color = \"#112233\"\n",
        )
        .unwrap();
        assert_eq!(spec.seats, 500);
        let text = render(&spec, "file").unwrap();
        assert_eq!(parse_file(path, &text).unwrap(), spec, "{text}");
        let starter = parse_file(path, "name = \"A\"\nplan = \"starter\"\n").unwrap();
        assert_eq!(starter.seats, 50);
        let errs = parse_file(
            path,
            "name = \"A\"\nplan = \"starter\"\nstatus = \"offboarded\"\n",
        )
        .unwrap_err();
        assert_eq!(errs[0].field, "status");
    }
}
