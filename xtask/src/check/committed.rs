//! The committed results agree with themselves: each preset's tables are exactly what its
//! committed cells give (so a change to the analysis that moves a number, or a table edited by
//! hand, shows up in CI), and every committed cell of a provenance-recording preset names the
//! clean commit it ran from.

use crate::provenance::git_in;
use anyhow::{Context, Result};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Presets whose committed cells predate per-cell provenance: some record no commit ("unknown")
/// and some ran from a tree with uncommitted changes. smoke's cells are rerun and compared by the
/// other half of `check`; small-synth is the synthetic preset kept as it was run.
const BEFORE_PROVENANCE: [&str; 2] = ["smoke", "small-synth"];

/// The tracked files under `results/<preset>/`, relative to the repository root.
pub fn tracked(repo: &Path, preset: &str) -> Result<Vec<PathBuf>> {
    let out = git_in(
        repo,
        &["ls-files", "-z", "--", &format!("results/{preset}")],
    )?;
    Ok(out
        .split('\0')
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .collect())
}

/// A result file of one cell or base evaluation (`cells/<id>/...`, `base/...`), as opposed to
/// the tables and README at the preset's top level.
fn is_cell_file(rel: &Path) -> bool {
    matches!(
        rel.components().next().and_then(|c| c.as_os_str().to_str()),
        Some("cells" | "base")
    )
}

/// Problems with the committed tables of `preset`: each one regenerated, in a scratch copy of
/// the committed cells, differs from its committed file or is missing from the commit, or a
/// committed table is no longer produced.
/// `files` are the preset's tracked files ([`tracked`]).
pub fn table_problems(
    repo: &Path,
    preset: &crate::spec::Preset,
    files: &[PathBuf],
) -> Result<Vec<String>> {
    let name = &preset.name;
    let prefix = Path::new("results").join(name);
    let scratch = tempfile::tempdir()?;
    let root = scratch.path().join(name);
    let mut committed_tables = BTreeSet::new();
    for file in files {
        let rel = file.strip_prefix(&prefix).unwrap_or(file);
        if is_cell_file(rel) {
            let to = root.join(rel);
            std::fs::create_dir_all(to.parent().unwrap_or(&root))?;
            std::fs::copy(repo.join(file), &to)
                .with_context(|| format!("copying {}", file.display()))?;
        } else if rel != Path::new("README.md") {
            committed_tables.insert(rel.to_path_buf());
        }
    }
    std::fs::create_dir_all(&root)?;
    let grids = crate::spec::grids_of(preset)?;
    let written = crate::write_tables(&root, preset, &grids)?;
    let mut problems = Vec::new();
    let mut produced = BTreeSet::new();
    for path in written.into_iter().flat_map(|(_, paths)| paths) {
        let rel = path.strip_prefix(&root).unwrap_or(&path).to_path_buf();
        let shown = prefix.join(&rel);
        let fresh = std::fs::read_to_string(&path)?;
        match std::fs::read_to_string(repo.join(&shown)) {
            Ok(committed) if committed == fresh => {}
            Ok(committed) => problems.push(format!(
                "  {}: differs from what its committed cells give{}",
                shown.display(),
                first_difference(&committed, &fresh)
            )),
            Err(_) => problems.push(format!(
                "  {}: produced by the committed cells but not committed",
                shown.display()
            )),
        }
        produced.insert(rel);
    }
    for stale in committed_tables.difference(&produced) {
        problems.push(format!(
            "  {}: committed, but the committed cells no longer produce it",
            prefix.join(stale).display()
        ));
    }
    Ok(problems)
}

/// ", first at line N: committed `…`, now `…`" for two texts that differ.
fn first_difference(committed: &str, fresh: &str) -> String {
    let (mut a, mut b) = (committed.lines(), fresh.lines());
    for line in 1.. {
        match (a.next(), b.next()) {
            (Some(x), Some(y)) if x == y => continue,
            (None, None) => return " (line endings)".to_string(),
            (x, y) => {
                return format!(
                    ", first at line {line}: committed `{}`, now `{}`",
                    x.unwrap_or("<end>"),
                    y.unwrap_or("<end>")
                )
            }
        }
    }
    unreachable!("lines are finite")
}

