//! Watching a running job through its status server (`/api/v1/job`, `/metrics`), so that tests
//! wait on the job's state rather than on files that appear for other reasons.

use crate::cluster::free_port;

/// The status server of a job started with `--http ADDR` (see [`Status::flag`]).
pub struct Status {
    pub addr: String,
}

impl Status {
    /// A free loopback address for `--http`.
    pub fn new() -> Status {
        Status { addr: format!("127.0.0.1:{}", free_port()) }
    }

    /// The flag and value that make the job serve here.
    pub fn flag(&self) -> [&str; 2] {
        ["--http", &self.addr]
    }

    fn get(&self, path: &str) -> Option<String> {
        let url = format!("http://{}{path}", self.addr);
        ureq::get(&url).call().ok().and_then(|mut r| r.body_mut().read_to_string().ok())
    }

    /// `/api/v1/job`, or None while (or once) nothing serves it.
    pub fn job(&self) -> Option<serde_json::Value> {
        self.get("/api/v1/job").map(|text| serde_json::from_str(&text).unwrap())
    }

    /// `/metrics`, or None while nothing serves it.
    pub fn metrics(&self) -> Option<String> {
        self.get("/metrics")
    }
}

/// The phase's entry (`map` or `reduce`) of a job view.
pub fn phase<'a>(view: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    view["phases"].as_array().unwrap().iter().find(|p| p["phase"] == name).unwrap()
}

/// The process id of a live worker running an attempt of `phase`, with that attempt (as
/// `phase task.attempt`).
pub fn worker_running(view: &serde_json::Value, phase: &str) -> Option<(u32, String)> {
    view["workers"].as_array()?.iter().filter(|w| w["alive"] == true).find_map(|w| {
        let running = w["running"].as_array()?.iter().find_map(|r| r.as_str().filter(|r| r.starts_with(phase)))?;
        let pid = w["name"].as_str()?.rsplit_once("pid ")?.1.parse().ok()?;
        Some((pid, running.to_string()))
    })
}
