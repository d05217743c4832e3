//! Per-model request rules, transcribed from the contract's generated validator tables and the
//! SDKs' bespoke checks (contract §2.3–§2.8). Data only: `validate` interprets it.
//!
//! Reading a `ModelSpec`: `fields` lists what the model accepts, with the value constraint the
//! contract encodes; `forbidden` lists what a contract rule explicitly rejects (✖ in the contract's
//! matrices); a field in neither list is not documented for the model (— in the matrices).

use super::Endpoint;

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Constraint {
    Any,
    Enum(&'static [&'static str]),
    Ints(&'static [i64]),
    IntRange(i64, i64),
    /// String length in characters.
    Chars(usize, usize),
    /// Array length.
    Items(usize, usize),
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Lit {
    Str(&'static str),
    Int(i64),
    Bool(bool),
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum Cond {
    Eq(&'static str, Lit),
    Present(&'static str, bool),
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum Then {
    Required(&'static [&'static str]),
    Forbidden(&'static [&'static str]),
    RequiredAny(&'static [&'static str]),
    Enum(&'static str, &'static [Lit]),
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Rule {
    pub when: &'static [Cond],
    pub then: Then,
    /// Overrides the generic message when the SDKs word this rule specially.
    pub message: Option<&'static str>,
}

#[derive(Debug)]
pub(crate) struct ModelSpec {
    pub endpoint: Endpoint,
    /// `None` for extend_video, whose model comes from its source task.
    pub model: Option<&'static str>,
    pub fields: &'static [(&'static str, Constraint)],
    pub required: &'static [&'static str],
    pub forbidden: &'static [&'static str],
    pub rules: &'static [Rule],
    /// The server-side defaults the contract documents; used for estimates and reports.
    pub defaults: &'static [(&'static str, Lit)],
    /// Extra checks the SDKs implement in code rather than in the generated tables.
    pub bespoke: Bespoke,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Bespoke {
    None,
    /// Kling O1 reference-media validation (contract §2.3, "Kling O1 reference validation").
    O1References,
}

use Constraint::*;

const ASPECT: Constraint = Enum(&["16:9", "9:16", "1:1"]);
const RES3: Constraint = Enum(&["720p", "1080p", "4k"]);
const RES2: Constraint = Enum(&["720p", "1080p"]);
const MODE: Constraint = Enum(&["std", "pro"]);
const ORIENTATION: Constraint = Enum(&["video", "image"]);
const D5_10: Constraint = Ints(&[5, 10]);
const D3_15: Constraint = IntRange(3, 15);
const D5: Constraint = Ints(&[5]);
const PROMPT: Constraint = Chars(1, 2500);
const REFS: &[&str] = &[
    "reference_image_urls",
    "reference_video_url",
    "reference_video_type",
    "preserve_reference_video_audio",
];
const DEF_5_720: &[(&str, Lit)] = &[
    ("duration_seconds", Lit::Int(5)),
    ("output_resolution", Lit::Str("720p")),
    ("enable_sound", Lit::Bool(false)),
];
const DEF_5: &[(&str, Lit)] = &[("duration_seconds", Lit::Int(5)), ("enable_sound", Lit::Bool(false))];

const fn rule(when: &'static [Cond], then: Then) -> Rule {
    Rule {
        when,
        then,
        message: None,
    }
}
const fn worded(when: &'static [Cond], then: Then, message: &'static str) -> Rule {
    Rule {
        when,
        then,
        message: Some(message),
    }
}

const SOUND_TRUE: &[Cond] = &[Cond::Eq("enable_sound", Lit::Bool(true))];
const O1_NO_SOUND: Rule = worded(
    SOUND_TRUE,
    Then::Enum("enable_sound", &[Lit::Bool(false)]),
    "enable_sound is not supported by kling-o1",
);
const V26_SOUND_NEEDS_PRO: [Rule; 2] = [
    worded(
        SOUND_TRUE,
        Then::Required(&["mode"]),
        "enable_sound: true requires mode: pro on kling-v2.6",
    ),
    worded(
        SOUND_TRUE,
        Then::Enum("mode", &[Lit::Str("pro")]),
        "enable_sound: true requires mode: pro on kling-v2.6",
    ),
];

