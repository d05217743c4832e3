//! What an approval binds a plan by: one digest over every job — its id, endpoint, the exact body
//! its create would send (local files in it named by their content hash), the job it continues and
//! its estimated cost — and every local file's full content hash. Two plans with the same digest
//! send the same requests with the same files; a change to the manifest, to a CSV it reads or to
//! any file it names changes it. (The sweep name a shared store registers is `plan_digest` there:
//! job ids only, shorter, and not meant to stand against someone choosing a collision.)

use super::expand::Plan;
use crate::util::within::Within;
use sha2::{Digest, Sha256};
use std::path::Path;

/// A plan someone approved, frozen beside the sweep it started: the run given it (`run
/// --approved-plan FILE`) reads every file it names only `within` the folder, and refuses to
/// start unless the plan it would run has this digest.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ApprovedPlan {
    pub digest: String,
    pub within: Within,
    pub jobs: usize,
    /// The estimate approved, µ¢.
    pub estimate: u64,
}

impl ApprovedPlan {
    pub fn read(path: &Path) -> Result<ApprovedPlan, String> {
        let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        serde_json::from_slice(&bytes).map_err(|e| format!("{} is not an approved plan: {e}", path.display()))
    }

    /// Writes it durably (a new file, renamed into place).
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        use std::io::Write;
        let part = path.with_extension("json.part");
        let mut file = std::fs::File::create(&part)?;
        file.write_all(&serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?)?;
        file.sync_all()?;
        std::fs::rename(&part, path)
    }
}

impl Plan {
    /// The plan's content digest: 64 hex.
    pub fn content_digest(&self) -> String {
        let mut hasher = Sha256::new();
        for job in &self.jobs {
            hasher.update(job.id.as_str().as_bytes());
            hasher.update([0]);
            hasher.update(job.endpoint.as_str().as_bytes());
            hasher.update([0]);
            hasher.update(job.request.as_str().as_bytes());
            hasher.update([0]);
            hasher.update(job.parent.map_or(u64::MAX, |p| p as u64).to_le_bytes());
            hasher.update(job.estimate.cost.micro_cents().to_le_bytes());
        }
        hasher.update(b"files\0");
        for file in &self.inputs.files {
            hasher.update(file.hash.as_bytes());
            hasher.update([0]);
        }
        crate::util::hex::hex(&hasher.finalize())
    }
}
