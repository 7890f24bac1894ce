//! Which code made a result: the crate version, the checkout's commit, and whether its tracked
//! code differed from that commit.

use anyhow::{bail, Context, Result};
use std::path::Path;
use talr_analysis::schema::Versions;

/// The code a result came from: the crate version, and the commit of the checkout the runner
/// works in with whether its tracked code differed from that commit (`cargo xtask` rebuilds
/// from the same checkout before it runs). Read once, when first asked (`main` asks at start),
/// so a commit made while a grid runs is not credited with results from the code already
/// running. Outside a git checkout both read "unknown".
pub fn versions() -> Versions {
    static AT_START: std::sync::OnceLock<Versions> = std::sync::OnceLock::new();
    AT_START.get_or_init(read_versions).clone()
}

/// `git -C <dir> ARGS`'s output (trailing whitespace trimmed), or an error naming the command
/// and what git said.
pub fn git_in(dir: &Path, args: &[&str]) -> Result<String> {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .with_context(|| format!("running git {}", args.join(" ")))?;
    if !out.status.success() {
        bail!(
            "git {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim_end().to_string())
}

fn read_versions() -> Versions {
    let root = crate::repo_root();
    let commit = git_in(&root, &["rev-parse", "HEAD"]).ok();
    let dirty = changed_code_files(&root).map(|files| !files.is_empty());
    Versions {
        talr: env!("CARGO_PKG_VERSION").into(),
        git: commit.unwrap_or_else(|| "unknown".into()),
        git_dirty: dirty,
    }
}

/// The tracked files of the checkout at `repo` that differ from its commit, leaving out
/// `results/` and `figures/`: those hold what cells write and what is regenerated from them, so
/// a table not yet committed between two cells says nothing about the code that runs the next.
/// `None` when `repo` is not a git checkout or git fails.
fn changed_code_files(repo: &Path) -> Option<Vec<String>> {
    let status = git_in(
        repo,
        &[
            "status",
            "--porcelain",
            "--untracked-files=no",
            "--",
            ".",
            ":(exclude)results",
            ":(exclude)figures",
        ],
    )
    .ok()?;
    Some(
        status
            .lines()
            .map(|l| l.get(3..).unwrap_or(l).to_string())
            .collect(),
    )
}

/// [`changed_code_files`] of this checkout, a few names as one line, or `None` when there are
/// none or this is not a git checkout. The runner refuses to start on these, and a cell records
/// `git_dirty` from the same list, so a cell it ran is never later refused by `xtask check`.
pub fn uncommitted_code() -> Option<String> {
    let files = changed_code_files(&crate::repo_root())?;
    (!files.is_empty()).then(|| {
        let shown = files[..files.len().min(3)].join(", ");
        match files.len() {
            n if n > 3 => format!("{shown} and {} more", n - 3),
            _ => shown,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_name_the_checkouts_commit() {
        let head = std::process::Command::new("git")
            .arg("-C")
            .arg(crate::repo_root())
            .args(["rev-parse", "HEAD"])
            .output();
        let v = versions();
        assert_eq!(v.talr, env!("CARGO_PKG_VERSION"));
        match head {
            Ok(out) if out.status.success() => {
                let head = String::from_utf8_lossy(&out.stdout).trim().to_string();
                assert_eq!(v.git, head);
                assert!(v.git_dirty.is_some(), "{v:?}");
            }
            // Not a git checkout (a source tarball): say so rather than guess.
            _ => assert_eq!(v.git, "unknown"),
        }
    }

    /// A table regenerated between two cells and not yet committed must neither stop the next
    /// cell nor mark it dirty; an edit to code must do both.
    #[test]
    fn only_code_outside_results_and_figures_counts_as_uncommitted() {
        let repo = tempfile::tempdir().unwrap();
        let run = |args: &[&str]| git_in(repo.path(), args).unwrap();
        run(&["init", "-q"]);
        for dir in ["results/small", "figures", "src"] {
            std::fs::create_dir_all(repo.path().join(dir)).unwrap();
        }
        let files = ["results/small/table.md", "figures/plot.svg", "src/lib.rs"];
        for file in files {
            std::fs::write(repo.path().join(file), "first\n").unwrap();
        }
        run(&["add", "."]);
        run(&[
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "commit",
            "-qm",
            "init",
        ]);
        assert_eq!(changed_code_files(repo.path()), Some(vec![]));

        std::fs::write(repo.path().join(files[0]), "regenerated\n").unwrap();
        std::fs::write(repo.path().join(files[1]), "regenerated\n").unwrap();
        std::fs::write(repo.path().join("src/new.rs"), "untracked\n").unwrap();
        assert_eq!(changed_code_files(repo.path()), Some(vec![]));

        std::fs::write(repo.path().join(files[2]), "edited\n").unwrap();
        assert_eq!(
            changed_code_files(repo.path()),
            Some(vec!["src/lib.rs".to_string()])
        );
        let outside = tempfile::tempdir().unwrap();
        assert_eq!(changed_code_files(outside.path()), None);
    }
}
