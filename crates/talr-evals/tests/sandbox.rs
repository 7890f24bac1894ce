//! Hostile programs in the sandbox: each ends within its limits, does not pass, leaves nothing
//! behind, and the sandbox carries on. Needs `python3` (as HumanEval does).

use std::net::TcpListener;
use std::time::Duration;
use talr_evals::sandbox::{Limits, Outcome, Sandbox};

fn sandbox() -> Sandbox {
    Sandbox::from_env(Limits {
        timeout: Duration::from_secs(2),
        ..Limits::default()
    })
    .expect("python3 is needed for the sandbox tests")
}

/// Processes still running a sandboxed program from `work` (their command line names the
/// program and their working directory is under `work`).
fn leftover_programs(work: &std::path::Path) -> usize {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let runs_program = std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains("program.py"));
            let cwd = std::fs::read_link(format!("/proc/{pid}/cwd"));
            runs_program && cwd.is_ok_and(|d| d.starts_with(work))
        })
        .count()
}

#[test]
fn hostile_programs_are_contained() {
    let sb = sandbox();
    let isolation = sb.isolation();
    eprintln!("isolation here: {isolation:?}");
    let work = tempfile::tempdir().unwrap();
    let sb = sb.with_work_root(work.path());
    let marker = format!("talr-escape-{}", std::process::id());
    let outside = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();

    let cases: Vec<(&str, String)> = vec![
        ("infinite loop", "while True:\n    pass\n".into()),
        (
            "fork bomb",
            "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
                .into(),
        ),
        ("10 GB allocation", "x = bytearray(10 * 1024**3)\nx[-1] = 1\n".into()),
        (
            "write outside its directory",
            format!(
                "open('/tmp/{marker}', 'w').write('x')\nopen('{}/{marker}', 'w').write('x')\n",
                outside.path().display()
            ),
        ),
        (
            "connect to 127.0.0.1",
            format!("import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=1)\n"),
        ),
        (
            "print 100 MB",
            "import sys\nsys.stdout.write('x' * (100 << 20))\nsys.stdout.flush()\n".into(),
        ),
    ];
    for (name, program) in &cases {
        let run = sb.run(program);
        assert_ne!(run.outcome, Outcome::Passed, "{name}: {run:?}");
        assert_ne!(run.outcome, Outcome::Error, "{name}: {run:?}");
        // Ended by its 2 s limit, not by running out: reaping a fork bomb's hundreds of processes
        // takes seconds when training shares the machine's two cores (4.0 s was measured so).
        assert!(run.seconds < 2.0 + 6.0, "{name} took {:.1}s", run.seconds);
        assert_eq!(
            leftover_programs(work.path()),
            0,
            "{name} left processes running"
        );
        eprintln!("{name}: {:?} in {:.2}s", run.outcome, run.seconds);
    }
    assert!(
        !std::path::Path::new(&format!("/tmp/{marker}")).exists() || !isolation.namespaces,
        "a write to /tmp escaped the sandbox"
    );
    assert!(
        !outside.path().join(&marker).exists(),
        "a write escaped the sandbox"
    );
    if isolation.namespaces {
        assert!(
            listener.accept().is_err(),
            "the sandbox reached a listener on 127.0.0.1"
        );
    }
    let left: Vec<_> = std::fs::read_dir(work.path()).unwrap().collect();
    assert!(left.is_empty(), "sandbox directories left behind: {left:?}");
    // The harness carries on.
    let ok = sb.run("print(sum(range(10)))\n");
    assert_eq!(ok.outcome, Outcome::Passed, "{ok:?}");
}

#[test]
fn many_programs_run_in_parallel_in_order() {
    let sb = sandbox();
    let programs: Vec<String> = (0..8)
        .map(|i| format!("import sys\nsys.exit({})\n", i % 2))
        .collect();
    let runs = sb.run_all(&programs, 4);
    for (i, run) in runs.iter().enumerate() {
        let want = if i % 2 == 0 {
            Outcome::Passed
        } else {
            Outcome::Failed
        };
        assert_eq!(run.outcome, want, "program {i}: {run:?}");
    }
}
