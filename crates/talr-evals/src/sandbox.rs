//! Runs untrusted Python programs (model-written code) as a sandbox, not merely a subprocess.
//!
//! Every program gets:
//! - a private directory (under [`work_root`]) as its working directory, `HOME` and `TMPDIR`,
//!   removed after;
//! - its own process group, killed (SIGKILL) at the wall-clock timeout and again after it exits;
//! - `RLIMIT_AS` (memory), `RLIMIT_CPU`, `RLIMIT_FSIZE` (largest file it may write, which also caps
//!   its stdout/stderr, sent to files), `RLIMIT_NPROC` and no core dumps;
//! - on Linux, new network and mount namespaces: the network has only a loopback that is down, so
//!   nothing (127.0.0.1 included) can be reached, and `/tmp`, `/var/tmp` and `/dev/shm` are
//!   throwaway tmpfs mounts, so writes outside its directory vanish with it;
//! - when talr runs as root: a user id of its own (never root), so `RLIMIT_NPROC` is enforced per
//!   program (the kernel exempts root from it) and any process that escaped the process group is
//!   found by its uid and killed.
//!
//! Fallbacks, reported in [`Isolation`]: without root, namespaces come from an unprivileged user
//! namespace where the kernel allows one; where it does not (or off Linux), there is no network or
//! filesystem isolation beyond the user's own permissions, and `RLIMIT_NPROC` counts all of the
//! user's processes, so it is set above their current number.

use anyhow::{Context, Result};
use rayon::prelude::*;
use serde::Serialize;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Serialize)]
pub struct Limits {
    pub timeout: Duration,
    pub memory_bytes: u64,
    pub max_file_bytes: u64,
    pub max_processes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(3),
            memory_bytes: 2 << 30,
            max_file_bytes: 16 << 20,
            max_processes: 32,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Passed,
    /// Exited with a non-zero status.
    Failed,
    /// Killed at the wall-clock timeout.
    TimedOut,
    /// Ended by a signal (CPU or file-size limit, or a crash).
    Signalled,
    /// The sandbox itself could not run the program.
    Error,
}

#[derive(Debug, Clone, Serialize)]
pub struct Execution {
    pub outcome: Outcome,
    pub seconds: f64,
    /// The last few KiB of stderr, for diagnosis.
    pub stderr_tail: String,
}

/// Which protections this machine gives (probed once per sandbox).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Isolation {
    pub namespaces: bool,
    pub own_uid: bool,
}

pub struct Sandbox {
    python: PathBuf,
    work_root: PathBuf,
    limits: Limits,
    isolation: Isolation,
}

/// Sandboxed programs run as uids from this range, one per program, never a real account's.
const UID_BASE: u32 = 3_000_000;
static NEXT_UID: AtomicU32 = AtomicU32::new(0);
const TAIL_BYTES: u64 = 4096;

impl Sandbox {
    pub fn new(python: impl Into<PathBuf>, limits: Limits) -> Result<Self> {
        let python = python.into();
        let is_root = unsafe { libc::geteuid() } == 0;
        let mut sandbox = Self {
            python,
            work_root: work_root(),
            limits,
            isolation: Isolation {
                namespaces: false,
                own_uid: is_root,
            },
        };
        sandbox.isolation.namespaces = probe_namespaces(is_root);
        let probe = sandbox.run("import sys; sys.exit(0)");
        if probe.outcome != Outcome::Passed {
            anyhow::bail!(
                "{} cannot run programs in the sandbox: {}",
                sandbox.python.display(),
                probe.stderr_tail.trim()
            );
        }
        Ok(sandbox)
    }

    /// `$TALR_PYTHON`, else `python3`.
    pub fn from_env(limits: Limits) -> Result<Self> {
        let python = std::env::var_os("TALR_PYTHON").unwrap_or_else(|| "python3".into());
        Self::new(PathBuf::from(python), limits)
    }

    /// Makes the programs' private directories under `dir` instead of [`work_root`].
    pub fn with_work_root(mut self, dir: impl Into<PathBuf>) -> Self {
        self.work_root = dir.into();
        self
    }

    pub fn isolation(&self) -> Isolation {
        self.isolation
    }