/// Every model of every endpoint.
pub(crate) static MODELS: &[ModelSpec] = &[
    // ---------------------------------------------------------------- text_to_video (§2.3)
    ModelSpec {
        endpoint: Endpoint::TextToVideo,
        model: Some("kling-3.0"),
        fields: &[
            ("prompt", Any),
            ("duration_seconds", D3_15),
            ("aspect_ratio", ASPECT),
            ("output_resolution", RES3),
            ("enable_sound", Any),
            ("negative_prompt", Any),
            ("cfg_scale", Any),
            ("multi_shots", Any),
            ("multi_prompt", Items(1, usize::MAX)),
            ("first_frame_image_url", Any),
            ("last_frame_image_url", Any),
            ("kling_elements", Any),
            ("callback_url", Any),
        ],
        required: &[],
        forbidden: REFS,
        rules: &[
            rule(&[Cond::Present("multi_shots", false)], Then::Required(&["prompt"])),
            rule(
                &[Cond::Eq("multi_shots", Lit::Bool(false))],
                Then::Required(&["prompt"]),
            ),
            rule(
                &[Cond::Eq("multi_shots", Lit::Bool(true))],
                Then::Required(&["multi_prompt"]),
            ),
            worded(
                &[Cond::Eq("multi_shots", Lit::Bool(true))],
                Then::Required(&["enable_sound"]),
                "enable_sound must be true when multi_shots is true",
            ),
            worded(
                &[Cond::Eq("multi_shots", Lit::Bool(true))],
                Then::Enum("enable_sound", &[Lit::Bool(true)]),
                "enable_sound must be true when multi_shots is true",
            ),
            rule(
                &[Cond::Eq("multi_shots", Lit::Bool(true))],
                Then::Forbidden(&["last_frame_image_url"]),
            ),
        ],
        defaults: DEF_5_720,
        bespoke: Bespoke::None,
    },
    ModelSpec {
        endpoint: Endpoint::TextToVideo,
        model: Some("kling-o1"),
        fields: &[
            ("prompt", PROMPT),
            ("duration_seconds", D5),
            ("aspect_ratio", ASPECT),
            ("enable_sound", Any),
            ("mode", MODE),
            ("reference_image_urls", Items(1, 7)),
            ("reference_video_url", Any),
            ("reference_video_type", Enum(&["base", "feature"])),
            ("preserve_reference_video_audio", Any),
            ("callback_url", Any),
        ],
        required: &["prompt"],
        forbidden: &[
            "output_resolution",
            "negative_prompt",
            "cfg_scale",
            "multi_shots",
            "multi_prompt",
            "first_frame_image_url",
            "last_frame_image_url",
            "kling_elements",
        ],
        rules: &[O1_NO_SOUND],
        defaults: DEF_5,
        bespoke: Bespoke::O1References,
    },
    t2v_v2("kling-v2.1-master-text-to-video"),
    t2v_v2("kling-v2.5-turbo-text-to-video-pro"),
    ModelSpec {
        endpoint: Endpoint::TextToVideo,
        model: Some("kling-v2.6"),
        fields: &[
            ("prompt", PROMPT),
            ("duration_seconds", D5_10),
            ("aspect_ratio", ASPECT),
            ("enable_sound", Any),
            ("mode", MODE),
            ("callback_url", Any),
        ],
        required: &["prompt"],
        forbidden: &[
            "output_resolution",
            "negative_prompt",
            "cfg_scale",
            "multi_shots",
            "multi_prompt",
            "first_frame_image_url",
            "last_frame_image_url",
            "kling_elements",
            "reference_image_urls",
            "reference_video_url",
            "reference_video_type",
            "preserve_reference_video_audio",
        ],
        rules: &V26_SOUND_NEEDS_PRO,
        defaults: DEF_5,
        bespoke: Bespoke::None,
    },
    ModelSpec {
        endpoint: Endpoint::TextToVideo,
        model: Some("kling-v3-omni"),
        fields: &[
            ("prompt", PROMPT),
            ("duration_seconds", D3_15),
            ("aspect_ratio", ASPECT),
            ("output_resolution", RES3),
            ("enable_sound", Any),
            ("callback_url", Any),
        ],
        required: &["prompt"],
        forbidden: &[
            "negative_prompt",
            "cfg_scale",
            "multi_shots",
            "multi_prompt",
            "first_frame_image_url",
            "last_frame_image_url",
            "kling_elements",
            "reference_image_urls",
            "reference_video_url",
            "reference_video_type",
            "preserve_reference_video_audio",
        ],
        rules: &[],
        defaults: DEF_5_720,
        bespoke: Bespoke::None,
    },
    ModelSpec {
        endpoint: Endpoint::TextToVideo,
        model: Some("kling-v3-omni-reference"),
        fields: &[
            ("prompt", PROMPT),
            ("duration_seconds", D3_15),
            ("aspect_ratio", ASPECT),
            ("output_resolution", RES3),
            ("enable_sound", Any),
            ("reference_image_urls", Items(1, 7)),
            ("callback_url", Any),
        ],
        required: &["prompt", "aspect_ratio", "reference_image_urls"],
        forbidden: &[],
        rules: &[],
        defaults: DEF_5_720,
        bespoke: Bespoke::None,
    },
    ModelSpec {
        endpoint: Endpoint::TextToVideo,
        model: Some("kling-v3-turbo-text-to-video"),
        fields: &[
            ("prompt", PROMPT),
            ("duration_seconds", D3_15),
            ("aspect_ratio", ASPECT),
            ("output_resolution", RES2),
            ("callback_url", Any),
        ],
        required: &["prompt"],
        forbidden: &[
            "enable_sound",
            "negative_prompt",
            "cfg_scale",
            "multi_shots",
            "multi_prompt",
            "first_frame_image_url",
            "last_frame_image_url",
            "kling_elements",
            "reference_image_urls",
            "reference_video_url",
            "reference_video_type",
            "preserve_reference_video_audio",
        ],
        rules: &[],
        defaults: DEF_5_720,
        bespoke: Bespoke::None,
    },
    // ---------------------------------------------------------------- image_to_video (§2.4)
    ModelSpec {
        endpoint: Endpoint::ImageToVideo,
        model: Some("kling-o1"),
        fields: &[
            ("prompt", PROMPT),
            ("first_frame_image_url", Any),
            ("last_frame_image_url", Any),
            ("duration_seconds", D5),
            ("aspect_ratio", ASPECT),
            ("enable_sound", Any),
            ("mode", MODE),
            ("reference_image_urls", Items(1, 7)),
            ("reference_video_url", Any),
            ("reference_video_type", Enum(&["base", "feature"])),
            ("preserve_reference_video_audio", Any),
            ("callback_url", Any),
        ],
        required: &["prompt", "first_frame_image_url"],
        forbidden: &["output_resolution", "negative_prompt", "cfg_scale"],
        rules: &[O1_NO_SOUND],
        defaults: DEF_5,
        bespoke: Bespoke::O1References,
    },
    i2v_v2("kling-v2.1-master-image-to-video", false),
    i2v_v2("kling-v2.1-pro", true),
    i2v_v2("kling-v2.1-standard", false),
    i2v_v2("kling-v2.5-turbo-image-to-video-pro", true),
    ModelSpec {
        endpoint: Endpoint::ImageToVideo,
        model: Some("kling-v2.6"),
        fields: &[
            ("prompt", PROMPT),
            ("first_frame_image_url", Any),
            ("last_frame_image_url", Any),
            ("duration_seconds", D5_10),
            ("aspect_ratio", ASPECT),
            ("enable_sound", Any),
            ("mode", MODE),
            ("callback_url", Any),
        ],
        required: &["prompt", "first_frame_image_url"],
        forbidden: &[
            "output_resolution",
            "negative_prompt",
            "cfg_scale",
            "reference_image_urls",
            "reference_video_url",
            "reference_video_type",
            "preserve_reference_video_audio",
        ],
        rules: &[
            V26_SOUND_NEEDS_PRO[0],
            V26_SOUND_NEEDS_PRO[1],
            worded(
                &[Cond::Present("last_frame_image_url", true)],
                Then::Required(&["mode"]),
                "last_frame_image_url on kling-v2.6 requires mode: pro and duration_seconds: 5",
            ),
            worded(
                &[Cond::Present("last_frame_image_url", true)],
                Then::Enum("mode", &[Lit::Str("pro")]),
                "last_frame_image_url on kling-v2.6 requires mode: pro and duration_seconds: 5",
            ),
            worded(
                &[Cond::Present("last_frame_image_url", true)],
                Then::Enum("duration_seconds", &[Lit::Int(5)]),
                "last_frame_image_url on kling-v2.6 requires mode: pro and duration_seconds: 5",
            ),
        ],
        defaults: DEF_5,
        bespoke: Bespoke::None,
    },
    ModelSpec {
        endpoint: Endpoint::ImageToVideo,
        model: Some("kling-v3-omni"),
        fields: &[
            ("prompt", PROMPT),
            ("first_frame_image_url", Any),
            ("last_frame_image_url", Any),
            ("duration_seconds", D3_15),
            ("aspect_ratio", ASPECT),
            ("output_resolution", RES3),
            ("enable_sound", Any),
            ("callback_url", Any),
        ],
        required: &["prompt", "first_frame_image_url"],
        forbidden: &[
            "negative_prompt",
            "cfg_scale",
            "reference_image_urls",
            "reference_video_url",
            "reference_video_type",
            "preserve_reference_video_audio",
        ],
        rules: &[worded(
            &[Cond::Present("last_frame_image_url", true)],
            Then::Enum("duration_seconds", &[Lit::Int(5)]),
            "last_frame_image_url on kling-v3-omni requires duration_seconds: 5",
        )],
        defaults: DEF_5_720,
        bespoke: Bespoke::None,
    },
    ModelSpec {
        endpoint: Endpoint::ImageToVideo,
        model: Some("kling-v3-turbo-image-to-video"),
        fields: &[
            ("prompt", PROMPT),
            ("first_frame_image_url", Any),
            ("duration_seconds", D3_15),
            ("output_resolution", RES2),
            ("callback_url", Any),
        ],
        required: &["prompt", "first_frame_image_url"],
        forbidden: &[
            "aspect_ratio",
            "enable_sound",
            "negative_prompt",
            "cfg_scale",
            "last_frame_image_url",
            "reference_image_urls",
            "reference_video_url",
            "reference_video_type",
            "preserve_reference_video_audio",
        ],
        rules: &[],
        defaults: DEF_5_720,
        bespoke: Bespoke::None,
    },
    // ---------------------------------------------------------------- motion_control (§2.5)
    ModelSpec {
        endpoint: Endpoint::MotionControl,
        model: Some("kling-3.0"),
        fields: &[
            ("source_image_url", Any),
            ("reference_video_url", Any),
            ("prompt", Any),
            ("output_resolution", RES2),
            ("character_orientation", ORIENTATION),
            ("background_source", ORIENTATION),
            ("callback_url", Any),
        ],
        required: &["source_image_url", "reference_video_url"],
        forbidden: &[],
        rules: &[],
        defaults: &[("output_resolution", Lit::Str("720p"))],
        bespoke: Bespoke::None,
    },
    ModelSpec {
        endpoint: Endpoint::MotionControl,
        model: Some("kling-v2.6"),
        fields: &[
            ("source_image_url", Any),
            ("reference_video_url", Any),
            ("prompt", Chars(0, 2500)),
            ("output_resolution", RES2),
            ("character_orientation", ORIENTATION),
            ("callback_url", Any),
        ],
        required: &[
            "source_image_url",
            "reference_video_url",
            "output_resolution",
            "character_orientation",
        ],
        forbidden: &["background_source"],
        rules: &[],
        defaults: &[],
        bespoke: Bespoke::None,
    },
    // ---------------------------------------------------------------- ai_avatar (§2.6)
    avatar("kling-ai-avatar-pro"),
    avatar("kling-ai-avatar-standard"),
    avatar("kling-ai-avatar-v1-pro"),
    avatar("kling-v1-avatar-standard"),
    // ---------------------------------------------------------------- extend_video (§2.7)
    ModelSpec {
        endpoint: Endpoint::ExtendVideo,
        model: None,
        fields: &[
            ("source_task_id", Any),
            ("mode", MODE),
            ("prompt", Any),
            ("callback_url", Any),
        ],
        required: &["source_task_id"],
        forbidden: &[],
        rules: &[],
        defaults: &[("mode", Lit::Str("std"))],
        bespoke: Bespoke::None,
    },
    // ---------------------------------------------------------------- edit_video (§2.8)
    edit("kling-v3-omni-edit", false),
    edit("kling-v3-omni-reference", true),
];

