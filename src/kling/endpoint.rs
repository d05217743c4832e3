//! The six Kling actions (contract §1). Paths use underscores; the official CLI's hyphenated
//! spellings are accepted on input.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Endpoint {
    TextToVideo,
    ImageToVideo,
    MotionControl,
    AiAvatar,
    ExtendVideo,
    EditVideo,
}

impl Endpoint {
    pub const ALL: [Endpoint; 6] = [
        Endpoint::TextToVideo,
        Endpoint::ImageToVideo,
        Endpoint::MotionControl,
        Endpoint::AiAvatar,
        Endpoint::ExtendVideo,
        Endpoint::EditVideo,
    ];

    /// The action segment of `/api/v1/kling/{action}`.
    pub fn as_str(self) -> &'static str {
        match self {
            Endpoint::TextToVideo => "text_to_video",
            Endpoint::ImageToVideo => "image_to_video",
            Endpoint::MotionControl => "motion_control",
            Endpoint::AiAvatar => "ai_avatar",
            Endpoint::ExtendVideo => "extend_video",
            Endpoint::EditVideo => "edit_video",
        }
    }

    /// Whether requests to this endpoint name a `model` (extend_video derives it from its source).
    pub fn takes_model(self) -> bool {
        self != Endpoint::ExtendVideo
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownEndpoint(pub String);

impl fmt::Display for UnknownEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown endpoint `{}`", self.0)
    }
}

impl std::error::Error for UnknownEndpoint {}

impl FromStr for Endpoint {
    type Err = UnknownEndpoint;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let normalized = s.trim().replace('-', "_");
        Endpoint::ALL
            .into_iter()
            .find(|e| e.as_str() == normalized)
            .ok_or_else(|| UnknownEndpoint(s.to_string()))
    }
}
