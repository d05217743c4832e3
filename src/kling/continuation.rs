//! Continuations (contract §2.7, §2.8, §15): actions that take an earlier task's video through
//! `source_task_id`, and which earlier tasks each one continues.

use super::Endpoint;

/// Models whose completed tasks `extend_video` continues (contract §2.7). Extensions of them
/// extend again.
pub(crate) const EXTENDABLE_MODELS: [&str; 2] = [
    "kling-v2.5-turbo-text-to-video-pro",
    "kling-v2.5-turbo-image-to-video-pro",
];

/// Whether `endpoint` continues an earlier task (`source_task_id`).
pub(crate) fn is_continuation(endpoint: Endpoint) -> bool {
    matches!(endpoint, Endpoint::ExtendVideo | Endpoint::EditVideo)
}

/// Whether `endpoint` can continue a task made by `source` on `source_model`, or why not.
/// `edit_video` takes "a completed compatible task" and the contract does not say which are
/// compatible, so every video task is accepted for it (the service has the last word).
pub(crate) fn can_continue(endpoint: Endpoint, source: Endpoint, source_model: Option<&str>) -> Result<(), String> {
    match endpoint {
        Endpoint::ExtendVideo => {
            if source == Endpoint::ExtendVideo || source_model.is_some_and(|m| EXTENDABLE_MODELS.contains(&m)) {
                Ok(())
            } else {
                Err(format!(
                    "extend_video continues {} tasks (or their extensions), not {}",
                    EXTENDABLE_MODELS.join(" or "),
                    source_model.map_or_else(|| format!("{source} tasks"), |m| format!("{m} tasks")),
                ))
            }
        }
        Endpoint::EditVideo => Ok(()),
        other => Err(format!("{other} does not continue an earlier task")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extend_continues_turbo_pro_tasks_and_extensions_only() {
        assert!(can_continue(Endpoint::ExtendVideo, Endpoint::TextToVideo, Some(EXTENDABLE_MODELS[0])).is_ok());
        assert!(
            can_continue(
                Endpoint::ExtendVideo,
                Endpoint::ImageToVideo,
                Some(EXTENDABLE_MODELS[1])
            )
            .is_ok()
        );
        assert!(can_continue(Endpoint::ExtendVideo, Endpoint::ExtendVideo, None).is_ok());
        let why = can_continue(Endpoint::ExtendVideo, Endpoint::TextToVideo, Some("kling-3.0")).unwrap_err();
        assert!(why.contains("not kling-3.0 tasks"), "{why}");
        assert!(can_continue(Endpoint::EditVideo, Endpoint::TextToVideo, Some("kling-3.0")).is_ok());
        assert!(can_continue(Endpoint::TextToVideo, Endpoint::TextToVideo, None).is_err());
    }
}
