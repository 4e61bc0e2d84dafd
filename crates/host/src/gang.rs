//! The same job on many devices at once: one thread per device, a failure (or a panic) in
//! one never stops the others, and every device gets its own outcome.
use std::time::Instant;

use crate::target::Target;
use crate::{Cancel, Error, ErrorKind};

/// A progress report from one device: what it is doing, `done` of `total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Step {
    /// "erasing", "writing", "verifying", "uploading", …
    pub phase: &'static str,
    /// Units done (bytes, or pages while erasing).
    pub done: u64,
    /// Units in this phase.
    pub total: u64,
}

/// One device's result.
#[derive(Debug)]
pub struct Outcome<R> {
    /// The device.
    pub target: Target,
    /// What the job returned.
    pub result: Result<R, Error>,
    /// Wall time of its job, seconds.
    pub seconds: f64,
}

/// Runs `job` for every target in parallel and returns the outcomes in target order.
/// `job` gets the target, a progress sink and the shared cancel flag; `report(i, step)` is
/// called from the device's thread for target `i`.
pub fn run<R, J, P>(targets: &[Target], cancel: &Cancel, job: J, report: P) -> Vec<Outcome<R>>
where
    R: Send,
    J: Fn(&Target, &mut dyn FnMut(Step), &Cancel) -> Result<R, Error> + Sync,
    P: Fn(usize, Step) + Sync,
{
    std::thread::scope(|scope| {
        let handles: Vec<_> = targets
            .iter()
            .enumerate()
            .map(|(i, target)| {
                let (job, report) = (&job, &report);
                scope.spawn(move || {
                    let t0 = Instant::now();
                    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        job(target, &mut |s| report(i, s), cancel)
                    }))
                    .unwrap_or_else(|panic| {
                        Err(Error::new(ErrorKind::Internal, panic_text(&panic)))
                    });
                    Outcome {
                        target: target.clone(),
                        result,
                        seconds: t0.elapsed().as_secs_f64(),
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .zip(targets)
            .map(|(h, target)| {
                h.join().unwrap_or_else(|panic| Outcome {
                    target: target.clone(),
                    result: Err(Error::new(ErrorKind::Internal, panic_text(&panic))),
                    seconds: 0.0,
                })
            })
            .collect()
    })
}

/// The message of a caught panic.
pub fn panic_text(panic: &Box<dyn std::any::Any + Send>) -> String {
    let what = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown".into());
    format!("internal error (a bug in brickless, please report it): {what}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn targets(n: usize) -> Vec<Target> {
        (0..n)
            .map(|i| Target::Udp(format!("127.0.0.1:{}", 2000 + i)))
            .collect()
    }

    #[test]
    fn jobs_run_at_once_and_one_failure_or_panic_stops_no_other() {
        let ts = targets(6);
        let started = AtomicUsize::new(0);
        let reports = AtomicUsize::new(0);
        let out = run(
            &ts,
            &Cancel::new(),
            |t, progress, _| {
                started.fetch_add(1, Ordering::SeqCst);
                // Every job waits for all to start: they can only finish if they run at once.
                let t0 = Instant::now();
                while started.load(Ordering::SeqCst) < 6 {
                    assert!(t0.elapsed().as_secs() < 10, "jobs did not run in parallel");
                    std::thread::yield_now();
                }
                progress(Step {
                    phase: "x",
                    done: 1,
                    total: 1,
                });
                match t {
                    Target::Udp(a) if a.ends_with("2001") => {
                        Err(Error::new(ErrorKind::Timeout, "gone"))
                    }
                    Target::Udp(a) if a.ends_with("2004") => panic!("boom"),
                    _ => Ok(a_len(t)),
                }
            },
            |_, _| {
                reports.fetch_add(1, Ordering::SeqCst);
            },
        );
        assert_eq!(out.len(), 6);
        assert_eq!(reports.load(Ordering::SeqCst), 6);
        for (i, o) in out.iter().enumerate() {
            assert_eq!(o.target, ts[i]);
            match i {
                1 => assert_eq!(o.result.as_ref().unwrap_err().kind, ErrorKind::Timeout),
                4 => {
                    let e = o.result.as_ref().unwrap_err();
                    assert_eq!(e.kind, ErrorKind::Internal);
                    assert!(e.message.contains("boom"));
                }
                _ => assert_eq!(*o.result.as_ref().unwrap(), "udp:127.0.0.1:2000".len()),
            }
        }
    }

    fn a_len(t: &Target) -> usize {
        t.to_string().len()
    }
}