/// The v2.1-master and v2.5-turbo text-to-video models share one table.
const fn t2v_v2(model: &'static str) -> ModelSpec {
    ModelSpec {
        endpoint: Endpoint::TextToVideo,
        model: Some(model),
        fields: &[
            ("prompt", Any),
            ("duration_seconds", D5_10),
            ("aspect_ratio", ASPECT),
            ("enable_sound", Any),
            ("negative_prompt", Any),
            ("cfg_scale", Any),
            ("callback_url", Any),
        ],
        required: &["prompt"],
        forbidden: &[
            "mode",
            "reference_image_urls",
            "reference_video_url",
            "reference_video_type",
            "preserve_reference_video_audio",
        ],
        rules: &[],
        defaults: DEF_5,
        bespoke: Bespoke::None,
    }
}

const fn i2v_v2(model: &'static str, last_frame: bool) -> ModelSpec {
    ModelSpec {
        endpoint: Endpoint::ImageToVideo,
        model: Some(model),
        fields: if last_frame {
            &[
                ("prompt", Any),
                ("first_frame_image_url", Any),
                ("last_frame_image_url", Any),
                ("duration_seconds", D5_10),
                ("aspect_ratio", Any),
                ("negative_prompt", Any),
                ("cfg_scale", Any),
                ("callback_url", Any),
            ]
        } else {
            &[
                ("prompt", Any),
                ("first_frame_image_url", Any),
                ("duration_seconds", D5_10),
                ("aspect_ratio", Any),
                ("negative_prompt", Any),
                ("cfg_scale", Any),
                ("callback_url", Any),
            ]
        },
        required: &["prompt", "first_frame_image_url"],
        forbidden: if last_frame {
            &[
                "output_resolution",
                "enable_sound",
                "mode",
                "reference_image_urls",
                "reference_video_url",
                "reference_video_type",
                "preserve_reference_video_audio",
            ]
        } else {
            &[
                "output_resolution",
                "enable_sound",
                "mode",
                "last_frame_image_url",
                "reference_image_urls",
                "reference_video_url",
                "reference_video_type",
                "preserve_reference_video_audio",
            ]
        },
        rules: &[],
        defaults: &[("duration_seconds", Lit::Int(5))],
        bespoke: Bespoke::None,
    }
}