/// Problems with the provenance of `preset`'s committed cells: a cell that records no commit,
/// one that ran from a tree with uncommitted changes, or (in a clone with full history) one whose
/// commit is not in it. `files` are the preset's tracked files ([`tracked`]).
pub fn provenance_problems(repo: &Path, preset: &str, files: &[PathBuf]) -> Result<Vec<String>> {
    if BEFORE_PROVENANCE.contains(&preset) {
        return Ok(Vec::new());
    }
    let shallow =
        git_in(repo, &["rev-parse", "--is-shallow-repository"]).map_or(true, |out| out == "true");
    let mut problems = Vec::new();
    for file in files {
        let is_cell_result = file.file_name().is_some_and(|n| n == "result.json")
            && file
                .parent()
                .and_then(Path::parent)
                .and_then(Path::file_name)
                == Some("cells".as_ref());
        if !is_cell_result {
            continue;
        }
        let text = std::fs::read_to_string(repo.join(file))
            .with_context(|| format!("reading {}", file.display()))?;
        let result: Value =
            serde_json::from_str(&text).with_context(|| format!("{}: not JSON", file.display()))?;
        let commit = result["versions"]["git"].as_str().unwrap_or("");
        let problem = if commit.len() != 40 || !commit.bytes().all(|b| b.is_ascii_hexdigit()) {
            Some(format!("records no commit (versions.git {commit:?})"))
        } else if result["versions"]["git_dirty"] != Value::Bool(false) {
            Some(format!("ran from {commit} with uncommitted changes"))
        } else if !shallow
            && git_in(repo, &["cat-file", "-e", &format!("{commit}^{{commit}}")]).is_err()
        {
            Some(format!(
                "names commit {commit}, which is not in this repository"
            ))
        } else {
            None
        };
        if let Some(problem) = problem {
            problems.push(format!("  {}: {problem}", file.display()));
        }
    }
    Ok(problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn git_ok(repo: &Path, args: &[&str]) {
        let mut all = vec!["-c", "user.name=t", "-c", "user.email=t@t"];
        all.extend_from_slice(args);
        git_in(repo, &all).unwrap();
    }

    #[test]
    fn a_table_out_of_step_with_its_cells_is_named_with_its_first_differing_line() {
        let preset = crate::spec::load_preset("smoke").unwrap();
        let repo = tempfile::tempdir().unwrap();
        for file in tracked(&crate::repo_root(), "smoke").unwrap() {
            let to = repo.path().join(&file);
            std::fs::create_dir_all(to.parent().unwrap()).unwrap();
            std::fs::copy(crate::repo_root().join(&file), to).unwrap();
        }
        git_ok(repo.path(), &["init", "-q"]);
        git_ok(repo.path(), &["add", "results"]);
        assert_eq!(
            table_problems(
                repo.path(),
                &preset,
                &tracked(repo.path(), "smoke").unwrap()
            )
            .unwrap(),
            Vec::<String>::new()
        );

        let table = repo.path().join("results/smoke/table2.md");
        let text = std::fs::read_to_string(&table).unwrap();
        std::fs::write(&table, text.replacen("| sft", "| SFT", 1)).unwrap();
        std::fs::remove_file(repo.path().join("results/smoke/table2.csv")).unwrap();
        let problems = table_problems(
            repo.path(),
            &preset,
            &tracked(repo.path(), "smoke").unwrap(),
        )
        .unwrap();
        assert_eq!(problems.len(), 2, "{problems:#?}");
        assert!(
            problems[0].starts_with("  results/smoke/table2.md: differs")
                && problems[0].contains("committed `| SFT"),
            "{problems:#?}"
        );
        assert!(
            problems[1].contains("table2.csv: produced by the committed cells but not committed")
        );
    }

    #[test]
    fn cells_without_a_clean_known_commit_are_named() {
        let repo = tempfile::tempdir().unwrap();
        git_ok(repo.path(), &["init", "-q"]);
        git_ok(
            repo.path(),
            &["commit", "-q", "--allow-empty", "-m", "code"],
        );
        let head = git_in(repo.path(), &["rev-parse", "HEAD"]).unwrap();
        let cells = [
            ("clean", head.trim(), false),
            ("dirty", head.trim(), true),
            ("unknown", "unknown", false),
            (
                "elsewhere",
                "0123456789abcdef0123456789abcdef01234567",
                false,
            ),
        ];
        for (id, commit, dirty) in cells {
            let dir = repo.path().join("results/small/cells").join(id);
            std::fs::create_dir_all(&dir).unwrap();
            let result = serde_json::json!({"versions": {"git": commit, "git_dirty": dirty}});
            std::fs::write(dir.join("result.json"), result.to_string()).unwrap();
        }
        git_ok(repo.path(), &["add", "results"]);
        let problems = provenance_problems(
            repo.path(),
            "small",
            &tracked(repo.path(), "small").unwrap(),
        )
        .unwrap();
        let named: Vec<&str> = problems
            .iter()
            .map(|p| p.split('/').nth(3).unwrap())
            .collect();
        assert_eq!(named, ["dirty", "elsewhere", "unknown"], "{problems:#?}");
        assert!(problems[0].contains("uncommitted changes"));
        assert!(problems[1].contains("not in this repository"));
        assert!(problems[2].contains("records no commit"));
        // The synthetic preset's cells predate provenance and are not held to it.
        assert!(provenance_problems(repo.path(), "small-synth", &[])
            .unwrap()
            .is_empty());
    }

    #[test]
    fn the_first_differing_line_is_named_with_both_versions() {
        assert_eq!(
            first_difference("a\nb\nc\n", "a\nB\nc\n"),
            ", first at line 2: committed `b`, now `B`"
        );
        assert_eq!(
            first_difference("a\n", "a\nb\n"),
            ", first at line 2: committed `<end>`, now `b`"
        );
    }
}
