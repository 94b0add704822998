//! `scripts/dev` as a person uses it: the README's Quick start, pasted in
//! order, works against it; and SIGINT or SIGTERM to its PID, or a
//! terminal's Ctrl-C (SIGINT to its whole process group), stops every
//! process it started and frees every port it listened on.
//!
//! One test, one stack at a time: `scripts/dev` writes
//! `target/local/outputs.json`, which `trigger-ops --local` reads.

use std::collections::BTreeSet;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};
use testkit::{free_port, workspace_root};

/// How a stack is told to stop.
#[derive(Debug, Clone, Copy)]
enum Stop {
    /// `kill -INT <pid>`
    InterruptPid,
    /// `kill -TERM <pid>`
    TerminatePid,
    /// A terminal's Ctrl-C: SIGINT to the foreground process group.
    CtrlC,
}

struct Dev {
    child: Child,
    /// The HTTP API's, moto's and DynamoDB Local's ports.
    ports: [u16; 3],
}

/// A test that fails part way must not leave a stack running: the whole
/// process group gets SIGTERM (a no-op once it has exited).
impl Drop for Dev {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let group = format!("-{}", self.child.id());
            let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
            let _ = self.child.wait();
        }
    }
}

fn curl(args: &[&str]) -> Output {
    Command::new("curl")
        .args(["-s", "--max-time", "5"])
        .args(args)
        .output()
        .expect("curl runs")
}

/// Starts `scripts/dev` in a process group of its own (as a terminal runs
/// a command) with the environment a fresh terminal has, and waits until
/// its API answers.
fn start_dev() -> Dev {
    let root = workspace_root();
    let ports = [free_port(), free_port(), free_port()];
    let mut command = Command::new("bash");
    command
        .arg(root.join("scripts/dev"))
        .current_dir(&root)
        .env_clear()
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::from(log_file(&root, "dev-test.out")))
        .stderr(Stdio::from(log_file(&root, "dev-test.err")));
    for (name, value) in std::env::vars() {
        let kept = ["PATH", "HOME", "CARGO_HOME", "RUSTUP_HOME", "LANG", "USER"];
        if kept.contains(&name.as_str()) {
            command.env(name, value);
        }
    }
    command
        .env("PORT", ports[0].to_string())
        .env("MOTO_PORT", ports[1].to_string())
        .env("DYNAMODB_PORT", ports[2].to_string());
    // As a terminal starts a command: SIGINT at its default. A process
    // started in the background by a non-interactive shell (as CI may run
    // this test) inherits SIGINT ignored, and bash cannot trap a signal
    // ignored on entry.
    // SAFETY: `signal` is async-signal-safe; only it runs between fork and exec.
    unsafe {
        command.pre_exec(|| {
            libc::signal(libc::SIGINT, libc::SIG_DFL);
            Ok(())
        });
    }
    let mut child = command.spawn().expect("scripts/dev starts");
    let url = format!("http://127.0.0.1:{}/pipelines", ports[0]);
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let answered = curl(&["-o", "/dev/null", "-w", "%{http_code}", &url]);
        if String::from_utf8_lossy(&answered.stdout) == "200" {
            return Dev { child, ports };
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "scripts/dev exited ({status}) before serving: see target/dev-test.err\n{}",
                std::fs::read_to_string(root.join("target/dev-test.err")).unwrap_or_default()
            );
        }
        assert!(Instant::now() < deadline, "scripts/dev never served {url}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn log_file(root: &Path, name: &str) -> std::fs::File {
    std::fs::create_dir_all(root.join("target")).expect("target/");
    std::fs::File::create(root.join("target").join(name)).expect("a log file")
}

/// Every process descending from `pid` (by parent), found in /proc.
fn descendants(pid: u32) -> BTreeSet<u32> {
    let mut parents = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(child) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid ...: comm may hold spaces, so after ')'.
        let Some(rest) = stat.rsplit_once(')').map(|(_, rest)| rest) else {
            continue;
        };
        if let Some(parent) = rest.split_whitespace().nth(1).and_then(|p| p.parse().ok()) {
            parents.push((child, parent));
        }
    }
    let mut found = BTreeSet::from([pid]);
    loop {
        let before = found.len();
        for &(child, parent) in &parents {
            if found.contains(&parent) {
                found.insert(child);
            }
        }
        if found.len() == before {
            found.remove(&pid);
            return found;
        }
    }
}