const fn avatar(model: &'static str) -> ModelSpec {
    ModelSpec {
        endpoint: Endpoint::AiAvatar,
        model: Some(model),
        fields: &[
            ("source_image_url", Any),
            ("source_audio_url", Any),
            ("prompt", Any),
            ("callback_url", Any),
        ],
        required: &["source_image_url", "source_audio_url", "prompt"],
        forbidden: &[],
        rules: &[],
        defaults: &[],
        bespoke: Bespoke::None,
    }
}

const SOURCE_ONLY: &[Cond] = &[Cond::Present("reference_image_urls", false)];
const WITH_REFS: &[Cond] = &[Cond::Present("reference_image_urls", true)];
const EDIT_RULES: &[Rule] = &[
    rule(&[], Then::RequiredAny(&["source_video_url", "source_task_id"])),
    rule(
        &[Cond::Present("source_video_url", true)],
        Then::Forbidden(&["source_task_id"]),
    ),
    rule(SOURCE_ONLY, Then::Required(&["aspect_ratio"])),
    rule(SOURCE_ONLY, Then::Enum("aspect_ratio", &[Lit::Str("auto")])),
    rule(SOURCE_ONLY, Then::Enum("duration_seconds", &[Lit::Int(5)])),
    rule(WITH_REFS, Then::Required(&["aspect_ratio"])),
    rule(
        WITH_REFS,
        Then::Enum("aspect_ratio", &[Lit::Str("16:9"), Lit::Str("9:16"), Lit::Str("1:1")]),
    ),
];
const EDIT_REFERENCE_RULES: &[Rule] = &[
    EDIT_RULES[0],
    EDIT_RULES[1],
    EDIT_RULES[2],
    EDIT_RULES[3],
    EDIT_RULES[4],
    EDIT_RULES[5],
    EDIT_RULES[6],
    worded(
        &[],
        Then::Enum("enable_sound", &[Lit::Bool(false)]),
        "enable_sound must be false on kling-v3-omni-reference edits",
    ),
];

