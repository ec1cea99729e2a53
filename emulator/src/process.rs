//! Extension processes, started as Lambda starts them: a clean environment, their own process group
//! (so that a freeze or a kill reaches anything they fork), and `wait4` for the exit status, the
//! peak RSS and the CPU time.

use serde::Serialize;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How an extension process ended, from `wait4`.
#[derive(Debug, Clone, Serialize)]
pub struct ExitInfo {
    #[serde(skip)]
    pub at: Instant,
    pub code: Option<i32>,
    pub signal: Option<i32>,
    pub max_rss_kb: i64,
    pub cpu_ms: f64,
}

/// A started extension process.
pub(crate) struct Spawned {
    pub pid: i32,
    pub stdout: std::process::ChildStdout,
    pub stderr: std::process::ChildStderr,
}

/// Starts `path` with exactly `env` (nothing inherited from the emulator's own environment).
pub(crate) fn spawn(path: &Path, env: &[(String, String)]) -> std::io::Result<Spawned> {
    let mut cmd = Command::new(path);
    cmd.env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut child = cmd.spawn()?;
    let pid = child.id() as i32;
    let stdout = child.stdout.take().expect("stdout was piped");
    let stderr = child.stderr.take().expect("stderr was piped");
    // The exit is collected by `watch_exit` with wait4 (for its rusage); `Child` is not waited on.
    drop(child);
    Ok(Spawned {
        pid,
        stdout,
        stderr,
    })
}

/// Sends `signal` to the process group of `pid` (the extension and anything it forked).
pub(crate) fn signal_group(pid: i32, signal: i32) {
    // SAFETY: kill(2) with a negative pid addresses a process group; no memory is shared.
    unsafe {
        libc::kill(-pid, signal);
    }
}

/// Calls `on_exit` from a dedicated thread when the process ends, once the output readers
/// (`streams_ended`) have read everything it wrote (or after 500 ms, should a forked child keep the
/// pipes open).
pub(crate) fn watch_exit(
    pid: i32,
    streams_ended: Vec<std::sync::mpsc::Receiver<()>>,
    on_exit: impl FnOnce(ExitInfo) + Send + 'static,
) {
    std::thread::spawn(move || {
        let mut status: libc::c_int = 0;
        // SAFETY: rusage is plain old data that wait4 fills in.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        let r = loop {
            // SAFETY: wait4 writes only into the two locals passed by pointer.
            let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
            if r == -1 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted
            {
                continue;
            }
            break r;
        };
        let at = Instant::now();
        for ended in streams_ended {
            let _ = ended.recv_timeout(Duration::from_millis(500));
        }
        let (code, signal) = if r == pid {
            if libc::WIFEXITED(status) {
                (Some(libc::WEXITSTATUS(status)), None)
            } else if libc::WIFSIGNALED(status) {
                (None, Some(libc::WTERMSIG(status)))
            } else {
                (None, None)
            }
        } else {
            (None, None)
        };
        on_exit(ExitInfo {
            at,
            code,
            signal,
            max_rss_kb: usage.ru_maxrss,
            cpu_ms: cpu_ms(&usage),
        });
    });
}

/// User plus system CPU time of a `rusage`, in ms.
fn cpu_ms(usage: &libc::rusage) -> f64 {
    let tv = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    crate::clock::ms(tv(usage.ru_utime) + tv(usage.ru_stime))
}

/// This process's CPU time so far (user and system), in ms; 0 if the kernel will not say.
pub(crate) fn own_cpu_ms() -> f64 {
    // SAFETY: rusage is plain old data that getrusage fills in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes only into the local passed by pointer.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return 0.0;
    }
    cpu_ms(&usage)
}

/// Calls `on_line` from a dedicated thread for every line the stream yields; the returned
/// receiver gets a message at the end of the stream.
pub(crate) fn read_lines(
    stream: impl Read + Send + 'static,
    mut on_line: impl FnMut(String) + Send + 'static,
) -> std::sync::mpsc::Receiver<()> {
    let (done, ended) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            match line {
                Ok(l) => on_line(l),
                Err(_) => break,
            }
        }
        let _ = done.send(());
    });
    ended
}

/// The state letter of `/proc/<pid>/stat` (`T` = stopped), if the process exists.
pub fn process_state(pid: i32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain spaces: the state follows the last ')'.
    let after = &stat[stat.rfind(')')? + 1..];
    after.trim_start().chars().next()
}

/// Peak resident set size of a live process's own address space in KiB (`VmHWM`). Unlike
/// `wait4`'s `ru_maxrss`, it does not count the parent's memory the child shared until exec.
pub fn hwm_kb(pid: i32) -> Option<u64> {
    status_kb(pid, "VmHWM:")
}

/// Resident set size of a live process in KiB (`VmRSS`).
pub fn rss_kb(pid: i32) -> Option<u64> {
    status_kb(pid, "VmRSS:")
}

fn status_kb(pid: i32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// The executables of an extensions directory, sorted by name.
pub fn list_extensions(dir: &Path) -> std::io::Result<Vec<(String, std::path::PathBuf)>> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        if meta.is_file() && meta.permissions().mode() & 0o111 != 0 {
            out.push((entry.file_name().to_string_lossy().into_owned(), path));
        }
    }
    out.sort();
    Ok(out)
}
