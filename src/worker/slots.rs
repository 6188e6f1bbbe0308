//! `mr worker --cluster URL --slots N` with N > 1: N slot processes of this same binary (each
//! `mr worker --cluster URL --slots 1`, running one attempt at a time, as every worker
//! process does), started, restarted when one dies (an attempt that crashed its process), and
//! stopped with the worker. They die with it (`PR_SET_PDEATHSIG`), even when it is SIGKILLed.

use std::ffi::OsString;
use std::time::Duration;

use nix::sys::signal::Signal;
use nix::unistd::Pid;

use crate::error::{Error, Result};

/// How long a slot process that died waits before it is started again.
const RESTART_DELAY: Duration = Duration::from_millis(500);

/// Runs `slots` slot processes (`exe` with `args`) until SIGINT or SIGTERM, which they get
/// too; returns `Error::Interrupted` once they have exited.
pub async fn supervise(exe: std::path::PathBuf, args: Vec<OsString>, slots: u32) -> Result<()> {
    let (tx, mut exits) = tokio::sync::mpsc::unbounded_channel::<(usize, u32)>();
    let mut pids = vec![0u32; slots as usize];
    for (i, pid) in pids.iter_mut().enumerate() {
        *pid = start(&exe, &args, i, &tx)?;
    }
    let stop = crate::worker::shutdown::interrupted();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            signal = &mut stop => {
                signal?;
                break;
            }
            Some((i, pid)) = exits.recv() => {
                if pids[i] == pid {
                    tracing::warn!(slot = i, pid, "a slot process exited: starting another");
                    tokio::time::sleep(RESTART_DELAY).await;
                    pids[i] = start(&exe, &args, i, &tx)?;
                }
            }
        }
    }
    for &pid in &pids {
        let _ = nix::sys::signal::kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
    }
    let mut left = pids.len();
    while left > 0 {
        match tokio::time::timeout(Duration::from_secs(10), exits.recv()).await {
            Ok(Some(_)) => left -= 1,
            _ => break,
        }
    }
    Err(Error::Interrupted)
}

/// Starts slot process `i`; its exit is sent on `tx` with its pid.
fn start(
    exe: &std::path::Path,
    args: &[OsString],
    i: usize,
    tx: &tokio::sync::mpsc::UnboundedSender<(usize, u32)>,
) -> Result<u32> {
    let mut cmd = tokio::process::Command::new(exe);
    cmd.args(args).stdin(std::process::Stdio::null());
    let parent = std::process::id();
    // SAFETY: the closure runs in the forked child before exec and only makes
    // async-signal-safe system calls (prctl, getppid, kill).
    unsafe {
        cmd.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)?;
            // The parent may have died before prctl: then nobody would send the signal.
            if nix::unistd::getppid().as_raw() as u32 != parent {
                nix::sys::signal::kill(Pid::this(), Signal::SIGKILL)?;
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(|e| Error::Job(format!("cannot start a slot process: {e}")))?;
    let pid = child.id().unwrap_or(0);
    let tx = tx.clone();
    tokio::spawn(async move {
        let _ = child.wait().await;
        let _ = tx.send((i, pid));
    });
    Ok(pid)
}