fn alive(pid: u32) -> bool {
    // A zombie has exited: only its entry is left.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| {
            !stat
                .rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

fn port_free(port: u16) -> bool {
    std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// Stops the stack `how`, then checks that every process it had is gone and
/// every port is free within a few seconds.
fn stop_and_check(mut dev: Dev, how: Stop) {
    let pid = dev.child.id();
    let processes = descendants(pid);
    assert!(
        processes.len() >= 3,
        "the stack, moto and DynamoDB Local run under scripts/dev: {processes:?}"
    );
    let (target, signal) = match how {
        Stop::InterruptPid => (pid.to_string(), "-INT"),
        Stop::TerminatePid => (pid.to_string(), "-TERM"),
        Stop::CtrlC => (format!("-{pid}"), "-INT"),
    };
    let sent = Command::new("kill")
        .args([signal, "--", &target])
        .status()
        .expect("kill runs");
    assert!(sent.success(), "{how:?}");
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = dev.child.try_wait().expect("wait for scripts/dev") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "{how:?}: scripts/dev did not exit"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        status.success(),
        "{how:?}: scripts/dev exited with {status}"
    );
    // Everything it started is gone and every port free, within seconds.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left: Vec<u32> = processes.iter().copied().filter(|&p| alive(p)).collect();
        let busy: Vec<u16> = dev
            .ports
            .iter()
            .copied()
            .filter(|&p| !port_free(p))
            .collect();
        if left.is_empty() && busy.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{how:?}: processes {left:?} still run, ports {busy:?} still taken"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The README's Quick start commands for terminal 2, as written (the API's
/// port aside: the test's stack serves on a free one).
fn quick_start_commands(port: u16) -> Vec<String> {
    let readme = std::fs::read_to_string(workspace_root().join("README.md")).expect("README");
    let section = readme
        .split("## Quick start")
        .nth(1)
        .expect("a Quick start section");
    let block = section
        .split("Then, in terminal 2, from the repository root:")
        .nth(1)
        .and_then(|rest| rest.split("```sh\n").nth(1))
        .and_then(|rest| rest.split("```").next())
        .expect("terminal 2's commands");
    block
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| line.replace("127.0.0.1:3000", &format!("127.0.0.1:{port}")))
        .collect()
}

#[test]
fn the_quick_start_works_as_written_and_any_signal_stops_everything() {
    let dev = start_dev();
    let commands = quick_start_commands(dev.ports[0]);
    assert_eq!(commands.len(), 8, "{commands:#?}");
    // One shell, as a person's terminal: each command's output apart.
    let script: String = commands
        .iter()
        .enumerate()
        .map(|(i, command)| format!("echo '::{i}'\n{command}\necho\n"))
        .collect();
    // A terminal's shell: no -e, no pipefail.
    let ran = Command::new("bash")
        .args(["-c", &script])
        .current_dir(workspace_root())
        .output()
        .expect("bash runs");
    let stdout = String::from_utf8_lossy(&ran.stdout).into_owned();
    assert!(
        ran.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&ran.stderr)
    );
    let outputs: Vec<&str> = stdout.split("::").skip(1).collect();
    assert_eq!(outputs.len(), 8, "{stdout}");
    let says = |i: usize, what: &[&str]| {
        for text in what {
            // HTTP/1.1 header names are case-insensitive (curl shows hyper's
            // lower case).
            assert!(
                outputs[i].to_lowercase().contains(&text.to_lowercase()),
                "command {i} ({}): {}",
                commands[i],
                outputs[i]
            );
        }
    };
    says(1, &["202 Accepted", "\"remaining\":1"]);
    says(3, &["\"status\":\"succeeded\"", "\"stages\""]);
    says(4, &["202 Accepted", "\"remaining\":0"]);
    says(5, &["429", "Retry-After"]);
    says(6, &["202 Accepted"]);
    says(7, &["app", "broken"]);
    // The banner's trigger-ops commands, pasted as printed.
    let banner =
        std::fs::read_to_string(workspace_root().join("target/dev-test.out")).expect("the banner");
    let printed: Vec<&str> = banner
        .lines()
        .map(str::trim)
        .filter(|line| line.starts_with("target/debug/trigger-ops "))
        .collect();
    assert!(printed.len() >= 2, "{banner}");
    for command in printed {
        let ran = Command::new("bash")
            .args(["-c", command])
            .current_dir(workspace_root())
            .env_remove("AWS_ENDPOINT_URL")
            .env_remove("AWS_ENDPOINT_URL_DYNAMODB")
            .output()
            .expect("bash runs");
        assert!(
            ran.status.success(),
            "{command}: {}",
            String::from_utf8_lossy(&ran.stderr)
        );
    }
    stop_and_check(dev, Stop::InterruptPid);

    stop_and_check(start_dev(), Stop::TerminatePid);
    stop_and_check(start_dev(), Stop::CtrlC);
}