const fn edit(model: &'static str, reference: bool) -> ModelSpec {
    ModelSpec {
        endpoint: Endpoint::EditVideo,
        model: Some(model),
        fields: &[
            ("prompt", PROMPT),
            ("source_video_url", Any),
            ("source_task_id", Any),
            ("reference_image_urls", Items(1, 4)),
            ("duration_seconds", D3_15),
            ("output_resolution", RES3),
            ("aspect_ratio", Enum(&["auto", "16:9", "9:16", "1:1"])),
            ("enable_sound", Any),
            ("callback_url", Any),
        ],
        required: &["prompt"],
        forbidden: &[],
        rules: if reference { EDIT_REFERENCE_RULES } else { EDIT_RULES },
        defaults: DEF_5_720,
        bespoke: Bespoke::None,
    }
}

/// The spec of `model` on `endpoint`. For extend_video the model is ignored.
pub(crate) fn model_spec(endpoint: Endpoint, model: Option<&str>) -> Option<&'static ModelSpec> {
    MODELS
        .iter()
        .find(|spec| spec.endpoint == endpoint && (!endpoint.takes_model() || spec.model == model))
}

/// The model names an endpoint accepts, sorted (the order the contract's error message uses).
pub(crate) fn models_for(endpoint: Endpoint) -> Vec<&'static str> {
    let mut models: Vec<_> = MODELS
        .iter()
        .filter(|spec| spec.endpoint == endpoint)
        .filter_map(|spec| spec.model)
        .collect();
    models.sort_unstable();
    models
}

impl ModelSpec {
    pub(crate) fn constraint(&self, field: &str) -> Option<Constraint> {
        self.fields.iter().find(|(name, _)| *name == field).map(|(_, c)| *c)
    }

    pub(crate) fn default_of(&self, field: &str) -> Option<Lit> {
        self.defaults.iter().find(|(name, _)| *name == field).map(|(_, v)| *v)
    }
}

/// Every model name of every endpoint, sorted and without repeats.
pub(crate) static MODEL_NAMES: std::sync::LazyLock<Vec<&'static str>> = std::sync::LazyLock::new(|| {
    let mut names: Vec<_> = MODELS.iter().filter_map(|spec| spec.model).collect();
    names.sort_unstable();
    names.dedup();
    names
});
