//! The catalogue of request fields across all Kling actions (contract §2.3–§2.8): name and JSON
//! type. Which model accepts which field, and with what values, lives in `models`.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FieldType {
    String,
    Integer,
    Boolean,
    Number,
    /// An http(s) URL given as a string.
    Url,
    /// An array of http(s) URLs.
    UrlList,
    /// `multi_prompt`: an array of `{prompt, duration_seconds}`.
    MultiPrompt,
    /// `kling_elements`: an array of element objects.
    Elements,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct FieldSpec {
    pub name: &'static str,
    pub ty: FieldType,
}

const fn f(name: &'static str, ty: FieldType) -> FieldSpec {
    FieldSpec { name, ty }
}

/// Every request field any Kling action accepts.
pub(crate) const FIELDS: &[FieldSpec] = &[
    f("model", FieldType::String),
    f("prompt", FieldType::String),
    f("duration_seconds", FieldType::Integer),
    f("aspect_ratio", FieldType::String),
    f("output_resolution", FieldType::String),
    f("enable_sound", FieldType::Boolean),
    f("mode", FieldType::String),
    f("negative_prompt", FieldType::String),
    f("cfg_scale", FieldType::Number),
    f("multi_shots", FieldType::Boolean),
    f("multi_prompt", FieldType::MultiPrompt),
    f("first_frame_image_url", FieldType::Url),
    f("last_frame_image_url", FieldType::Url),
    f("kling_elements", FieldType::Elements),
    f("reference_image_urls", FieldType::UrlList),
    f("reference_video_url", FieldType::Url),
    f("reference_video_type", FieldType::String),
    f("preserve_reference_video_audio", FieldType::Boolean),
    f("source_image_url", FieldType::Url),
    f("source_audio_url", FieldType::Url),
    f("source_video_url", FieldType::Url),
    f("source_task_id", FieldType::String),
    f("character_orientation", FieldType::String),
    f("background_source", FieldType::String),
    f("callback_url", FieldType::Url),
];

pub(crate) fn field(name: &str) -> Option<&'static FieldSpec> {
    FIELDS.iter().find(|f| f.name == name)
}

/// Whether `name` is a request field or the endpoint (the one key that picks the action): what a
/// manifest may set per job, and what a gallery may lay out as an axis.
pub(crate) fn is_request_key(name: &str) -> bool {
    name == "endpoint" || field(name).is_some()
}
