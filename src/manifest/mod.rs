//! Manifests: YAML sweeps and CSV job lists, read in layers — text ▶ serde tree ▶ checked
//! `Manifest` whose every value remembers its place — with all problems reported in one pass.

mod csv_rows;
mod diagnostic;
mod load;
mod locate;
mod sections;
mod spec;
mod suggest;
mod text;
mod values;
mod yaml;

pub use csv_rows::META_PREFIX;
pub use diagnostic::{Diagnostic, Origin, Place, Problem};
pub use load::{Loaded, ManifestError, from_yaml, load, parse_yaml, read, read_within};
pub use spec::{FieldMap, Limits, Manifest, ManifestKind, Matrix, MatrixEntry, OnUnsupported, PromptEntry, Sourced};
pub use suggest::did_you_mean;
pub use text::MAX_MANIFEST_BYTES;
pub use yaml::endpoints_of;