    /// Runs many programs, `jobs` at a time, results in input order.
    pub fn run_all(&self, programs: &[String], jobs: usize) -> Vec<Execution> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(jobs.max(1))
            .build()
            .expect("thread pool");
        pool.install(|| programs.par_iter().map(|p| self.run(p)).collect())
    }

    pub fn run(&self, program: &str) -> Execution {
        let start = Instant::now();
        let result = self.run_inner(program, start);
        result.unwrap_or_else(|e| Execution {
            outcome: Outcome::Error,
            seconds: start.elapsed().as_secs_f64(),
            stderr_tail: format!("{e:#}"),
        })
    }

    fn run_inner(&self, program: &str, start: Instant) -> Result<Execution> {
        let root = &self.work_root;
        std::fs::create_dir_all(root).with_context(|| format!("creating {}", root.display()))?;
        let dir = tempfile::Builder::new()
            .prefix("talr-sandbox-")
            .tempdir_in(root)
            .with_context(|| format!("creating a sandbox directory in {}", root.display()))?;
        let script = dir.path().join("program.py");
        std::fs::write(&script, program)?;
        let stdout = std::fs::File::create(dir.path().join("stdout"))?;
        let stderr_path = dir.path().join("stderr");
        let stderr = std::fs::File::create(&stderr_path)?;
        let uid = self
            .isolation
            .own_uid
            .then(|| UID_BASE + NEXT_UID.fetch_add(1, Ordering::Relaxed) % 1_000_000);
        if let Some(uid) = uid {
            for p in [
                dir.path(),
                &script,
                &dir.path().join("stdout"),
                &stderr_path,
            ] {
                chown(p, uid)?;
            }
        }
        let limits = self.limits.clone();
        let namespaces = self.isolation.namespaces;
        let nproc = match uid {
            Some(_) => limits.max_processes,
            None => own_process_count() + limits.max_processes,
        };
        let mut cmd = Command::new(&self.python);
        // The program comes on stdin: its directory's parents may not be searchable by the
        // sandbox's own uid (e.g. under /root).
        cmd.args(["-I", "-B", "-", "program.py"])
            .current_dir(dir.path())
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("HOME", dir.path())
            .env("TMPDIR", dir.path())
            .stdin(std::fs::File::open(&script)?)
            .stdout(stdout)
            .stderr(stderr)
            .process_group(0);
        let cpu = limits.timeout.as_secs() + 1;
        // SAFETY: the closure only makes raw syscalls, which are async-signal-safe.
        unsafe {
            cmd.pre_exec(move || {
                if namespaces {
                    enter_namespaces(uid.is_none())?;
                }
                set_limit(libc::RLIMIT_AS, limits.memory_bytes)?;
                set_limit(libc::RLIMIT_CPU, cpu)?;
                set_limit(libc::RLIMIT_FSIZE, limits.max_file_bytes)?;
                set_limit(libc::RLIMIT_NPROC, nproc)?;
                set_limit(libc::RLIMIT_CORE, 0)?;
                if let Some(uid) = uid {
                    if libc::setgroups(0, std::ptr::null()) != 0
                        || libc::setgid(uid) != 0
                        || libc::setuid(uid) != 0
                    {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        let mut child = cmd
            .spawn()
            .with_context(|| format!("starting {}", self.python.display()))?;
        let pgid = child.id() as i32;
        let status = loop {
            if let Some(status) = child.try_wait()? {
                break Some(status);
            }
            if start.elapsed() >= limits.timeout {
                break None;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        // Whatever the program left running goes too: its group, then anything with its uid.
        unsafe { libc::killpg(pgid, libc::SIGKILL) };
        let _ = child.wait();
        if let Some(uid) = uid {
            kill_uid(uid);
        }
        let outcome = match status {
            None => Outcome::TimedOut,
            Some(s) if s.success() => Outcome::Passed,
            Some(s) if s.code().is_some() => Outcome::Failed,
            Some(_) => Outcome::Signalled,
        };
        Ok(Execution {
            outcome,
            seconds: start.elapsed().as_secs_f64(),
            stderr_tail: tail(&stderr_path),
        })
    }
}

/// Where the programs' private directories are made: `$TALR_CACHE/sandbox`, outside the
/// directories the mount namespace replaces (a directory under `/tmp` would vanish from sight).
pub fn work_root() -> PathBuf {
    talr_assets::cache_root().join("sandbox")
}

fn set_limit(resource: libc::__rlimit_resource_t, value: u64) -> std::io::Result<()> {
    let lim = libc::rlimit {
        rlim_cur: value,
        rlim_max: value,
    };
    if unsafe { libc::setrlimit(resource, &lim) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// New network and mount namespaces (inside a new user namespace when not root), with fresh
/// tmpfs mounts over the world-writable directories.
fn enter_namespaces(need_user_ns: bool) -> std::io::Result<()> {
    let mut flags = libc::CLONE_NEWNET | libc::CLONE_NEWNS;
    if need_user_ns {
        flags |= libc::CLONE_NEWUSER;
    }
    unsafe {
        if libc::unshare(flags) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let root = c"/";
        if libc::mount(
            std::ptr::null(),
            root.as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        ) != 0
        {
            return Err(std::io::Error::last_os_error());
        }
        let tmpfs = c"tmpfs";
        let opts = c"size=16m,mode=1777";
        for dir in [c"/tmp", c"/var/tmp", c"/dev/shm"] {
            // A directory that does not exist here is simply not there to write to.
            libc::mount(
                tmpfs.as_ptr(),
                dir.as_ptr(),
                tmpfs.as_ptr(),
                libc::MS_NOSUID | libc::MS_NODEV,
                opts.as_ptr().cast(),
            );
        }
    }
    Ok(())
}

fn probe_namespaces(is_root: bool) -> bool {
    let mut cmd = Command::new("/bin/sh");
    cmd.args(["-c", "exit 0"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: raw syscalls only.
    unsafe {
        cmd.pre_exec(move || enter_namespaces(!is_root));
    }
    cmd.status().is_ok_and(|s| s.success())
}

fn chown(path: &Path, uid: u32) -> Result<()> {
    std::os::unix::fs::chown(path, Some(uid), Some(uid))
        .with_context(|| format!("handing {} to the sandbox user", path.display()))
}

/// Processes whose real uid is `uid`, read from /proc.
fn pids_of(uid: u32) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/status")).is_ok_and(|s| {
                s.lines()
                    .find(|l| l.starts_with("Uid:"))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|v| v.parse::<u32>().ok())
                    == Some(uid)
            })
        })
        .collect()
}

/// Kills every process of `uid` until none is left (a fork loop may still be spawning).
fn kill_uid(uid: u32) {
    for _ in 0..100 {
        let pids = pids_of(uid);
        if pids.is_empty() {
            return;
        }
        for pid in pids {
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn own_process_count() -> u64 {
    pids_of(unsafe { libc::getuid() }).len() as u64
}

fn tail(path: &Path) -> String {
    let Ok(mut f) = std::fs::File::open(path) else {
        return String::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = std::io::Seek::seek(
        &mut f,
        std::io::SeekFrom::Start(len.saturating_sub(TAIL_BYTES)),
    );
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}
